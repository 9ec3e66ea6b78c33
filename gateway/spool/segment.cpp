#include "gateway/spool/segment.h"

#include <array>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <stdexcept>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

namespace pacsgw::gateway::spool {

namespace {

constexpr std::size_t kPrefixFixedBytes = 12;  // magic + header length
constexpr std::size_t kPayloadLengthBytes = 8;
constexpr std::size_t kTrailerBytes = 4;
constexpr std::size_t kZeroChunk = 1 << 20;
constexpr std::uint64_t kZeroSyncEvery = 8ull << 20;  // keeps the disk queue short for foreground syncs

std::uint64_t le(const std::uint8_t* data, int bytes) {
  std::uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value |= static_cast<std::uint64_t>(data[i]) << (8 * i);
  return value;
}

bool allZero(const std::uint8_t* data, std::size_t size) {
  for (std::size_t i = 0; i < size; ++i) {
    if (data[i] != 0) return false;
  }
  return true;
}

bool preadAll(int fd, std::uint64_t offset, std::size_t length, std::uint8_t* out) {
  while (length > 0) {
    const ssize_t n = ::pread(fd, out, length, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    out += n;
    offset += static_cast<std::uint64_t>(n);
    length -= static_cast<std::size_t>(n);
  }
  return true;
}

std::string errnoText(int error) { return std::strerror(error); }

constexpr char kSegmentMagic[8] = {'P', 'G', 'W', 'S', 'E', 'G', '0', '1'};

void putLe(std::uint8_t* out, std::uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out[i] = static_cast<std::uint8_t>((value >> (8 * i)) & 0xFF);
}

std::array<std::uint8_t, kSegmentHeaderBytes> segmentHeader(std::uint64_t generation) {
  std::array<std::uint8_t, kSegmentHeaderBytes> header{};
  std::memcpy(header.data(), kSegmentMagic, sizeof kSegmentMagic);
  putLe(header.data() + 8, generation, 8);
  putLe(header.data() + 28, spoolChecksum(0, header.data(), 28), 4);
  return header;
}

// The generation of a valid header, else 0.
std::uint64_t headerGeneration(const std::uint8_t* header) {
  if (std::memcmp(header, kSegmentMagic, sizeof kSegmentMagic) != 0) return 0;
  if (spoolChecksum(0, header, 28) != static_cast<std::uint32_t>(le(header + 28, 4))) return 0;
  return le(header + 8, 8);
}

// Binds a record to its segment's generation: a record left from an earlier use never matches.
std::array<std::uint8_t, kFrameTrailerBytes> frameTrailer(std::uint64_t generation, const std::uint8_t* recordCrc) {
  std::array<std::uint8_t, kFrameTrailerBytes> trailer{};
  putLe(trailer.data(), generation, 8);
  std::uint32_t crc = spoolChecksum(0, trailer.data(), 8);
  crc = spoolChecksum(crc, recordCrc, 4);
  putLe(trailer.data() + 8, crc, 4);
  return trailer;
}

bool writeHeader(int fd, std::uint64_t generation) {
  const auto header = segmentHeader(generation);
  ssize_t n;
  do {
    n = ::pwrite(fd, header.data(), header.size(), 0);
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(header.size());
}

}  // namespace

SegmentScan scanSegment(std::uint64_t size, const ReadAt& readAt) {
  SegmentScan scan;
  std::uint8_t header[kSegmentHeaderBytes];
  if (size < kSegmentHeaderBytes || !readAt(0, kSegmentHeaderBytes, header)) {
    scan.stopReason = "no segment header";
    return scan;
  }
  scan.generation = headerGeneration(header);
  if (scan.generation == 0) {
    // All zeros: a segment whose preparation was interrupted. Anything else is not ours.
    if (!allZero(header, sizeof header)) scan.stopReason = "not a segment header";
    return scan;
  }
  std::uint64_t offset = kSegmentHeaderBytes;
  std::vector<std::uint8_t> record;
  while (offset < size) {
    const std::uint64_t left = size - offset;
    std::uint8_t fixed[kPrefixFixedBytes];
    if (left < kPrefixFixedBytes) {
      scan.stopReason = "a record start is cut off";
      break;
    }
    if (!readAt(offset, kPrefixFixedBytes, fixed)) {
      scan.stopReason = "read error";
      break;
    }
    if (allZero(fixed, sizeof fixed)) break;  // zero fill: the end of the records
    const std::uint64_t headerLength = le(fixed + 8, 4);
    if (headerLength > kMaxHeaderBytes) {
      scan.stopReason = "not a record (header length)";
      break;
    }
    const std::uint64_t beforePayload = kPrefixFixedBytes + headerLength + kPayloadLengthBytes;
    if (beforePayload + kTrailerBytes > left) {
      scan.stopReason = "a record is cut off";
      break;
    }
    std::uint8_t payloadLengthBytes[kPayloadLengthBytes];
    if (!readAt(offset + kPrefixFixedBytes + headerLength, kPayloadLengthBytes, payloadLengthBytes)) {
      scan.stopReason = "read error";
      break;
    }
    const std::uint64_t payloadLength = le(payloadLengthBytes, 8);
    if (payloadLength > left - beforePayload - kTrailerBytes ||
        kFrameTrailerBytes > left - beforePayload - kTrailerBytes - payloadLength) {
      scan.stopReason = "a record is cut off";
      break;
    }
    const std::uint64_t length = beforePayload + payloadLength + kTrailerBytes;
    record.resize(static_cast<std::size_t>(length + kFrameTrailerBytes));
    if (!readAt(offset, record.size(), record.data())) {
      scan.stopReason = "read error";
      break;
    }
    std::int64_t received = 0;
    try {
      received = parseSpoolRecord(record.data(), static_cast<std::size_t>(length)).meta.receivedUnixMs;
    } catch (const SpoolRecordError& e) {
      scan.stopReason = e.what();
      break;
    }
    const auto expected = frameTrailer(scan.generation, record.data() + length - kTrailerBytes);
    if (std::memcmp(expected.data(), record.data() + length, kFrameTrailerBytes) != 0) {
      scan.stopReason = "a record of an earlier use of the segment, or a torn frame";
      break;
    }
    scan.records.push_back({offset, length, received});
    offset += length + kFrameTrailerBytes;
  }
  scan.end = offset;
  return scan;
}

SegmentScan scanSegmentBytes(const std::uint8_t* data, std::size_t size) {
  return scanSegment(size, [data, size](std::uint64_t offset, std::size_t length, std::uint8_t* out) {
    if (offset > size || length > size - offset) return false;
    std::memcpy(out, data + offset, length);
    return true;
  });
}

SegmentScan scanSegmentFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot open " + path + ": " + errnoText(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int error = errno;
    ::close(fd);
    throw std::runtime_error("cannot stat " + path + ": " + errnoText(error));
  }
  SegmentScan scan = scanSegment(static_cast<std::uint64_t>(st.st_size),
                                 [fd](std::uint64_t offset, std::size_t length, std::uint8_t* out) {
                                   return preadAll(fd, offset, length, out);
                                 });
  ::close(fd);
  return scan;
}

std::string encodeDeliveryLogEntry(std::uint64_t offset, std::uint64_t length) {
  std::string entry;
  for (int i = 0; i < 8; ++i) entry.push_back(static_cast<char>((offset >> (8 * i)) & 0xFF));
  for (int i = 0; i < 4; ++i) entry.push_back(static_cast<char>((length >> (8 * i)) & 0xFF));
  const std::uint32_t crc = spoolChecksum(0, entry.data(), entry.size());
  for (int i = 0; i < 4; ++i) entry.push_back(static_cast<char>((crc >> (8 * i)) & 0xFF));
  return entry;
}

std::set<std::pair<std::uint64_t, std::uint64_t>> parseDeliveryLog(const std::uint8_t* data, std::size_t size) {
  std::set<std::pair<std::uint64_t, std::uint64_t>> done;
  for (std::size_t at = 0; at + kDeliveryLogEntryBytes <= size; at += kDeliveryLogEntryBytes) {
    const std::uint8_t* entry = data + at;
    if (spoolChecksum(0, entry, 12) != static_cast<std::uint32_t>(le(entry + 12, 4))) continue;
    done.insert({le(entry, 8), le(entry + 8, 4)});
  }
  return done;
}

std::set<std::pair<std::uint64_t, std::uint64_t>> readDeliveryLog(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::vector<std::uint8_t> bytes;
  std::uint8_t chunk[1 << 14];
  while (true) {
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    bytes.insert(bytes.end(), chunk, chunk + n);
  }
  ::close(fd);
  return parseDeliveryLog(bytes.data(), bytes.size());
}

Segment::Segment(std::string directory, std::string name, int fd, std::uint64_t capacity, std::uint64_t end,
                 std::uint64_t generation)
    : directory_(std::move(directory)),
      name_(std::move(name)),
      path_(directory_ + "/" + name_ + kSegmentSuffix),
      fd_(fd),
      capacity_(capacity),
      end_(end),
      generation_(generation) {}

Segment::~Segment() {
  if (fd_ >= 0) ::close(fd_);
  if (doneFd_ >= 0) ::close(doneFd_);
}

std::shared_ptr<Segment> Segment::create(const std::string& directory, const std::string& name,
                                         std::uint64_t capacity) {
  const std::string path = directory + "/" + name + kSegmentSuffix;
  // Leave room for record files and the next segment: never fill the disk with zeros.
  struct statvfs fsStats {};
  if (::statvfs(directory.c_str(), &fsStats) == 0 &&
      static_cast<std::uint64_t>(fsStats.f_bavail) * fsStats.f_frsize / 2 < capacity) {
    throw std::runtime_error("not enough free space in " + directory + " for a " + std::to_string(capacity >> 20) +
                             " MiB segment");
  }
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot create " + path + ": " + errnoText(errno));
  // Real zeros, not fallocate: reserved-but-unwritten extents would turn every record's sync into
  // a metadata commit again.
  const std::vector<char> zeros(kZeroChunk, 0);
  int error = 0;
  std::uint64_t written = 0, sinceSync = 0;
  while (error == 0 && written < capacity) {
    const std::size_t chunk = static_cast<std::size_t>(std::min<std::uint64_t>(kZeroChunk, capacity - written));
    const ssize_t n = ::pwrite(fd, zeros.data(), chunk, static_cast<off_t>(written));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = n < 0 ? errno : EIO;
      break;
    }
    written += static_cast<std::uint64_t>(n);
    sinceSync += static_cast<std::uint64_t>(n);
    if (sinceSync >= kZeroSyncEvery) {
      if (::fdatasync(fd) != 0) error = errno;
      sinceSync = 0;
    }
  }
  if (error == 0 && capacity < kSegmentHeaderBytes) error = EINVAL;
  if (error == 0 && !writeHeader(fd, 1)) error = errno != 0 ? errno : EIO;
  if (error == 0 && ::fsync(fd) != 0) error = errno;
  if (error != 0) {
    ::close(fd);
    ::unlink(path.c_str());
    throw std::runtime_error("cannot pre-allocate " + std::to_string(capacity) + " bytes for " + path + ": " +
                             errnoText(error));
  }
  return std::shared_ptr<Segment>(new Segment(directory, name, fd, capacity, kSegmentHeaderBytes, 1));
}

