#pragma once
// The durable spool behind `upstream.forward: queued`: encrypted instances wait here until the
// forwarder has delivered them to the PACS. Only already-encrypted data sets ever reach it.
//
//   <dir>/queue/<segment>.seg       pre-allocated segments records are appended to (segment.h)
//   <dir>/queue/<segment>.done      which of a segment's records have left the queue
//   <dir>/queue/<name>.rec          a record in a file of its own: instances larger than a segment,
//                                   writes while no segment could be pre-allocated, records
//                                   returned from quarantine by `pacsgw spool retry`, and large
//                                   instances (see SpoolLimits::streamAboveBytes), which are written
//                                   and read back in pieces, never whole in memory
//   <dir>/queue/<name>.part         a write in progress; removed at start-up, never delivered
//   <dir>/quarantine/<name>.rec     refused for good by the PACS (or unreadable) ...
//   <dir>/quarantine/<name>.reason  ... and why, as one line of text
//   <dir>/status.json               counters the running gateway publishes for `pacsgw spool status`
//   <dir>/retry-requested           left by `pacsgw spool retry` so a running gateway retries now
//
// A record is acknowledged to the modality only after an fdatasync of its segment that started
// after the record was completely written (shared between concurrent writers: group commit), or,
// for a record file, after the file was fsync'd, renamed into queue/ and the directory fsync'd.
#include "gateway/spool/group_sync.h"
#include "gateway/spool/segment.h"
#include "gateway/spool/spool_record.h"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace pacsgw::gateway::spool {

using Clock = std::chrono::steady_clock;

struct SpoolLimits {
  std::uint64_t maxBytes = 10ull << 30;   // queued + quarantined record bytes
  std::uint64_t maxInstances = 100000;    // queued + quarantined records
  std::uint64_t segmentBytes = 64ull << 20;  // size of a pre-allocated segment; 0 = a file per record
  // Payloads larger than this are written into their record file in pieces by admitStreamed
  // (limits.stream_above_mb); 0 = every record is encoded whole in memory first. The forwarder sends
  // large record files in pieces in any case (ForwarderOptions::sendFromFileAbove).
  std::uint64_t streamAboveBytes = 0;
};

// Receives a streamed payload's bytes in order; throws std::runtime_error when they cannot be written.
using PayloadSink = std::function<void(const void* data, std::size_t size)>;
// Writes a whole payload into the sink; throws std::runtime_error when it cannot be produced.
using PayloadWriter = std::function<void(const PayloadSink& sink)>;

struct AdmitResult {
  bool stored = false;
  bool full = false;        // refused by the quota (nothing was written)
  std::string reason;       // why not stored
  std::string name;         // the record's name when stored
};

// A record handed to the forwarder; it stays on disk until delivered() or quarantine().
struct ClaimedRecord {
  std::string name;
  std::string path;         // the record file, or the segment holding it
  unsigned attempts = 0;    // earlier delivery attempts that counted against the record
  std::shared_ptr<Segment> segment;  // null for a record file
  std::uint64_t offset = 0;          // within the segment
  std::uint64_t length = 0;
};

// Cheap to take (no file system access): the counters behind `spool status` and the metrics.
struct SpoolStats {
  std::uint64_t queued = 0;        // waiting, not in flight
  std::uint64_t inFlight = 0;
  std::uint64_t quarantined = 0;
  std::uint64_t bytes = 0;         // queued + in flight + quarantined
  std::int64_t oldestReceivedUnixMs = 0;  // of the queued / in-flight records; 0 when none
  std::uint64_t accepted = 0;      // since start
  std::uint64_t delivered = 0;
  std::uint64_t refusedFull = 0;
  std::uint64_t writeErrors = 0;
};

class Spool {
 public:
  // Creates the directories (mode 0700), removes incomplete writes and indexes the queue.
  Spool(std::string directory, SpoolLimits limits);
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // Durably stores one record (see above). Thread-safe; never throws for I/O problems.
  AdmitResult admit(const SpoolRecordMeta& meta, const std::string& payload);
  // The same for a payload of exactly `payloadSize` bytes produced in pieces by `write` (a large
  // instance): always a record file of its own, acknowledged after the same fsync, rename and
  // directory fsync; the record's whole space is taken (fallocate) before the payload is written. A
  // write that fails or produces another size leaves nothing behind.
  AdmitResult admitStreamed(const SpoolRecordMeta& meta, std::uint64_t payloadSize, const PayloadWriter& write);

  // The oldest record that is due, or nothing after `maxWait` (or once wake() was called).
  std::optional<ClaimedRecord> claim(std::chrono::milliseconds maxWait);
  // Reads a claimed record's file (std::runtime_error when it cannot be read).
  std::vector<std::uint8_t> read(const ClaimedRecord& record) const;
  void delivered(const ClaimedRecord& record);
  // Back in the queue, due after `delay`; `countAttempt` when the failure is the record's own.
  void retryLater(const ClaimedRecord& record, std::chrono::milliseconds delay, bool countAttempt);
  // Moves the record to quarantine/ with its reason.
  void quarantine(const ClaimedRecord& record, const std::string& reason);
  // Forgets a claimed record whose file has gone (removed by an operator).
  void forget(const ClaimedRecord& record);
  // Picks up records put into queue/ from outside (`pacsgw spool retry`) and honours a retry request.
  void rescan();
  // Makes waiting claim() calls return.
  void wake();

