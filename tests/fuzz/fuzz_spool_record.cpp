// Fuzzes the spool record parser: any file content, and the same content with a valid checksum so the
// structural checks behind it are reached too. A record must either be refused with SpoolRecordError or
// parse into fields that encode back to exactly the same bytes. The check of a large record in its file
// (checkSpoolRecordFile, reading in pieces) must agree with the in-memory parser on every input.
#include "gateway/spool/spool_record.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

// The file check on the same bytes: accepted exactly when the buffer parser accepts them, with the
// same fields and payload position.
void checkFileAgrees(const std::uint8_t* data, std::size_t size, const pacsgw::gateway::spool::SpoolRecordView* view) {
  using namespace pacsgw::gateway::spool;
  const int fd = ::memfd_create("record", MFD_CLOEXEC);
  if (fd < 0) return;
  if (size > 0 && ::write(fd, data, size) != static_cast<ssize_t>(size)) {
    ::close(fd);
    return;
  }
  bool accepted = true;
  SpoolRecordFile file;
  try {
    file = checkSpoolRecordFile("/proc/self/fd/" + std::to_string(fd));
  } catch (const SpoolRecordError&) {
    accepted = false;
  }
  ::close(fd);
  if (accepted != (view != nullptr)) std::abort();
  if (!accepted) return;
  if (file.meta.sopInstanceUid != view->meta.sopInstanceUid || file.meta.sopClassUid != view->meta.sopClassUid ||
      file.meta.transferSyntaxUid != view->meta.transferSyntaxUid || file.meta.callingAeTitle != view->meta.callingAeTitle ||
      file.meta.receivedUnixMs != view->meta.receivedUnixMs || file.payloadSize != view->payloadSize ||
      file.payloadOffset != static_cast<std::uint64_t>(view->payload - data)) {
    std::abort();
  }
}

void parseAndCheck(const std::uint8_t* data, std::size_t size) {
  using namespace pacsgw::gateway::spool;
  SpoolRecordView view;
  try {
    view = parseSpoolRecord(data, size);
  } catch (const SpoolRecordError&) {
    checkFileAgrees(data, size, nullptr);
    return;  // a corrupt record, recognised as such
  }
  checkFileAgrees(data, size, &view);
  if (view.payloadSize > size || (view.payloadSize > 0 && (view.payload < data || view.payload + view.payloadSize > data + size))) {
    std::abort();  // the payload must lie inside the record
  }
  const std::string again =
      encodeSpoolRecord(view.meta, std::string(reinterpret_cast<const char*>(view.payload), view.payloadSize));
  if (again.size() != size || std::memcmp(again.data(), data, size) != 0) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  parseAndCheck(data, size);
  if (size >= 4) {
    std::vector<std::uint8_t> sealed(data, data + size);
    const std::uint32_t crc = pacsgw::gateway::spool::spoolChecksum(0, sealed.data(), size - 4);
    for (int i = 0; i < 4; ++i) sealed[size - 4 + i] = static_cast<std::uint8_t>(crc >> (8 * i));
    parseAndCheck(sealed.data(), sealed.size());
  }
  return 0;
}