std::shared_ptr<Segment> Segment::openSealed(const std::string& directory, const std::string& name,
                                             std::uint64_t generation) {
  const std::string path = directory + "/" + name + kSegmentSuffix;
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);  // writable, so it can be reused
  if (fd < 0) throw std::runtime_error("cannot open " + path + ": " + errnoText(errno));
  struct stat st {};
  const std::uint64_t size = ::fstat(fd, &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
  auto segment = std::shared_ptr<Segment>(new Segment(directory, name, fd, size, size, generation));
  segment->seal();
  return segment;
}

std::shared_ptr<Segment> Segment::reuse(const Segment& emptied, const std::string& name) {
  if (emptied.capacity_ < kSegmentHeaderBytes) throw std::runtime_error(emptied.path_ + " is too small to reuse");
  const int fd = ::dup(emptied.fd_);
  if (fd < 0) throw std::runtime_error("cannot reuse " + emptied.path_ + ": " + errnoText(errno));
  const std::uint64_t generation = emptied.generation_ + 1;
  // The new generation first: from then on no old frame reads as a record, whatever the name.
  // fsync, not fdatasync: it also commits a size a crash during the first zero fill may have left.
  if (!writeHeader(fd, generation) || ::fsync(fd) != 0) {
    const int error = errno;
    ::close(fd);
    throw std::runtime_error("cannot reuse " + emptied.path_ + ": " + errnoText(error));
  }
  ::unlink((emptied.directory_ + "/" + emptied.name_ + kDeliveryLogSuffix).c_str());
  const std::string path = emptied.directory_ + "/" + name + kSegmentSuffix;
  if (::rename(emptied.path_.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::close(fd);
    throw std::runtime_error("cannot rename " + emptied.path_ + ": " + errnoText(error));
  }
  return std::shared_ptr<Segment>(
      new Segment(emptied.directory_, name, fd, emptied.capacity_, kSegmentHeaderBytes, generation));
}

int Segment::append(const std::string& prefix, const std::string& payload, const std::string& trailer,
                    std::uint64_t& offset) {
  offset = end_;
  if (trailer.size() != 4) return EINVAL;
  if (!fits(prefix.size() + payload.size() + trailer.size())) return ENOSPC;  // never past the pre-allocated end
  auto frame = frameTrailer(generation_, reinterpret_cast<const std::uint8_t*>(trailer.data()));
  iovec parts[4] = {{const_cast<char*>(prefix.data()), prefix.size()},
                    {const_cast<char*>(payload.data()), payload.size()},
                    {const_cast<char*>(trailer.data()), trailer.size()},
                    {frame.data(), frame.size()}};
  std::size_t total = prefix.size() + payload.size() + trailer.size() + frame.size();
  std::uint64_t at = end_;
  int first = 0;
  while (total > 0) {
    const ssize_t n = ::pwritev(fd_, parts + first, 4 - first, static_cast<off_t>(at));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      // Nothing after a failed write may be trusted to follow a complete record.
      sealed_ = true;
      return n < 0 ? errno : EIO;
    }
    at += static_cast<std::uint64_t>(n);
    total -= static_cast<std::size_t>(n);
    std::size_t consumed = static_cast<std::size_t>(n);
    while (first < 4 && consumed >= parts[first].iov_len) consumed -= parts[first++].iov_len;
    if (first < 4) {
      parts[first].iov_base = static_cast<char*>(parts[first].iov_base) + consumed;
      parts[first].iov_len -= consumed;
    }
  }
  end_ = at;
  return 0;
}

