#include "gateway/spool/forwarder.h"

#include "gateway/net_util.h"
#include "gateway/peer_association.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <unistd.h>

namespace pacsgw::gateway::spool {

namespace {

std::string hex(std::uint16_t status) {
  char text[8];
  std::snprintf(text, sizeof text, "%04X", status);
  return text;
}

// Details come partly from the PACS: non-printable bytes become '?', and the length is bounded.
std::string escaped(const std::string& text, std::size_t maxLength = 300) {
  std::string out;
  for (char c : text.substr(0, maxLength)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return text.size() > maxLength ? out + "..." : out;
}


}  // namespace

Verdict classify(const SendResult& result, unsigned attempts, unsigned processingFailureAttempts,
                 unsigned brokenInARow, unsigned brokenLimit) {
  switch (result.kind) {
    case SendKind::Unreachable:
      return Verdict::PeerDown;
    case SendKind::Broken:
      // Usually the PACS or the network; but an instance that breaks every association it is sent on
      // would otherwise block its place in the queue forever.
      return brokenLimit != 0 && brokenInARow >= brokenLimit ? Verdict::Quarantine : Verdict::PeerDown;
    case SendKind::NoContext:
    case SendKind::Undecodable:
      return Verdict::Quarantine;
    case SendKind::Answered:
      break;
  }
  const std::uint16_t s = result.status;
  // Re-delivering an instance the PACS already holds is what makes queued delivery idempotent.
  if (status::isStored(s) || s == status::kDuplicateSopInstance) return Verdict::Delivered;
  if (status::isTransient(s)) return Verdict::RetryLater;  // Out of Resources: the PACS may recover
  if (s == status::kProcessingFailure) {
    return attempts + 1 < processingFailureAttempts ? Verdict::RetryLater : Verdict::Quarantine;
  }
  // A9xx, Cxxx, 0122, 0124 and anything unknown: the PACS will refuse it again.
  return Verdict::Quarantine;
}

std::string describe(const SendResult& result) {
  std::string text;
  switch (result.kind) {
    case SendKind::Answered:
      text = "PACS answered " + hex(result.status) + " (" + describeStatus(result.status) + ")";
      break;
    case SendKind::Unreachable: text = "PACS unreachable"; break;
    case SendKind::Broken: text = "association failed before a response"; break;
    case SendKind::NoContext: text = "PACS accepts no presentation context"; break;
    case SendKind::Undecodable: text = "data set cannot be decoded"; break;
  }
  if (!result.detail.empty()) text += ": " + escaped(result.detail);
  return text;
}

SendResult UpstreamSender::sendFile(const SpoolRecordFile& record) {
  SendResult result;
  result.kind = SendKind::Undecodable;
  result.detail = "cannot send " + record.path + " from its file";
  return result;
}

Forwarder::Forwarder(Spool& spool, SenderFactory senders, ForwarderOptions options)
    : spool_(spool), senders_(std::move(senders)), options_(options) {
  if (options_.associations == 0) options_.associations = 1;
}

Forwarder::~Forwarder() { stop(); }

void Forwarder::start() {
  stopping_.store(false);
  for (unsigned i = 0; i < options_.associations; ++i) threads_.emplace_back([this, i] { work(i); });
  if (options_.statusInterval.count() > 0) threads_.emplace_back([this] { publish(); });
}

void Forwarder::stop() {
  if (threads_.empty()) return;
  stopping_.store(true);
  {
    std::lock_guard<std::mutex> lock(pauseMutex_);
    pauseWake_.notify_all();
  }
  for (auto& thread : threads_) {
    spool_.wake();  // each waiting claim() returns once per wake
    thread.join();
  }
  threads_.clear();
  publishStatus(spool_.directory(), spool_.stats());
}

ForwarderStats Forwarder::stats() const {
  return ForwarderStats{delivered_.load(), retries_.load(), quarantined_.load()};
}

bool Forwarder::pause(std::chrono::milliseconds delay) {
  std::unique_lock<std::mutex> lock(pauseMutex_);
  pauseWake_.wait_for(lock, delay, [this] { return stopping_.load(); });
  return !stopping_.load();
}

unsigned Forwarder::countBroken(const std::string& record, bool broken) {
  std::lock_guard<std::mutex> lock(brokenMutex_);
  if (!broken) {
    brokenInARow_.erase(record);
    return 0;
  }
  return ++brokenInARow_[record];
}

std::chrono::milliseconds Forwarder::backoff(unsigned failures) const {
  auto delay = options_.retryInitial;
  for (unsigned i = 1; i < failures && delay < options_.retryMax; ++i) delay *= 2;
  return std::min(delay, options_.retryMax);
}

void Forwarder::publish() {
  while (pause(options_.statusInterval)) {
    spool_.rescan();  // records returned by `pacsgw spool retry`
    publishStatus(spool_.directory(), spool_.stats());
  }
}

void Forwarder::unreadable(const ClaimedRecord& record, const std::exception& e) {
  if (::access(record.path.c_str(), F_OK) != 0) {
    spool_.forget(record);  // removed from outside
  } else {
    spdlog::error("spool: {}", e.what());
    spool_.retryLater(record, options_.retryMax, true);
  }
}

void Forwarder::corrupt(const ClaimedRecord& record, const SpoolRecordError& e) {
  const std::string reason = std::string("corrupt spool record: ") + e.what();
  spdlog::error("spool: {} quarantined: {}", record.name, reason);
  spool_.quarantine(record, reason);
  ++quarantined_;
}

bool Forwarder::send(const ClaimedRecord& record, UpstreamSender& sender, SpoolRecordMeta& meta, SendResult& result) {
  if (!record.segment && record.length > options_.sendFromFileAbove) {
    // A large record: checked and sent from its file in pieces.
    SpoolRecordFile file;
    try {
      file = checkSpoolRecordFile(record.path);
    } catch (const SpoolRecordError& e) {
      corrupt(record, e);
      return false;
    } catch (const std::exception& e) {
      unreadable(record, e);
      return false;
    }
    meta = file.meta;
    result = sender.sendFile(file);
    return true;
  }
  std::vector<std::uint8_t> bytes;
  try {
    bytes = spool_.read(record);
  } catch (const std::exception& e) {
    unreadable(record, e);
    return false;
  }
  SpoolRecordView view;
  try {
    view = parseSpoolRecord(bytes.data(), bytes.size());
  } catch (const SpoolRecordError& e) {
    corrupt(record, e);
    return false;
  }
  meta = view.meta;
  result = sender.send(view);
  return true;
}

void Forwarder::work(unsigned index) {
  std::unique_ptr<UpstreamSender> sender = senders_();
  unsigned peerFailures = 0;
  auto lastActivity = Clock::now();
  bool released = false;
  while (!stopping_.load()) {
    std::optional<ClaimedRecord> record = spool_.claim(std::chrono::milliseconds(500));
    if (!record) {
      if (!released && Clock::now() - lastActivity > options_.idleRelease) {
        sender->idle();
        released = true;
      }
      continue;
    }
    lastActivity = Clock::now();
    released = false;
    SpoolRecordMeta meta;
    SendResult result;
    if (!send(*record, *sender, meta, result)) continue;
    const unsigned brokenInARow = countBroken(record->name, result.kind == SendKind::Broken);
    const Verdict verdict = classify(result, record->attempts, options_.processingFailureAttempts, brokenInARow,
                                     options_.brokenAssociationAttempts);
    if (verdict != Verdict::PeerDown) countBroken(record->name, false);  // the record leaves or moves on
    const std::string uid = printable(meta.sopInstanceUid);
    switch (verdict) {
      case Verdict::Delivered:
        peerFailures = 0;
        spool_.delivered(*record);
        ++delivered_;
        spdlog::debug("forwarder {}: {} delivered ({})", index, uid, describeStatus(result.status));
        break;
      case Verdict::RetryLater: {
        peerFailures = 0;
        const auto delay = backoff(record->attempts + 1);
        spool_.retryLater(*record, delay, true);
        ++retries_;
        spdlog::warn("forwarder {}: {} not delivered ({}); retry in {} s", index, uid, describe(result),
                     delay.count() / 1000.0);
        break;
      }
      case Verdict::PeerDown: {
        // Not the instance's fault: it keeps its place; this worker waits before the next attempt.
        spool_.retryLater(*record, std::chrono::milliseconds(0), result.kind == SendKind::Broken);
        ++retries_;
        const auto delay = backoff(++peerFailures);
        spdlog::warn("forwarder {}: {} ({}); next attempt in {:.1f} s", index, describe(result), uid,
                     delay.count() / 1000.0);
        pause(delay);
        break;
      }
      case Verdict::Quarantine: {
        peerFailures = 0;
        const std::string reason = "SOP Instance " + uid + " (" + printable(meta.sopClassUid) + ") from " +
                                   printable(meta.callingAeTitle) + ": " + describe(result) + " after " +
                                   std::to_string(record->attempts + 1) + " attempt(s)" +
                                   (result.kind == SendKind::Broken
                                        ? " (the association broke while this instance was sent " +
                                              std::to_string(brokenInARow) + " times in a row)"
                                        : std::string());
        spool_.quarantine(*record, reason);
        ++quarantined_;
        spdlog::error("forwarder {}: quarantined {}", index, reason);
        break;
      }
    }
  }
}

}  // namespace pacsgw::gateway::spool
