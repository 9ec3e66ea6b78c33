#include "gateway/spool/spool_record.h"

#include "gateway/spool/crc32.h"

#include <cstring>
#include <limits>

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

SpoolRecordView parseSpoolRecord(const std::uint8_t* data, std::size_t size) {
  if (data == nullptr && size != 0) throw SpoolRecordError("no data");
  Reader in(data, size);
  in.need(sizeof kMagic, "magic");
  if (std::memcmp(data, kMagic, sizeof kMagic) != 0) throw SpoolRecordError("not a spool record (bad magic)");
  in.skip(sizeof kMagic);
  const std::uint64_t headerLength = in.le(4, "header length");
  if (headerLength > kMaxHeaderBytes) {
    throw SpoolRecordError("header length " + std::to_string(headerLength) + " exceeds " +
                           std::to_string(kMaxHeaderBytes));
  }
  in.need(static_cast<std::size_t>(headerLength), "header");
  SpoolRecordView view;
  {
    Reader header(data + in.position(), static_cast<std::size_t>(headerLength));
    view.meta.receivedUnixMs = static_cast<std::int64_t>(header.le(8, "received time"));
    view.meta.sopClassUid = header.text(kMaxUidBytes, "SOP Class UID");
    view.meta.sopInstanceUid = header.text(kMaxUidBytes, "SOP Instance UID");
    view.meta.transferSyntaxUid = header.text(kMaxUidBytes, "Transfer Syntax UID");
    view.meta.callingAeTitle = header.text(kMaxAeTitleBytes, "calling AE title");
    if (header.remaining() != 0) {
      throw SpoolRecordError(std::to_string(header.remaining()) + " unexpected bytes at the end of the header");
    }
  }
  in.skip(static_cast<std::size_t>(headerLength));
  const std::uint64_t payloadLength = in.le(8, "payload length");
  if (payloadLength > in.remaining() || in.remaining() - payloadLength != kTrailerBytes) {
    throw SpoolRecordError("payload length " + std::to_string(payloadLength) + " does not match the " +
                           std::to_string(in.remaining()) + " bytes that follow (a torn or padded file)");
  }
  view.payload = data + in.position();
  view.payloadSize = static_cast<std::size_t>(payloadLength);
  in.skip(view.payloadSize);
  const std::size_t checked = in.position();
  const auto stored = static_cast<std::uint32_t>(in.le(4, "checksum"));
  const std::uint32_t actual = spoolChecksum(0, data, checked);
  if (stored != actual) throw SpoolRecordError("checksum mismatch (the record is corrupt)");
  if (view.meta.sopClassUid.empty() || view.meta.sopInstanceUid.empty() || view.meta.transferSyntaxUid.empty()) {
    throw SpoolRecordError("a required UID is empty");
  }
  return view;
}

}  // namespace pacsgw::gateway::spool
