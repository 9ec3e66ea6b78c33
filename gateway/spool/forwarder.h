#pragma once
// Delivers spooled records to the PACS over a small pool of associations, oldest first, with
// exponential backoff. It sees only spool records (already encrypted); the network side sits
// behind UpstreamSender so the delivery rules can be tested without sockets.
#include "gateway/spool/spool.h"
#include "gateway/spool/spool_record.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <string>
#include <thread>
#include <vector>

namespace pacsgw::gateway::spool {

enum class SendKind {
  Answered,     // the PACS sent a C-STORE response (status below)
  Unreachable,  // no association could be opened
  Broken,       // the association failed before a response arrived
  NoContext,    // the PACS accepts no presentation context for this SOP class / transfer syntax
  Undecodable,  // the record's data set cannot be decoded
};

struct SendResult {
  SendKind kind = SendKind::Broken;
  std::uint16_t status = 0;
  std::string detail;  // the PACS's Error Comment or our reason
};

// One association's worth of sending (used by one worker thread at a time).
class UpstreamSender {
 public:
  virtual ~UpstreamSender() = default;
  virtual SendResult send(const SpoolRecordView& record) = 0;
  // A large record, checked in its file (checkSpoolRecordFile): the payload is read in pieces while
  // it is sent, never whole in memory. A sender that cannot do that answers Undecodable.
  virtual SendResult sendFile(const SpoolRecordFile& record);
  // Nothing to send for a while: a chance to release an idle association.
  virtual void idle() {}
};
using SenderFactory = std::function<std::unique_ptr<UpstreamSender>()>;

enum class Verdict {
  Delivered,   // the PACS has the instance (Success, a Warning, or "duplicate": it already had it)
  RetryLater,  // a transient refusal of this instance (Out of Resources, ...)
  PeerDown,    // nothing wrong with the instance: the PACS or the network is
  Quarantine,  // refused for a reason retrying will not fix
};

// The delivery rules. `attempts` counts earlier attempts of this record that counted;
// `brokenInARow` counts this attempt and the consecutive earlier ones whose association broke while
// this record was being sent. An instance that breaks the association every time (a "poison"
// instance) is quarantined after `brokenLimit` such attempts in a row; 0 keeps retrying forever.
Verdict classify(const SendResult& result, unsigned attempts, unsigned processingFailureAttempts,
                 unsigned brokenInARow = 0, unsigned brokenLimit = 0);
// Why a result is not a delivery, for logs and quarantine reasons.
std::string describe(const SendResult& result);

struct ForwarderOptions {
  unsigned associations = 2;
  std::chrono::milliseconds retryInitial{1000};
  std::chrono::milliseconds retryMax{60000};
  unsigned processingFailureAttempts = 3;  // 0110 "processing failure" is retried this often, then quarantined
  unsigned brokenAssociationAttempts = 10;  // associations broken by one instance in a row before quarantine
  std::chrono::milliseconds idleRelease{2000};  // some PACS take one association at a time
  std::chrono::milliseconds statusInterval{1000};  // status.json refresh; 0 = never
  // A record file larger than this is checked and sent from the file in pieces (sendFile), whatever
  // limits.stream_above_mb says now: a restart with other limits never reads a large record whole.
  std::uint64_t sendFromFileAbove = std::uint64_t{16} << 20;
};

struct ForwarderStats {
  std::uint64_t delivered = 0;
  std::uint64_t retries = 0;
  std::uint64_t quarantined = 0;
};

class Forwarder {
 public:
  Forwarder(Spool& spool, SenderFactory senders, ForwarderOptions options);
  ~Forwarder();  // stop()s
  Forwarder(const Forwarder&) = delete;
  Forwarder& operator=(const Forwarder&) = delete;

  void start();
  // Finishes the deliveries in flight and stops; what is left stays queued. Idempotent.
  void stop();
  ForwarderStats stats() const;

 private:
  void work(unsigned index);
  // Reads and checks a claimed record and sends it; false when it was unreadable or corrupt (then
  // it has been handled: forgotten, retried later or quarantined).
  bool send(const ClaimedRecord& record, UpstreamSender& sender, SpoolRecordMeta& meta, SendResult& result);
  // A record that cannot be read or is corrupt.
  void unreadable(const ClaimedRecord& record, const std::exception& e);
  void corrupt(const ClaimedRecord& record, const SpoolRecordError& e);
  void publish();
  bool pause(std::chrono::milliseconds delay);  // false when stopping
  std::chrono::milliseconds backoff(unsigned failures) const;
  // Broken associations in a row while `record` was sent, this one included; `broken` false resets.
  unsigned countBroken(const std::string& record, bool broken);

  Spool& spool_;
  SenderFactory senders_;
  ForwarderOptions options_;
  std::atomic<bool> stopping_{false};
  std::mutex pauseMutex_;
  std::condition_variable pauseWake_;
  std::vector<std::thread> threads_;
  std::atomic<std::uint64_t> delivered_{0}, retries_{0}, quarantined_{0};
  std::mutex brokenMutex_;
  std::unordered_map<std::string, unsigned> brokenInARow_;  // record name -> broken associations in a row
};

}  // namespace pacsgw::gateway::spool
