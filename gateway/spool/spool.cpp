#include "gateway/spool/spool.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <signal.h>
#include <sstream>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace pacsgw::gateway::spool {

namespace {

constexpr const char* kRecordSuffix = ".rec";
constexpr const char* kPartialSuffix = ".part";
constexpr const char* kReasonSuffix = ".reason";
constexpr const char* kRetryFlag = "retry-requested";
constexpr const char* kStatusFile = "status.json";

bool endsWith(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::int64_t nowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string errnoText(int error) { return std::strerror(error); }

// Names sort by arrival: milliseconds since the epoch, a per-process tag, a counter.
std::string newRecordName(std::int64_t unixMs = nowUnixMs()) {
  static const std::uint32_t processTag = std::random_device{}();
  static std::atomic<std::uint32_t> counter{0};
  char name[64];
  std::snprintf(name, sizeof name, "%013lld-%08x-%08x", static_cast<long long>(unixMs), processTag,
                counter.fetch_add(1));
  return name;
}

// A segment's records are named by arrival time, segment and offset, so a restart finds the same names.
std::string segmentRecordName(std::int64_t receivedUnixMs, const std::string& segment, std::uint64_t offset) {
  char name[128];
  std::snprintf(name, sizeof name, "%013lld-%s-%012llx", static_cast<long long>(receivedUnixMs), segment.c_str(),
                static_cast<unsigned long long>(offset));
  return name;
}

void makePrivateDirectory(const std::string& path) {
  fs::create_directories(path);
  ::chmod(path.c_str(), 0700);
}

bool fsyncPath(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

// Writes every byte or returns the errno of the failure.
int writeBytes(int fd, const char* data, std::size_t left) {
  while (left > 0) {
    const ssize_t n = ::write(fd, data, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;
    data += n;
    left -= static_cast<std::size_t>(n);
  }
  return 0;
}

int writeAll(int fd, const std::string& prefix, const std::string& payload, const std::string& trailer) {
  for (const std::string* part : {&prefix, &payload, &trailer}) {
    if (const int error = writeBytes(fd, part->data(), part->size()); error != 0) return error;
  }
  return 0;
}

std::string readReason(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line.empty() ? "(no reason recorded)" : line;
}

}  // namespace

std::int64_t receivedUnixMsOfName(const std::string& name) {
  if (name.size() < 13) return 0;
  std::int64_t value = 0;
  for (std::size_t i = 0; i < 13; ++i) {
    if (name[i] < '0' || name[i] > '9') return 0;
    value = value * 10 + (name[i] - '0');
  }
  return value;
}

Spool::Spool(std::string directory, SpoolLimits limits)
    : directory_(std::move(directory)),
      queueDir_((fs::path(directory_) / "queue").string()),
      quarantineDir_((fs::path(directory_) / "quarantine").string()),
      limits_(limits) {
  makePrivateDirectory(directory_);
  makePrivateDirectory(queueDir_);
  makePrivateDirectory(quarantineDir_);
  std::size_t partial = 0;
  for (const auto& entry : fs::directory_iterator(queueDir_)) {
    const std::string name = entry.path().filename().string();
    if (endsWith(name, kPartialSuffix)) {
      // A write the gateway never acknowledged (it died before the rename): not ours to deliver.
      std::error_code ec;
      fs::remove(entry.path(), ec);
      ++partial;
    } else if (endsWith(name, kRecordSuffix) && entry.is_regular_file()) {
      addLocked(name.substr(0, name.size() - 4), static_cast<std::uint64_t>(entry.file_size()));
    } else if (endsWith(name, kSegmentSuffix) && entry.is_regular_file()) {
      recoverSegment(name.substr(0, name.size() - std::strlen(kSegmentSuffix)));
    }
  }
  for (const auto& entry : fs::directory_iterator(queueDir_)) {
    // The delivery log of a segment that was removed just before a crash.
    const fs::path path = entry.path();
    if (path.extension() == kDeliveryLogSuffix &&
        !fs::exists(fs::path(path).replace_extension(kSegmentSuffix))) {
      std::error_code ec;
      fs::remove(path, ec);
    }
  }
  if (partial > 0) {
    fsyncPath(queueDir_, O_RDONLY | O_DIRECTORY);
    spdlog::warn("spool: removed {} incomplete writes left by an interrupted gateway (never acknowledged)", partial);
  }
  for (const auto& entry : fs::directory_iterator(quarantineDir_)) {
    const std::string name = entry.path().filename().string();
    if (endsWith(name, kRecordSuffix) && entry.is_regular_file()) {
      ++quarantined_;
      bytes_ += static_cast<std::uint64_t>(entry.file_size());
    }
  }
  spdlog::info("spool {}: {} queued, {} quarantined, {:.1f} MB", directory_, entries_.size(), quarantined_,
               static_cast<double>(bytes_) / 1e6);
  if (limits_.segmentBytes > 0) {
    // The first segment before the first association, the next ones in the background.
    std::string failure;
    active_ = makeSegment(failure);
    if (!active_) spdlog::warn("spool: {}; storing a file per instance until a segment can be made", failure);
    prepareWanted_ = true;
    preparer_ = std::thread([this] { prepareSegments(); });
  }
}

Spool::~Spool() {
  {
    std::lock_guard<std::mutex> lock(prepareMutex_);
    stopping_ = true;
    prepareWake_.notify_all();
  }
  if (preparer_.joinable()) preparer_.join();
  // The ready segment, an empty active one and one spare are reused at the next start.
  for (std::size_t i = 1; i < emptied_.size(); ++i) emptied_[i]->remove();
}

std::shared_ptr<Segment> Spool::makeSegment(std::string& failure) {
  std::shared_ptr<Segment> emptied;
  {
    std::lock_guard<std::mutex> lock(prepareMutex_);
    if (!emptied_.empty()) {
      emptied = emptied_.back();
      emptied_.pop_back();
    }
  }
  std::shared_ptr<Segment> segment;
  try {
    if (emptied) {
      try {
        segment = Segment::reuse(*emptied, "s" + newRecordName());
      } catch (const std::exception& e) {
        spdlog::warn("spool: {}; removing it", e.what());
        emptied->remove();
      }
    }
    if (!segment) segment = Segment::create(queueDir_, "s" + newRecordName(), limits_.segmentBytes);
  } catch (const std::exception& e) {
    failure = e.what();
    return nullptr;
  }
  if (!fsyncPath(queueDir_, O_RDONLY | O_DIRECTORY)) {
    segment->remove();
    failure = "cannot sync " + queueDir_;
    return nullptr;
  }
  return segment;
}

void Spool::reclaimSegment(std::shared_ptr<Segment> segment) {
  std::lock_guard<std::mutex> lock(prepareMutex_);
  emptied_.push_back(std::move(segment));
  prepareWake_.notify_all();
}

void Spool::recoverSegment(const std::string& name) {
  const std::string path = (fs::path(queueDir_) / (name + kSegmentSuffix)).string();
  std::shared_ptr<Segment> segment;
  SegmentScan scan;
  try {
    scan = scanSegmentFile(path);
    if (scan.generation == 0 && !scan.stopReason.empty()) {
      spdlog::error("spool: {} is not a spool segment ({}); left alone", path, scan.stopReason);
      return;
    }
    segment = Segment::openSealed(queueDir_, name, scan.generation);
  } catch (const std::exception& e) {
    spdlog::error("spool: {}; its records stay on disk, undelivered", e.what());
    return;
  }
  const auto done = readDeliveryLog((fs::path(queueDir_) / (name + kDeliveryLogSuffix)).string());
  for (const ScannedRecord& record : scan.records) {
    if (done.count({record.offset, record.length}) != 0) continue;
    addLocked(segmentRecordName(record.receivedUnixMs, name, record.offset), record.length, segment, record.offset);
  }
  if (!scan.stopReason.empty() && !scan.records.empty()) {
    // Past the last complete record: a write that was never acknowledged.
    spdlog::warn("spool: segment {} ends in an incomplete record at offset {} ({}); ignored, it was never "
                 "acknowledged", name, scan.end, scan.stopReason);
  }
  if (segment->live == 0) emptied_.push_back(segment);  // reused (the preparer is not running yet)
}

void Spool::prepareSegments() {
  std::unique_lock<std::mutex> lock(prepareMutex_);
  while (true) {
    prepareWake_.wait(lock, [this] {
      return stopping_ || (prepareWanted_ && !prepared_) || (prepared_ && emptied_.size() > 1);
    });
    if (stopping_) return;
    if (prepared_) {
      // One segment ready and one spare to reuse next are enough; the space of more goes back to the disk.
      std::vector<std::shared_ptr<Segment>> surplus(emptied_.begin() + 1, emptied_.end());
      emptied_.resize(1);
      lock.unlock();
      for (const auto& segment : surplus) segment->remove();
      lock.lock();
      continue;
    }
    lock.unlock();
    std::string failure;
    std::shared_ptr<Segment> segment = makeSegment(failure);
    lock.lock();
    if (segment) {
      prepared_ = std::move(segment);
      prepareWanted_ = false;
      continue;
    }
    // Most likely a full disk: records get files of their own (which fail cleanly) until space returns.
    spdlog::warn("spool: {}; storing a file per instance, next attempt in 10 s", failure);
    prepareWake_.wait_for(lock, std::chrono::seconds(10), [this] { return stopping_; });
  }
}

std::shared_ptr<Segment> Spool::segmentFor(std::uint64_t bytes) {
  if (limits_.segmentBytes == 0 || bytes > limits_.segmentBytes) return nullptr;
  if (active_ && active_->fits(bytes)) return active_;
  if (active_) {
    active_->seal();
    std::lock_guard<std::mutex> lock(mutex_);
    if (active_->live == 0) reclaimSegment(active_);
  }
  {
    std::lock_guard<std::mutex> lock(prepareMutex_);
    active_ = std::move(prepared_);
    prepared_.reset();
    prepareWanted_ = true;
    prepareWake_.notify_all();
  }
  return active_ && active_->fits(bytes) ? active_ : nullptr;
}

void Spool::addLocked(const std::string& name, std::uint64_t bytes, std::shared_ptr<Segment> segment,
                      std::uint64_t offset) {
  Entry entry;
  entry.bytes = bytes;
  entry.due = Clock::time_point{};  // due now; equal due times order by name, i.e. by arrival
  entry.segment = std::move(segment);
  entry.offset = offset;
  const auto inserted = entries_.emplace(name, entry);
  if (!inserted.second) return;
  if (inserted.first->second.segment) ++inserted.first->second.segment->live;
  ready_.insert({entry.due, name});
  bytes_ += bytes;
}

void Spool::releaseSegmentLocked(const std::shared_ptr<Segment>& segment) {
  if (segment->live > 0) --segment->live;
  if (segment->live == 0 && segment->sealed()) reclaimSegment(segment);
}

void Spool::removeLocked(const std::string& name) {
  const auto it = entries_.find(name);
  if (it == entries_.end()) return;
  if (it->second.inFlight) {
    --inFlight_;
  } else {
    ready_.erase({it->second.due, name});
  }
  bytes_ -= std::min(bytes_, it->second.bytes);
  if (it->second.segment) releaseSegmentLocked(it->second.segment);
  entries_.erase(it);
}

bool Spool::syncQueueDirectory() {
  // Covers our rename: a failure leaves its durability unknown.
  return directorySync_.run([this] { return fsyncPath(queueDir_, O_RDONLY | O_DIRECTORY); });
}

bool Spool::reserve(std::uint64_t size, AdmitResult& result) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::uint64_t instances = entries_.size() + quarantined_ + reservedInstances_;
  if (instances + 1 > limits_.maxInstances || bytes_ + reservedBytes_ + size > limits_.maxBytes) {
    ++refusedFull_;
    result.full = true;
    result.reason = "spool full (" + std::to_string(instances) + " instances, " +
                    std::to_string((bytes_ + reservedBytes_) / 1000000) + " MB)";
    return false;
  }
  reservedBytes_ += size;
  ++reservedInstances_;
  return true;
}

AdmitResult Spool::admit(const SpoolRecordMeta& meta, const std::string& payload) {
  AdmitResult result;
  std::string prefix;
  try {
    prefix = encodeSpoolRecordPrefix(meta, payload.size());
  } catch (const SpoolRecordError& e) {
    result.reason = std::string("cannot spool: ") + e.what();
    return result;
  }
  const std::string trailer =
      encodeSpoolRecordTrailer(spoolChecksum(spoolChecksum(0, prefix.data(), prefix.size()), payload.data(),
                                             payload.size()));
  const std::uint64_t size = prefix.size() + payload.size() + trailer.size();
  if (!reserve(size, result)) return result;
  std::string failure;
  std::shared_ptr<Segment> segment;
  std::uint64_t offset = 0;
  int appendError = 0;
  {
    // Choosing the segment and appending form one step: appends are serialised, so every byte
    // before an acknowledged record belongs to a complete one.
    std::lock_guard<std::mutex> appendLock(appendMutex_);
    segment = segmentFor(size);
    if (segment) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        ++segment->live;  // keeps the segment while the write is in progress
      }
      appendError = segment->append(prefix, payload, trailer, offset);
    }
  }
  std::string name;
  if (segment) {
    failure = appendError != 0 ? "cannot write to " + segment->path() + ": " + errnoText(appendError)
                               : syncSegmentAppend(segment, offset, size);
    name = segmentRecordName(meta.receivedUnixMs, segment->name(), offset);
  } else {
    name = newRecordName(meta.receivedUnixMs);  // sorts with segment records by arrival
    failure = admitToFile(name, prefix, payload, trailer);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  reservedBytes_ -= size;
  --reservedInstances_;
  if (!failure.empty()) {
    if (segment) releaseSegmentLocked(segment);
    ++writeErrors_;
    result.reason = failure;
    return result;
  }
  addLocked(name, size, segment, offset);
  if (segment) releaseSegmentLocked(segment);  // addLocked counted the record
  ++accepted_;
  result.stored = true;
  result.name = name;
  changed_.notify_one();
  return result;
}

std::string Spool::syncSegmentAppend(const std::shared_ptr<Segment>& segment, std::uint64_t offset,
                                     std::uint64_t length) {
  if (segment->syncAppends()) return "";
  std::lock_guard<std::mutex> appendLock(appendMutex_);
  segment->seal();
  // Complete but not acknowledged: keep it from being delivered after a restart.
  segment->markDone(offset, length);
  return "cannot sync " + segment->path();
}

std::string Spool::admitToFile(const std::string& name, const std::string& prefix, const std::string& payload,
                               const std::string& trailer) {
  return commitRecordFile(name, [&](int fd) { return writeAll(fd, prefix, payload, trailer); });
}

std::string Spool::commitRecordFile(const std::string& name, const std::function<int(int fd)>& write) {
  const std::string partialPath = (fs::path(queueDir_) / (name + kPartialSuffix)).string();
  const std::string recordPath = (fs::path(queueDir_) / (name + kRecordSuffix)).string();
  std::string failure;
  const int fd = ::open(partialPath.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    failure = "cannot create " + partialPath + ": " + errnoText(errno);
  } else {
    int error = write(fd);
    // fdatasync persists the data and the file size, all a reader of the record needs.
    if (error == 0 && ::fdatasync(fd) != 0) error = errno;
    if (::close(fd) != 0 && error == 0) error = errno;
    if (error != 0) {
      failure = "cannot write " + partialPath + ": " + errnoText(error);
    } else if (::rename(partialPath.c_str(), recordPath.c_str()) != 0) {
      failure = "cannot commit " + recordPath + ": " + errnoText(errno);
    } else if (!syncQueueDirectory()) {
      failure = "cannot sync the spool directory " + queueDir_;
      ::unlink(recordPath.c_str());  // not acknowledged, so not ours to keep
    }
    if (!failure.empty()) ::unlink(partialPath.c_str());
  }
  return failure;
}

AdmitResult Spool::admitStreamed(const SpoolRecordMeta& meta, std::uint64_t payloadSize, const PayloadWriter& write) {
  AdmitResult result;
  std::string prefix;
  try {
    prefix = encodeSpoolRecordPrefix(meta, payloadSize);
  } catch (const SpoolRecordError& e) {
    result.reason = std::string("cannot spool: ") + e.what();
    return result;
  }
  const std::uint64_t size = prefix.size() + payloadSize + 4;
  if (!reserve(size, result)) return result;
  const std::string name = newRecordName(meta.receivedUnixMs);
  std::string produceFailure;  // the payload could not be produced (not a disk problem)
  const std::string failure = commitRecordFile(name, [&](int fd) {
    // The whole record's space first: a disk that cannot hold it refuses it before the payload is
    // encoded, and records written at the same time cannot count the same free space twice.
    if (const int error = ::posix_fallocate(fd, 0, static_cast<off_t>(size));
        error != 0 && error != EOPNOTSUPP && error != EINVAL) {
      return error;
    }
    std::uint32_t crc = spoolChecksum(0, prefix.data(), prefix.size());
    if (const int error = writeBytes(fd, prefix.data(), prefix.size()); error != 0) return error;
    std::uint64_t written = 0;
    int error = 0;
    try {
      write([&](const void* data, std::size_t length) {
        if (length > payloadSize - written) throw std::runtime_error("the payload is longer than announced");
        error = writeBytes(fd, static_cast<const char*>(data), length);
        if (error != 0) throw std::runtime_error(errnoText(error));
        crc = spoolChecksum(crc, data, length);
        written += length;
      });
    } catch (const std::exception& e) {
      if (error != 0) return error;
      produceFailure = e.what();
      return EINVAL;
    }
    if (written != payloadSize) {
      produceFailure = "the payload has " + std::to_string(written) + " bytes, " + std::to_string(payloadSize) +
                       " were announced";
      return EINVAL;
    }
    const std::string trailer = encodeSpoolRecordTrailer(crc);
    return writeBytes(fd, trailer.data(), trailer.size());
  });
  std::lock_guard<std::mutex> lock(mutex_);
  reservedBytes_ -= size;
  --reservedInstances_;
  if (!failure.empty()) {
    ++writeErrors_;
    result.reason = produceFailure.empty() ? failure : "cannot spool: " + produceFailure;
    return result;
  }
  addLocked(name, size);
  ++accepted_;
  result.stored = true;
  result.name = name;
  changed_.notify_one();
  return result;
}

std::optional<ClaimedRecord> Spool::claim(std::chrono::milliseconds maxWait) {
  std::unique_lock<std::mutex> lock(mutex_);
  const auto deadline = Clock::now() + maxWait;
  while (true) {
    if (woken_) {
      woken_ = false;
      return std::nullopt;
    }
    const auto now = Clock::now();
    if (!ready_.empty() && ready_.begin()->first <= now) {
      const std::string name = ready_.begin()->second;
      ready_.erase(ready_.begin());
      Entry& entry = entries_.at(name);
      entry.inFlight = true;
      ++inFlight_;
      if (entry.segment) {
        return ClaimedRecord{name, entry.segment->path(), entry.attempts, entry.segment, entry.offset, entry.bytes};
      }
      return ClaimedRecord{name, (fs::path(queueDir_) / (name + kRecordSuffix)).string(), entry.attempts, nullptr,
                           0, entry.bytes};
    }
    if (now >= deadline) return std::nullopt;
    auto until = deadline;
    if (!ready_.empty() && ready_.begin()->first < until) until = ready_.begin()->first;
    changed_.wait_until(lock, until);
  }
}

std::vector<std::uint8_t> Spool::read(const ClaimedRecord& record) const {
  if (record.segment) return record.segment->read(record.offset, record.length);
  std::ifstream in(record.path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + record.path);
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw std::runtime_error("cannot read " + record.path);
  return bytes;
}

void Spool::delivered(const ClaimedRecord& record) {
  // A removal lost in a crash only means one more (idempotent) delivery after restart.
  if (record.segment) {
    record.segment->markDone(record.offset, record.length);
  } else {
    ::unlink(record.path.c_str());
  }
  std::lock_guard<std::mutex> lock(mutex_);
  removeLocked(record.name);
  ++delivered_;
}

void Spool::retryLater(const ClaimedRecord& record, std::chrono::milliseconds delay, bool countAttempt) {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto it = entries_.find(record.name);
  if (it == entries_.end() || !it->second.inFlight) return;
  it->second.inFlight = false;
  --inFlight_;
  if (countAttempt) ++it->second.attempts;
  // No delay: the record keeps its place in arrival order.
  it->second.due = delay.count() > 0 ? Clock::now() + delay : Clock::time_point{};
  ready_.insert({it->second.due, record.name});
  changed_.notify_one();
}

void Spool::quarantine(const ClaimedRecord& record, const std::string& reason) {
  const fs::path target = fs::path(quarantineDir_) / (record.name + kRecordSuffix);
  const fs::path reasonPath = fs::path(quarantineDir_) / (record.name + kReasonSuffix);
  std::uint64_t size = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto it = entries_.find(record.name);
    if (it != entries_.end()) size = it->second.bytes;
  }
  {
    std::ofstream out(reasonPath, std::ios::trunc);
    out << reason << "\n";
  }
  bool moved;
  if (record.segment) {
    // A record file of its own in quarantine/, so that `spool retry` and operators can handle it.
    moved = copyToQuarantine(record, target);
    fsyncPath(quarantineDir_, O_RDONLY | O_DIRECTORY);
    if (!moved) {
      // Its only copy is in the segment: keep it queued rather than let the segment go.
      std::error_code ec;
      fs::remove(reasonPath, ec);
      retryLater(record, std::chrono::minutes(1), false);
      return;
    }
    record.segment->markDone(record.offset, record.length);
  } else {
    moved = ::rename(record.path.c_str(), target.c_str()) == 0;
    if (!moved) spdlog::error("spool: cannot move {} to quarantine: {}", record.name, errnoText(errno));
    fsyncPath(quarantineDir_, O_RDONLY | O_DIRECTORY);
    fsyncPath(queueDir_, O_RDONLY | O_DIRECTORY);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  removeLocked(record.name);
  if (moved) {
    ++quarantined_;
    bytes_ += size;
  }
}

bool Spool::copyToQuarantine(const ClaimedRecord& record, const std::string& target) const {
  const std::string partial = target + kPartialSuffix;
  try {
    const std::vector<std::uint8_t> bytes = read(record);
    const int fd = ::open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) throw std::runtime_error("cannot create " + partial + ": " + errnoText(errno));
    const std::string data(bytes.begin(), bytes.end());
    int error = writeAll(fd, data, std::string(), std::string());
    if (error == 0 && ::fdatasync(fd) != 0) error = errno;
    if (::close(fd) != 0 && error == 0) error = errno;
    if (error == 0 && ::rename(partial.c_str(), target.c_str()) != 0) error = errno;
    if (error != 0) throw std::runtime_error("cannot write " + target + ": " + errnoText(error));
    return true;
  } catch (const std::exception& e) {
    ::unlink(partial.c_str());
    spdlog::error("spool: cannot move {} to quarantine (it stays queued on disk): {}", record.name, e.what());
    return false;
  }
}

