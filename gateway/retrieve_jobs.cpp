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

bool RetrieveRequest::matches(DcmDataset& dataset) const {
  return valueAllowed(dataset, DCM_PatientID, patientIds) && valueAllowed(dataset, DCM_StudyInstanceUID, studyUids) &&
         valueAllowed(dataset, DCM_SeriesInstanceUID, seriesUids) &&
         valueAllowed(dataset, DCM_SOPInstanceUID, instanceUids);
}

RetrieveJob::RetrieveJob(RetrieveRequest request) : request_(std::move(request)) {}

RetrieveJob::~RetrieveJob() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    stopDelivery_ = true;
    queueChanged_.notify_all();
  }
  if (!deliverer_.joinable()) return;
  // The delivery thread may hold the last reference itself: it must not join itself.
  if (deliverer_.get_id() == std::this_thread::get_id()) {
    deliverer_.detach();
  } else {
    deliverer_.join();
  }
}

void RetrieveJob::record(const std::string& sopInstance, const StoreOutcome& outcome) {
  std::lock_guard<std::mutex> lock(mutex_);
  // Release the slot first: whatever happens below, waiters for `drained_` must not hang.
  if (inFlight_ > 0 && --inFlight_ == 0) drained_.notify_all();
  if (outcome.delivered && status::isSuccess(outcome.status)) {
    ++completed_;
  } else if (outcome.delivered && status::isWarning(outcome.status)) {
    ++warning_;
  } else {
    ++failed_;
    failedSopInstanceUids_.push_back(sopInstance);
  }
}

bool RetrieveJob::admit(const std::string& sopInstance) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (closed_) return false;
  ++inFlight_;
  offeredSopInstanceUids_.insert(sopInstance);
  return true;
}

bool RetrieveJob::enqueue(PendingDelivery item, std::chrono::seconds room) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!queueChanged_.wait_for(lock, room, [this] { return queue_.size() < kMaxQueued; })) return false;
  queue_.push_back(std::move(item));
  queueChanged_.notify_all();
  return true;
}

void RetrieveJob::recordRefusal(const std::string& sopInstance, const StoreOutcome& outcome) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++refusedByGateway_;
  }
  record(sopInstance, outcome);
}

unsigned RetrieveJob::refusedByGatewayCount() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return refusedByGateway_;
}

bool RetrieveJob::wasOffered(const std::string& sopInstance) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return offeredSopInstanceUids_.count(sopInstance) != 0;
}

std::size_t RetrieveJob::queued() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queue_.size();
}

void RetrieveJob::startDeliveries(std::function<void()> loop) { deliverer_ = std::thread(std::move(loop)); }

bool RetrieveJob::nextDelivery(PendingDelivery& item) {
  std::unique_lock<std::mutex> lock(mutex_);
  queueChanged_.wait(lock, [this] { return !queue_.empty() || stopDelivery_; });
  if (queue_.empty()) return false;
  item = std::move(queue_.front());
  queue_.pop_front();
  queueChanged_.notify_all();
  return true;
}

void RetrieveJob::discard() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (inFlight_ > 0 && --inFlight_ == 0) drained_.notify_all();
}

RetrieveJob::Progress RetrieveJob::noteProgress(unsigned pacsRemaining, unsigned pacsCompleted, unsigned pacsFailed,
                                                unsigned pacsWarning) {
  const unsigned announced = pacsRemaining + pacsCompleted + pacsFailed + pacsWarning;
  std::lock_guard<std::mutex> lock(mutex_);
  announcedByPacs_ = std::max(announcedByPacs_, announced);
  Progress progress{completed_, failed_, warning_, pacsRemaining};
  // Our counts trail the PACS's while instances wait for delivery: those are still "remaining".
  const unsigned done = completed_ + failed_ + warning_;
  if (announcedByPacs_ > done) progress.remaining = std::max(progress.remaining, announcedByPacs_ - done);
  return progress;
}

DeliveredCounts RetrieveJob::counts() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return {completed_, failed_, warning_, announcedByPacs_, cancelled_.load(), failedSopInstanceUids_};
}

void RetrieveJob::close(RetrieveRegistry& registry) {
  registry.remove(upstreamMessageId());  // no new sub-operation finds the job
  std::unique_lock<std::mutex> lock(mutex_);
  closed_ = true;  // and none that found it earlier is admitted any more
  // Bounded: each delivery is bounded by the DIMSE timeout and the queue is short.
  drained_.wait(lock, [this] { return inFlight_ == 0; });
}

void RetrieveJob::stopDeliveries() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopDelivery_ = true;  // only after close(): everything admitted has been delivered or counted
    queueChanged_.notify_all();
  }
  if (deliverer_.joinable()) deliverer_.join();
}

void RetrieveRegistry::add(const std::shared_ptr<RetrieveJob>& job) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (unsigned tries = 0; tries < 65536; ++tries) {
    ++next_;
    if (next_ != 0 && jobs_.count(next_) == 0) {
      job->upstreamMessageId_.store(next_);
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
