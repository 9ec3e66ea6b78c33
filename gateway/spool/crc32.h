#pragma once
// CRC-32 (the ISO-HDLC / zlib polynomial) with the same value and chaining as zlib's crc32(), computed
// with carry-less multiplication where the processor has it. Each spooled instance is checksummed when
// it is written and again before it is delivered; zlib's byte-table version took ~1 ms per CT slice,
// more than encrypting it.
#include <cstddef>
#include <cstdint>

namespace pacsgw::gateway::spool {

// `crc` is the value of the data before (0 to start), as with zlib's crc32().
std::uint32_t crc32(std::uint32_t crc, const void* data, std::size_t size);

// zlib's own implementation, for comparison in tests.
std::uint32_t crc32Portable(std::uint32_t crc, const void* data, std::size_t size);

}  // namespace pacsgw::gateway::spool