void Spool::forget(const ClaimedRecord& record) {
  std::lock_guard<std::mutex> lock(mutex_);
  removeLocked(record.name);
}

void Spool::rescan() {
  // Only `pacsgw spool retry` changes the directories behind our back, and it leaves this flag.
  const fs::path flag = fs::path(directory_) / kRetryFlag;
  std::error_code ec;
  if (!fs::remove(flag, ec)) return;
  std::vector<std::pair<std::string, std::uint64_t>> found;
  for (fs::directory_iterator it(queueDir_, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!endsWith(name, kRecordSuffix)) continue;
    std::error_code sizeError;
    const auto size = fs::file_size(it->path(), sizeError);
    if (!sizeError) found.emplace_back(name.substr(0, name.size() - 4), static_cast<std::uint64_t>(size));
  }
  std::uint64_t quarantined = 0, quarantinedBytes = 0;
  for (fs::directory_iterator it(quarantineDir_, ec), end; !ec && it != end; it.increment(ec)) {
    if (!endsWith(it->path().filename().string(), kRecordSuffix)) continue;
    std::error_code sizeError;
    const auto size = fs::file_size(it->path(), sizeError);
    ++quarantined;
    if (!sizeError) quarantinedBytes += size;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  std::size_t added = 0;
  for (const auto& [name, size] : found) {
    if (entries_.count(name) != 0) continue;
    addLocked(name, size);
    ++added;
  }
  // Quarantine is only changed by us and by `spool retry`: take its size from the disk.
  std::uint64_t queueBytes = 0;
  for (const auto& [name, entry] : entries_) queueBytes += entry.bytes;
  quarantined_ = quarantined;
  bytes_ = queueBytes + quarantinedBytes;
  {
    std::vector<std::string> waiting;
    for (const auto& item : ready_) waiting.push_back(item.second);
    ready_.clear();
    for (const std::string& name : waiting) {
      entries_[name].due = Clock::time_point{};
      ready_.insert({Clock::time_point{}, name});
    }
  }
  spdlog::info("spool: retry requested; {} records returned to the queue, retrying everything now", added);
  changed_.notify_all();
}

void Spool::wake() {
  std::lock_guard<std::mutex> lock(mutex_);
  woken_ = true;
  changed_.notify_all();
}

SpoolStats Spool::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  SpoolStats s;
  s.inFlight = inFlight_;
  s.queued = entries_.size() - inFlight_;
  s.quarantined = quarantined_;
  s.bytes = bytes_;
  s.oldestReceivedUnixMs = entries_.empty() ? 0 : receivedUnixMsOfName(entries_.begin()->first);
  s.accepted = accepted_;
  s.delivered = delivered_;
  s.refusedFull = refusedFull_;
  s.writeErrors = writeErrors_;
  return s;
}