  SpoolStats stats() const;
  const std::string& directory() const { return directory_; }
  const SpoolLimits& limits() const { return limits_; }

 private:
  struct Entry {
    std::uint64_t bytes = 0;
    unsigned attempts = 0;
    Clock::time_point due{};
    bool inFlight = false;
    std::shared_ptr<Segment> segment;
    std::uint64_t offset = 0;
  };
  void addLocked(const std::string& name, std::uint64_t bytes, std::shared_ptr<Segment> segment = nullptr,
                 std::uint64_t offset = 0);
  void removeLocked(const std::string& name);
  // One record less; a sealed segment left without records goes to the preparer for reuse.
  void releaseSegmentLocked(const std::shared_ptr<Segment>& segment);
  void reclaimSegment(std::shared_ptr<Segment> segment);
  bool syncQueueDirectory();  // group commit of the queue directory; false when fsync failed
  void recoverSegment(const std::string& name);
  // The segment to append `bytes` to, or null (then the record gets a file). Under appendMutex_.
  std::shared_ptr<Segment> segmentFor(std::uint64_t bytes);
  // Waits for the sync covering an append; "" on success, else why not.
  std::string syncSegmentAppend(const std::shared_ptr<Segment>& segment, std::uint64_t offset, std::uint64_t length);
  std::string admitToFile(const std::string& name, const std::string& prefix, const std::string& payload,
                          const std::string& trailer);
  // Creates <name>.part, lets `write` fill it, fdatasyncs, renames it to <name>.rec and syncs the
  // directory; "" on success, else why not (and nothing is left behind).
  std::string commitRecordFile(const std::string& name, const std::function<int(int fd)>& write);
  // Counts a write of `size` bytes against the quota; false (and `result` says why) when it is full.
  bool reserve(std::uint64_t size, AdmitResult& result);
  bool copyToQuarantine(const ClaimedRecord& record, const std::string& target) const;
  void prepareSegments();  // background thread: keeps one segment ready (reused, or new and zero-filled)
  std::shared_ptr<Segment> makeSegment(std::string& failure);  // reuses an emptied one when it can

  std::string directory_;
  std::string queueDir_;
  std::string quarantineDir_;
  SpoolLimits limits_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, Entry> entries_;                   // by name = by arrival
  std::set<std::pair<Clock::time_point, std::string>> ready_;  // not in flight, by due time
  std::uint64_t bytes_ = 0;            // queue + quarantine
  std::uint64_t reservedBytes_ = 0;    // writes in progress
  std::uint64_t reservedInstances_ = 0;
  std::uint64_t quarantined_ = 0;
  std::uint64_t inFlight_ = 0;
  std::uint64_t accepted_ = 0, delivered_ = 0, refusedFull_ = 0, writeErrors_ = 0;
  bool woken_ = false;

  GroupSync directorySync_;  // directory group commit for file-per-instance records

  // Segments: the one being appended to, and the next one, pre-allocated in the background.
  std::mutex appendMutex_;
  std::shared_ptr<Segment> active_;      // under appendMutex_
  std::mutex prepareMutex_;
  std::condition_variable prepareWake_;
  std::shared_ptr<Segment> prepared_;    // under prepareMutex_
  std::vector<std::shared_ptr<Segment>> emptied_;  // under prepareMutex_: to reuse or remove
  bool prepareWanted_ = false;
  bool stopping_ = false;
  std::thread preparer_;
};

// `pacsgw spool status` / `retry` without a running gateway's help.
struct QuarantinedRecord {
  std::string name;
  std::string reason;
};

struct SpoolSnapshot {
  std::uint64_t queued = 0;           // records in queue/ (including those in flight)
  std::uint64_t queuedBytes = 0;
  std::uint64_t partial = 0;          // incomplete writes (.part)
  std::optional<std::uint64_t> inFlight;  // from a live gateway's status.json
  std::optional<std::uint64_t> delivered; // since that gateway started
  std::vector<QuarantinedRecord> quarantined;
  std::int64_t oldestReceivedUnixMs = 0;
};

SpoolSnapshot inspectSpool(const std::string& directory);
// Moves every quarantined record (or only `names`) back into the queue; returns how many moved.
std::size_t requeueQuarantined(const std::string& directory, const std::vector<std::string>& names = {});
// Writes status.json for `pacsgw spool status` (atomically; no fsync, it is advisory).
void publishStatus(const std::string& directory, const SpoolStats& stats);
// The arrival time encoded in a record name, or 0.
std::int64_t receivedUnixMsOfName(const std::string& name);

}  // namespace pacsgw::gateway::spool
