// Fuzzes the spool segment reader and the delivery log parser: any segment content must yield
// records only under a valid header, each frame following the previous one from the header on,
// inside the data, parsing as a record; anything after them is ignored. The input is also read as
// a delivery log.
#include "gateway/spool/segment.h"

#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace pacsgw::gateway::spool;
  const SegmentScan scan = scanSegmentBytes(data, size);
  if (scan.generation == 0 && !scan.records.empty()) std::abort();  // records need a valid header
  std::uint64_t expected = kSegmentHeaderBytes;
  for (const ScannedRecord& record : scan.records) {
    if (record.offset != expected || record.length > size || record.offset > size - record.length ||
        kFrameTrailerBytes > size - record.offset - record.length) {
      std::abort();
    }
    try {
      parseSpoolRecord(data + record.offset, static_cast<std::size_t>(record.length));
    } catch (const SpoolRecordError&) {
      std::abort();  // the scan accepted a record the parser refuses
    }
    expected = record.offset + record.length + kFrameTrailerBytes;
  }
  if (!scan.records.empty() && scan.end != expected) std::abort();
  for (const auto& [offset, length] : parseDeliveryLog(data, size)) {
    if (length > 0xFFFFFFFFull) std::abort();
    (void)offset;
  }
  return 0;
}