bool Segment::syncAppends() {
  return appendSync_.run([this] { return ::fdatasync(fd_) == 0; });
}

std::vector<std::uint8_t> Segment::read(std::uint64_t offset, std::uint64_t length) const {
  if (offset > capacity_ || length > capacity_ - offset) {
    throw std::runtime_error("record at " + std::to_string(offset) + " lies outside " + path_);
  }
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(length));
  if (!preadAll(fd_, offset, bytes.size(), bytes.data())) throw std::runtime_error("cannot read " + path_);
  return bytes;
}

bool Segment::markDone(std::uint64_t offset, std::uint64_t length) {
  const std::string entry = encodeDeliveryLogEntry(offset, length);
  std::lock_guard<std::mutex> lock(doneMutex_);
  if (doneFd_ < 0) {
    const std::string path = directory_ + "/" + name_ + kDeliveryLogSuffix;
    doneFd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (doneFd_ < 0) return false;
  }
  // One write of a whole entry; O_APPEND keeps concurrent entries apart.
  ssize_t n;
  do {
    n = ::write(doneFd_, entry.data(), entry.size());
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(entry.size());
}

void Segment::remove() {
  // The segment first: a delivery log without its segment is removed at the next start.
  ::unlink(path_.c_str());
  ::unlink((directory_ + "/" + name_ + kDeliveryLogSuffix).c_str());
}

}  // namespace pacsgw::gateway::spool