void publishStatus(const std::string& directory, const SpoolStats& s) {
  const fs::path target = fs::path(directory) / kStatusFile;
  const fs::path temporary = fs::path(directory) / (std::string(kStatusFile) + kPartialSuffix);
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << "{\"pid\": " << ::getpid() << ", \"updated_unix_ms\": " << nowUnixMs() << ", \"queued\": " << s.queued
        << ", \"in_flight\": " << s.inFlight << ", \"quarantined\": " << s.quarantined
        << ", \"accepted\": " << s.accepted << ", \"delivered\": " << s.delivered
        << ", \"refused_full\": " << s.refusedFull << ", \"write_errors\": " << s.writeErrors << "}\n";
  }
  std::error_code ec;
  fs::rename(temporary, target, ec);
}

namespace {

// A number from status.json written by publishStatus (a flat object of integers).
std::optional<std::uint64_t> jsonNumber(const std::string& text, const std::string& key) {
  const std::string quoted = "\"" + key + "\":";
  const auto at = text.find(quoted);
  if (at == std::string::npos) return std::nullopt;
  std::size_t pos = at + quoted.size();
  while (pos < text.size() && text[pos] == ' ') ++pos;
  std::uint64_t value = 0;
  bool any = false;
  while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
    value = value * 10 + static_cast<std::uint64_t>(text[pos++] - '0');
    any = true;
  }
  return any ? std::optional<std::uint64_t>(value) : std::nullopt;
}

}  // namespace

