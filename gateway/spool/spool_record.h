#pragma once
// The on-disk format of one spooled instance. A record is self-describing and self-checking, so a
// torn or corrupted file is recognised as such and never forwarded:
//
//   offset  size  field
//   0       8     magic "PGWSPL01"
//   8       4     header length H (little endian, at most kMaxHeaderBytes)
//   12      H     header: u64 received (Unix ms), then four strings, each u16 length + bytes:
//                 SOP Class UID, SOP Instance UID, Transfer Syntax UID (<= 64 each), calling AE (<= 16)
//   12+H    8     payload length P
//   20+H    P     payload: the data set, already encrypted, encoded in the transfer syntax above
//   20+H+P  4     CRC-32 of every byte before it
//
// The file ends exactly there; any other length is a corrupt record. Every length is checked
// against the bytes actually present before it is used.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace pacsgw::gateway::spool {

struct SpoolRecordMeta {
  std::int64_t receivedUnixMs = 0;
  std::string sopClassUid;
  std::string sopInstanceUid;
  std::string transferSyntaxUid;
  std::string callingAeTitle;
};

// A parsed record; `payload` points into the buffer given to parseSpoolRecord.
struct SpoolRecordView {
  SpoolRecordMeta meta;
  const std::uint8_t* payload = nullptr;
  std::size_t payloadSize = 0;
};

class SpoolRecordError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

constexpr std::size_t kMaxHeaderBytes = 1024;
constexpr std::size_t kMaxUidBytes = 64;
constexpr std::size_t kMaxAeTitleBytes = 16;

// Validates and parses a whole record file. Throws SpoolRecordError naming the first problem
// (bad magic, a length past the end of the data, an over-long field, a checksum mismatch, ...).
SpoolRecordView parseSpoolRecord(const std::uint8_t* data, std::size_t size);

// A record file checked without reading it into memory (a large instance): where its payload lies.
struct SpoolRecordFile {
  SpoolRecordMeta meta;
  std::string path;
  std::uint64_t payloadOffset = 0;
  std::uint64_t payloadSize = 0;
};
// Validates a record file as parseSpoolRecord validates a buffer (every length against the file's
// size, the checksum over every byte), reading it in pieces. Throws SpoolRecordError for a corrupt
// record, std::runtime_error when the file cannot be read.
SpoolRecordFile checkSpoolRecordFile(const std::string& path);

// The bytes before the payload (magic, header, payload length). Throws SpoolRecordError when a
// field is too long to be stored.
std::string encodeSpoolRecordPrefix(const SpoolRecordMeta& meta, std::uint64_t payloadSize);
// CRC-32 continued over `size` more bytes (start with 0).
std::uint32_t spoolChecksum(std::uint32_t crc, const void* data, std::size_t size);
// The 4-byte trailer for a checksum.
std::string encodeSpoolRecordTrailer(std::uint32_t crc);

// A whole record in one buffer (tests and tools; the spool writes prefix, payload and trailer
// without copying the payload).
std::string encodeSpoolRecord(const SpoolRecordMeta& meta, const std::string& payload);

}  // namespace pacsgw::gateway::spool
