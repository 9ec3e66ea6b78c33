// Fuzzes the spool segment reader and the delivery log parser: any segment content must yield
// records that follow each other from offset 0, lie inside the data and parse as records; anything
// after them is ignored. The input is also read as a delivery log.
#include "gateway/spool/segment.h"

#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace pacsgw::gateway::spool;
  const SegmentScan scan = scanSegmentBytes(data, size);
  std::uint64_t expected = 0;
  for (const ScannedRecord& record : scan.records) {
    if (record.offset != expected || record.length > size || record.offset > size - record.length) std::abort();
    try {
      parseSpoolRecord(data + record.offset, static_cast<std::size_t>(record.length));
    } catch (const SpoolRecordError&) {
      std::abort();  // the scan accepted a record the parser refuses
    }
    expected = record.offset + record.length;
  }
  if (scan.end != expected) std::abort();
  for (const auto& [offset, length] : parseDeliveryLog(data, size)) {
    if (length > 0xFFFFFFFFull) std::abort();
    (void)offset;
  }
  return 0;
}
