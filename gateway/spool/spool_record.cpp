#include "gateway/spool/spool_record.h"

#include "gateway/spool/crc32.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace pacsgw::gateway::spool {

namespace {

constexpr char kMagic[8] = {'P', 'G', 'W', 'S', 'P', 'L', '0', '1'};
constexpr std::size_t kTrailerBytes = 4;

void putLe(std::string& out, std::uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

// Reads fields front to back; every read is checked against the end first.
class Reader {
 public:
  Reader(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  std::size_t remaining() const { return size_ - pos_; }
  std::size_t position() const { return pos_; }
  void need(std::size_t bytes, const char* what) const {
    if (bytes > remaining()) {
      throw SpoolRecordError(std::string("truncated record: ") + what + " needs " + std::to_string(bytes) +
                             " bytes, " + std::to_string(remaining()) + " left");
    }
  }
  std::uint64_t le(int bytes, const char* what) {
    need(static_cast<std::size_t>(bytes), what);
    std::uint64_t value = 0;
    for (int i = 0; i < bytes; ++i) value |= static_cast<std::uint64_t>(data_[pos_ + i]) << (8 * i);
    pos_ += static_cast<std::size_t>(bytes);
    return value;
  }
  std::string text(std::size_t maxBytes, const char* what) {
    const std::size_t length = static_cast<std::size_t>(le(2, what));
    if (length > maxBytes) {
      throw SpoolRecordError(std::string(what) + " is " + std::to_string(length) + " bytes, at most " +
                             std::to_string(maxBytes) + " allowed");
    }
    need(length, what);
    std::string value(reinterpret_cast<const char*>(data_ + pos_), length);
    pos_ += length;
    return value;
  }
  void skip(std::size_t bytes) { pos_ += bytes; }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

void checkField(const std::string& value, std::size_t maxBytes, const char* what) {
  if (value.size() > maxBytes) {
    throw SpoolRecordError(std::string(what) + " is " + std::to_string(value.size()) + " bytes, at most " +
                           std::to_string(maxBytes) + " allowed");
  }
}

}  // namespace

std::uint32_t spoolChecksum(std::uint32_t crc, const void* data, std::size_t size) {
  return crc32(crc, data, size);
}

std::string encodeSpoolRecordPrefix(const SpoolRecordMeta& meta, std::uint64_t payloadSize) {
  checkField(meta.sopClassUid, kMaxUidBytes, "SOP Class UID");
  checkField(meta.sopInstanceUid, kMaxUidBytes, "SOP Instance UID");
  checkField(meta.transferSyntaxUid, kMaxUidBytes, "Transfer Syntax UID");
  checkField(meta.callingAeTitle, kMaxAeTitleBytes, "calling AE title");
  std::string header;
  putLe(header, static_cast<std::uint64_t>(meta.receivedUnixMs), 8);
  for (const std::string* field : {&meta.sopClassUid, &meta.sopInstanceUid, &meta.transferSyntaxUid,
                                   &meta.callingAeTitle}) {
    putLe(header, field->size(), 2);
    header += *field;
  }
  std::string out(kMagic, sizeof kMagic);
  putLe(out, header.size(), 4);
  out += header;
  putLe(out, payloadSize, 8);
  return out;
}

std::string encodeSpoolRecordTrailer(std::uint32_t crc) {
  std::string out;
  putLe(out, crc, 4);
  return out;
}

std::string encodeSpoolRecord(const SpoolRecordMeta& meta, const std::string& payload) {
  std::string out = encodeSpoolRecordPrefix(meta, payload.size());
  out += payload;
  return out + encodeSpoolRecordTrailer(spoolChecksum(0, out.data(), out.size()));
}

namespace {

// The fields before the payload, from the first `available` bytes of a record of `size` bytes;
// checks the payload length against `size`. Sets `payloadOffset`.
SpoolRecordMeta parsePrefix(const std::uint8_t* data, std::size_t available, std::uint64_t size,
                            std::uint64_t& payloadOffset, std::uint64_t& payloadLength) {
  if (data == nullptr && available != 0) throw SpoolRecordError("no data");
  Reader in(data, available);
  in.need(sizeof kMagic, "magic");
  if (std::memcmp(data, kMagic, sizeof kMagic) != 0) throw SpoolRecordError("not a spool record (bad magic)");
  in.skip(sizeof kMagic);
  const std::uint64_t headerLength = in.le(4, "header length");
  if (headerLength > kMaxHeaderBytes) {
    throw SpoolRecordError("header length " + std::to_string(headerLength) + " exceeds " +
                           std::to_string(kMaxHeaderBytes));
  }
  in.need(static_cast<std::size_t>(headerLength), "header");
  SpoolRecordMeta meta;
  {
    Reader header(data + in.position(), static_cast<std::size_t>(headerLength));
    meta.receivedUnixMs = static_cast<std::int64_t>(header.le(8, "received time"));
    meta.sopClassUid = header.text(kMaxUidBytes, "SOP Class UID");
    meta.sopInstanceUid = header.text(kMaxUidBytes, "SOP Instance UID");
    meta.transferSyntaxUid = header.text(kMaxUidBytes, "Transfer Syntax UID");
    meta.callingAeTitle = header.text(kMaxAeTitleBytes, "calling AE title");
    if (header.remaining() != 0) {
      throw SpoolRecordError(std::to_string(header.remaining()) + " unexpected bytes at the end of the header");
    }
  }
  in.skip(static_cast<std::size_t>(headerLength));
  payloadLength = in.le(8, "payload length");
  payloadOffset = in.position();
  const std::uint64_t remaining = size - payloadOffset;  // `available` <= `size`
  if (payloadLength > remaining || remaining - payloadLength != kTrailerBytes) {
    throw SpoolRecordError("payload length " + std::to_string(payloadLength) + " does not match the " +
                           std::to_string(remaining) + " bytes that follow (a torn or padded file)");
  }
  if (meta.sopClassUid.empty() || meta.sopInstanceUid.empty() || meta.transferSyntaxUid.empty()) {
    throw SpoolRecordError("a required UID is empty");
  }
  return meta;
}

std::uint32_t storedChecksum(const std::uint8_t* trailer) {
  return std::uint32_t{trailer[0]} | std::uint32_t{trailer[1]} << 8 | std::uint32_t{trailer[2]} << 16 |
         std::uint32_t{trailer[3]} << 24;
}

}  // namespace

SpoolRecordView parseSpoolRecord(const std::uint8_t* data, std::size_t size) {
  SpoolRecordView view;
  std::uint64_t payloadOffset = 0, payloadLength = 0;
  view.meta = parsePrefix(data, size, size, payloadOffset, payloadLength);
  view.payload = data + payloadOffset;
  view.payloadSize = static_cast<std::size_t>(payloadLength);
  const std::size_t checked = size - kTrailerBytes;
  if (storedChecksum(data + checked) != spoolChecksum(0, data, checked)) {
    throw SpoolRecordError("checksum mismatch (the record is corrupt)");
  }
  return view;
}

SpoolRecordFile checkSpoolRecordFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw std::runtime_error("cannot read " + path + ": " + std::strerror(errno));
  const auto size = static_cast<std::uint64_t>(st.st_size);
  // Read in pieces: the prefix is parsed from the first piece, the checksum runs over all of them.
  // At most 1 MiB at a time; the first piece always holds the whole prefix (at most 1044 bytes).
  std::vector<std::uint8_t> buffer(static_cast<std::size_t>(std::min<std::uint64_t>(size, std::uint64_t{1} << 20)));
  std::uint64_t offset = 0;
  std::uint32_t crc = 0;
  std::uint8_t trailer[kTrailerBytes] = {};
  SpoolRecordFile record;
  record.path = path;
  while (offset < size) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), size - offset));
    std::size_t got = 0;
    while (got < want) {
      const ssize_t n = ::pread(fd, buffer.data() + got, want - got, static_cast<off_t>(offset + got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw std::runtime_error("cannot read " + path + ": " + std::strerror(errno));
      if (n == 0) throw SpoolRecordError("the record file shrank while it was read");
      got += static_cast<std::size_t>(n);
    }
    if (offset == 0) {
      record.meta = parsePrefix(buffer.data(), got, size, record.payloadOffset, record.payloadSize);
    }
    // Every byte before the last four is covered by the checksum; the last four are the checksum.
    const std::uint64_t checkedEnd = size - kTrailerBytes;
    if (offset < checkedEnd) {
      crc = spoolChecksum(crc, buffer.data(), static_cast<std::size_t>(std::min<std::uint64_t>(got, checkedEnd - offset)));
    }
    for (std::uint64_t at = std::max(offset, checkedEnd); at < offset + got; ++at) {
      trailer[at - checkedEnd] = buffer[static_cast<std::size_t>(at - offset)];
    }
    offset += got;
  }
  if (size == 0) throw SpoolRecordError("truncated record: magic needs 8 bytes, 0 left");
  if (storedChecksum(trailer) != crc) throw SpoolRecordError("checksum mismatch (the record is corrupt)");
  return record;
}

}  // namespace pacsgw::gateway::spool
