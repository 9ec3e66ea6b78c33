// Fuzzes the spool record parser: any file content, and the same content with a valid checksum so the
// structural checks behind it are reached too. A record must either be refused with SpoolRecordError or
// parse into fields that encode back to exactly the same bytes.
#include "gateway/spool/spool_record.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

void parseAndCheck(const std::uint8_t* data, std::size_t size) {
  using namespace pacsgw::gateway::spool;
  SpoolRecordView view;
  try {
    view = parseSpoolRecord(data, size);
  } catch (const SpoolRecordError&) {
    return;  // a corrupt record, recognised as such
  }
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
