#pragma once
// Spool segments: pre-allocated files that records (spool_record.h) are appended to, so that
// making an instance durable costs one fdatasync of data blocks that already exist, instead of
// creating, syncing and renaming a file and syncing the directory per instance.
//
//   <dir>/queue/<segment>.seg    zero-filled and fsync'd once; then reused (see below)
//     offset 0   32 bytes  header: magic "PGWSEG01", generation u64, 12 zero bytes, CRC-32 of the 28 before
//     offset 32  frames, one after the other: a record, then generation u64 and the CRC-32 of that
//                generation followed by the record's own 4-byte checksum
//   <dir>/queue/<segment>.done   delivery log: one 16-byte entry per record that left the queue
//                                (delivered or quarantined): offset u64, length u32, CRC-32 of both
//
// Because the blocks were written (not just reserved) and synced when the segment was made,
// overwriting them changes no file system metadata, and fdatasync only flushes the record's data.
// Appends are serialised and each acknowledgement waits for an fdatasync that started after its
// own write (group commit), so every acknowledged record lies in an unbroken run of complete
// frames from the header on. Reading a segment back stops at the first bytes that are not a
// complete, valid frame of the header's generation: a torn tail is never delivered.
//
// A segment whose records have all left the queue is reused rather than zero-filled again: one
// synced header write with the next generation makes every old frame invalid, so nothing of the
// previous use can be read back as a record.
//
// The delivery log is not synced per entry: an entry lost in a crash only means one more
// (idempotent) delivery after restart, never a lost instance.
#include "gateway/spool/group_sync.h"
#include "gateway/spool/spool_record.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace pacsgw::gateway::spool {

constexpr const char* kSegmentSuffix = ".seg";
constexpr const char* kDeliveryLogSuffix = ".done";
constexpr std::size_t kDeliveryLogEntryBytes = 16;
constexpr std::size_t kSegmentHeaderBytes = 32;
constexpr std::size_t kFrameTrailerBytes = 12;

struct ScannedRecord {
  std::uint64_t offset = 0;
  std::uint64_t length = 0;  // of the record, without its frame trailer
  std::int64_t receivedUnixMs = 0;
};

// Where reading a segment stopped and why ("" at the end of the data or at zero fill).
struct SegmentScan {
  std::uint64_t generation = 0;  // 0: no valid header (nothing can be read)
  std::vector<ScannedRecord> records;
  std::uint64_t end = 0;
  std::string stopReason;
};

// Reads `length` bytes at `offset` into `out`; false when they cannot be read.
using ReadAt = std::function<bool(std::uint64_t offset, std::size_t length, std::uint8_t* out)>;

// The complete, valid records from offset 0 of a segment of `size` bytes. Every length is checked
// against `size` before it is used; a record is only counted once its checksum matched.
SegmentScan scanSegment(std::uint64_t size, const ReadAt& readAt);
SegmentScan scanSegmentBytes(const std::uint8_t* data, std::size_t size);
SegmentScan scanSegmentFile(const std::string& path);

// The delivery log's entries (offset, length) with a valid checksum; a torn last entry is ignored.
std::set<std::pair<std::uint64_t, std::uint64_t>> parseDeliveryLog(const std::uint8_t* data, std::size_t size);
std::set<std::pair<std::uint64_t, std::uint64_t>> readDeliveryLog(const std::string& path);
std::string encodeDeliveryLogEntry(std::uint64_t offset, std::uint64_t length);

// One open segment. Appends and group commit are thread-safe; `live` is kept by the Spool.
class Segment {
 public:
  // Makes a new zero-filled segment of `capacity` bytes and syncs it (the caller syncs the
  // directory). Throws std::runtime_error (and removes the file) when the space cannot be written.
  static std::shared_ptr<Segment> create(const std::string& directory, const std::string& name,
                                         std::uint64_t capacity);
  // Opens an existing segment for reading and delivery marks; it takes no more appends.
  static std::shared_ptr<Segment> openSealed(const std::string& directory, const std::string& name,
                                             std::uint64_t generation);
  // Makes an emptied segment new under `name` with the next generation (see above); the caller
  // syncs the directory. Throws std::runtime_error when the header cannot be written and synced.
  static std::shared_ptr<Segment> reuse(const Segment& emptied, const std::string& name);
  ~Segment();
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;

  const std::string& name() const { return name_; }
  const std::string& path() const { return path_; }
  std::uint64_t capacity() const { return capacity_; }
  std::uint64_t end() const { return end_; }  // only under the caller's append lock
  std::uint64_t generation() const { return generation_; }
  // Whether a record of `bytes` (and its frame trailer) can still be appended.
  bool fits(std::uint64_t bytes) const {
    return !sealed_ && end_ <= capacity_ && bytes <= capacity_ - end_ &&
           kFrameTrailerBytes <= capacity_ - end_ - bytes;
  }
  void seal() { sealed_ = true; }
  bool sealed() const { return sealed_; }

  // Writes the record's three parts and the frame trailer at end() and advances it (call under the
  // caller's append lock, after fits()). Returns 0 or the errno of the failure; a failed append seals the segment.
  int append(const std::string& prefix, const std::string& payload, const std::string& trailer,
             std::uint64_t& offset);
  // Waits for an fdatasync that started after every append made before this call. False when
  // that sync (or a later one) failed: the durability of those appends is unknown.
  bool syncAppends();

  // Reads one record's bytes.
  std::vector<std::uint8_t> read(std::uint64_t offset, std::uint64_t length) const;
  // Appends to the delivery log (not synced; see above). False when it cannot be written.
  bool markDone(std::uint64_t offset, std::uint64_t length);
  // Removes the segment and its delivery log (after its last record left the queue).
  void remove();

  std::uint64_t live = 0;  // records in the queue (or being written); guarded by the Spool

 private:
  Segment(std::string directory, std::string name, int fd, std::uint64_t capacity, std::uint64_t end,
          std::uint64_t generation);

  std::string directory_;
  std::string name_;
  std::string path_;
  int fd_ = -1;
  std::uint64_t capacity_ = 0;
  std::uint64_t end_ = 0;
  std::uint64_t generation_ = 0;
  std::atomic<bool> sealed_{false};

  std::mutex doneMutex_;
  int doneFd_ = -1;

  GroupSync appendSync_;  // one fdatasync shared by concurrent appenders
};

}  // namespace pacsgw::gateway::spool
