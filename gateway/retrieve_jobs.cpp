#include "gateway/retrieve_jobs.h"

#include <dcmtk/dcmdata/dcdeftag.h>

#include <algorithm>
#include <stdexcept>

namespace pacsgw::gateway {

namespace {
bool valueAllowed(DcmDataset& dataset, const DcmTagKey& tag, const std::vector<std::string>& allowed) {
  if (allowed.empty()) return true;
  OFString value;
  if (dataset.findAndGetOFString(tag, value).bad()) return false;
  return std::find(allowed.begin(), allowed.end(), std::string(value.c_str())) != allowed.end();
}
}  // namespace

void RetrieveJob::record(const std::string& sopInstance, const StoreOutcome& outcome) {
  std::lock_guard<std::mutex> lock(mutex);
  // Release the slot first: whatever happens below, waiters for `drained` must not hang.
  if (--inFlight == 0) drained.notify_all();
  if (outcome.delivered && status::isSuccess(outcome.status)) {
    ++completed;
  } else if (outcome.delivered && status::isWarning(outcome.status)) {
    ++warning;
  } else {
    ++failed;
    failedSopInstanceUids.push_back(sopInstance);
  }
}

bool RetrieveJob::admit(const std::string& sopInstance) {
  std::lock_guard<std::mutex> lock(mutex);
  if (closed) return false;
  ++inFlight;
  offeredSopInstanceUids.insert(sopInstance);
  return true;
}

bool RetrieveJob::enqueue(PendingDelivery item, std::chrono::seconds room) {
  std::unique_lock<std::mutex> lock(mutex);
  if (!queueChanged.wait_for(lock, room, [this] { return queue.size() < kMaxQueued; })) return false;
  queue.push_back(std::move(item));
  queueChanged.notify_all();
  return true;
}

void RetrieveJob::recordRefusal(const std::string& sopInstance, const StoreOutcome& outcome) {
  {
    std::lock_guard<std::mutex> lock(mutex);
    ++refusedByGateway;
  }
  record(sopInstance, outcome);
}

unsigned RetrieveJob::refusedByGatewayCount() {
  std::lock_guard<std::mutex> lock(mutex);
  return refusedByGateway;
}

bool RetrieveJob::wasOffered(const std::string& sopInstance) {
  std::lock_guard<std::mutex> lock(mutex);
  return offeredSopInstanceUids.count(sopInstance) != 0;
}

void RetrieveJob::startDeliveries(std::function<void()> loop) { deliverer = std::thread(std::move(loop)); }

bool RetrieveJob::nextDelivery(PendingDelivery& item) {
  std::unique_lock<std::mutex> lock(mutex);
  queueChanged.wait(lock, [this] { return !queue.empty() || stopDelivery; });
  if (queue.empty()) return false;
  item = std::move(queue.front());
  queue.pop_front();
  queueChanged.notify_all();
  return true;
}

void RetrieveJob::close(RetrieveRegistry& registry) {
  registry.remove(upstreamMessageId);  // no new sub-operation finds the job
  std::unique_lock<std::mutex> lock(mutex);
  closed = true;  // and none that found it earlier is admitted any more
  // Bounded: each delivery is bounded by the DIMSE timeout and the queue is short.
  drained.wait(lock, [this] { return inFlight == 0; });
}

void RetrieveJob::stopDeliveries() {
  {
    std::lock_guard<std::mutex> lock(mutex);
    stopDelivery = true;  // only after close(): everything admitted has been delivered or counted
    queueChanged.notify_all();
  }
  if (deliverer.joinable()) deliverer.join();
  std::lock_guard<std::mutex> io(deliveryMutex);
  destinationAssociation.reset();
  requesterAssociation = nullptr;
}

void RetrieveJob::discard() {
  std::lock_guard<std::mutex> lock(mutex);
  if (--inFlight == 0) drained.notify_all();
}

bool RetrieveJob::matchesRequest(DcmDataset& dataset) const {
  return valueAllowed(dataset, DCM_PatientID, requestedPatientIds) &&
         valueAllowed(dataset, DCM_StudyInstanceUID, requestedStudyUids) &&
         valueAllowed(dataset, DCM_SeriesInstanceUID, requestedSeriesUids) &&
         valueAllowed(dataset, DCM_SOPInstanceUID, requestedInstanceUids);
}

void RetrieveRegistry::add(const std::shared_ptr<RetrieveJob>& job) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (unsigned tries = 0; tries < 65536; ++tries) {
    ++next_;
    if (next_ != 0 && jobs_.count(next_) == 0) {
      job->upstreamMessageId = next_;
      jobs_[next_] = job;
      return;
    }
  }
  throw std::runtime_error("no free Message ID: 65535 retrieves outstanding");
}

void RetrieveRegistry::remove(std::uint16_t messageId) {
  std::lock_guard<std::mutex> lock(mutex_);
  jobs_.erase(messageId);
}

std::shared_ptr<RetrieveJob> RetrieveRegistry::find(std::optional<std::uint16_t> originatorMessageId) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (originatorMessageId) {
    auto it = jobs_.find(*originatorMessageId);
    return it == jobs_.end() ? nullptr : it->second;
  }
  return jobs_.size() == 1 ? jobs_.begin()->second : nullptr;
}

}  // namespace pacsgw::gateway