SpoolSnapshot inspectSpool(const std::string& directory) {
  SpoolSnapshot snapshot;
  const fs::path queue = fs::path(directory) / "queue";
  const fs::path quarantine = fs::path(directory) / "quarantine";
  if (!fs::is_directory(directory)) throw std::runtime_error("no spool at " + directory);
  std::error_code ec;
  for (fs::directory_iterator it(queue, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (endsWith(name, kPartialSuffix)) {
      ++snapshot.partial;
    } else if (endsWith(name, kSegmentSuffix)) {
      const std::string base = name.substr(0, name.size() - std::strlen(kSegmentSuffix));
      // The delivery log first: a running gateway that reuses this segment meanwhile writes the new
      // generation before it removes the log, so its delivered records are never counted as queued.
      const auto done = readDeliveryLog((queue / (base + kDeliveryLogSuffix)).string());
      SegmentScan scan;
      try {
        scan = scanSegmentFile(it->path().string());
      } catch (const std::exception&) {
        continue;  // removed by the gateway while we looked
      }
      for (const ScannedRecord& record : scan.records) {
        if (done.count({record.offset, record.length}) != 0) continue;
        ++snapshot.queued;
        snapshot.queuedBytes += record.length;
        if (record.receivedUnixMs > 0 &&
            (snapshot.oldestReceivedUnixMs == 0 || record.receivedUnixMs < snapshot.oldestReceivedUnixMs)) {
          snapshot.oldestReceivedUnixMs = record.receivedUnixMs;
        }
      }
    } else if (endsWith(name, kRecordSuffix)) {
      ++snapshot.queued;
      std::error_code sizeError;
      snapshot.queuedBytes += fs::file_size(it->path(), sizeError);
      const std::int64_t received = receivedUnixMsOfName(name);
      if (received > 0 && (snapshot.oldestReceivedUnixMs == 0 || received < snapshot.oldestReceivedUnixMs)) {
        snapshot.oldestReceivedUnixMs = received;
      }
    }
  }
  for (fs::directory_iterator it(quarantine, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!endsWith(name, kRecordSuffix)) continue;
    const std::string base = name.substr(0, name.size() - 4);
    snapshot.quarantined.push_back({base, readReason(quarantine / (base + kReasonSuffix))});
  }
  std::sort(snapshot.quarantined.begin(), snapshot.quarantined.end(),
            [](const QuarantinedRecord& a, const QuarantinedRecord& b) { return a.name < b.name; });
  // In-flight counts only exist inside a running gateway: trust its status file while it is alive and fresh.
  std::ifstream in(fs::path(directory) / kStatusFile);
  if (in) {
    std::stringstream text;
    text << in.rdbuf();
    const auto pid = jsonNumber(text.str(), "pid");
    const auto updated = jsonNumber(text.str(), "updated_unix_ms");
    const bool alive = pid && *pid > 0 && ::kill(static_cast<pid_t>(*pid), 0) == 0;
    const bool fresh = updated && nowUnixMs() - static_cast<std::int64_t>(*updated) < 10000;
    if (alive && fresh) {
      snapshot.inFlight = jsonNumber(text.str(), "in_flight");
      snapshot.delivered = jsonNumber(text.str(), "delivered");
    }
  }
  return snapshot;
}

std::size_t requeueQuarantined(const std::string& directory, const std::vector<std::string>& names) {
  const fs::path queue = fs::path(directory) / "queue";
  const fs::path quarantine = fs::path(directory) / "quarantine";
  if (!fs::is_directory(quarantine)) throw std::runtime_error("no spool at " + directory);
  std::vector<std::string> selected;
  std::error_code ec;
  for (fs::directory_iterator it(quarantine, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!endsWith(name, kRecordSuffix)) continue;
    const std::string base = name.substr(0, name.size() - 4);
    if (names.empty() || std::find(names.begin(), names.end(), base) != names.end()) selected.push_back(base);
  }
  std::size_t moved = 0;
  for (const std::string& base : selected) {
    fs::rename(quarantine / (base + kRecordSuffix), queue / (base + kRecordSuffix), ec);
    if (ec) throw std::runtime_error("cannot move " + base + " back to the queue: " + ec.message());
    fs::remove(quarantine / (base + kReasonSuffix), ec);
    ++moved;
  }
  fsyncPath(queue.string(), O_RDONLY | O_DIRECTORY);
  fsyncPath(quarantine.string(), O_RDONLY | O_DIRECTORY);
  // Tell a running gateway to look now and to retry what is waiting for its backoff.
  std::ofstream(fs::path(directory) / kRetryFlag).put('\n');
  return moved;
}

}  // namespace pacsgw::gateway::spool
