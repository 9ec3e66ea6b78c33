#include "gateway/spool/crc32.h"

#include <zlib.h>

#include <algorithm>
#include <limits>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define PACSGW_CRC32_CLMUL 1
#endif

namespace pacsgw::gateway::spool {

std::uint32_t crc32Portable(std::uint32_t crc, const void* data, std::size_t size) {
  auto bytes = static_cast<const Bytef*>(data);
  uLong value = crc;
  while (size > 0) {  // zlib takes uInt lengths
    const uInt chunk = static_cast<uInt>(std::min<std::size_t>(size, std::numeric_limits<uInt>::max()));
    value = ::crc32(value, bytes, chunk);
    bytes += chunk;
    size -= chunk;
  }
  return static_cast<std::uint32_t>(value);
}

#ifdef PACSGW_CRC32_CLMUL
namespace {

// Folding constants for the bit-reflected polynomial 0x104C11DB7: x^(n) mod P for the fold distances
// (4 x 128 bits, 128 bits, 64 and 32 bits), then P and floor(x^64 / P) for the Barrett reduction.
constexpr long long kFold4Low = 0x154442bd4, kFold4High = 0x1c6e41596;
constexpr long long kFold1Low = 0x1751997d0, kFold1High = 0x0ccaa009e;
constexpr long long kFold32 = 0x163cd6124;
constexpr long long kPoly = 0x1db710641, kMu = 0x1f7011641;

__attribute__((target("pclmul,sse4.1"))) __m128i fold(__m128i x, __m128i k, __m128i next) {
  return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11)), next);
}

// The reflected CRC (no pre- or post-inversion) of `size` bytes; size >= 64 and a multiple of 16.
__attribute__((target("pclmul,sse4.1"))) std::uint32_t foldBlocks(std::uint32_t crc, const std::uint8_t* p,
                                                                 std::size_t size) {
  auto load = [](const std::uint8_t* at) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(at)); };
  __m128i x1 = _mm_xor_si128(load(p), _mm_cvtsi32_si128(static_cast<int>(crc)));
  __m128i x2 = load(p + 16), x3 = load(p + 32), x4 = load(p + 48);
  p += 64;
  size -= 64;
  const __m128i k4 = _mm_set_epi64x(kFold4High, kFold4Low);
  for (; size >= 64; p += 64, size -= 64) {
    x1 = fold(x1, k4, load(p));
    x2 = fold(x2, k4, load(p + 16));
    x3 = fold(x3, k4, load(p + 32));
    x4 = fold(x4, k4, load(p + 48));
  }
  const __m128i k1 = _mm_set_epi64x(kFold1High, kFold1Low);
  x1 = fold(x1, k1, x2);
  x1 = fold(x1, k1, x3);
  x1 = fold(x1, k1, x4);
  for (; size >= 16; p += 16, size -= 16) x1 = fold(x1, k1, load(p));
  // 128 -> 64 bits (appending the 32 zero bits of the CRC), 64 -> 32, then Barrett.
  const __m128i mask32 = _mm_set_epi32(0, 0, 0, -1);
  x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), _mm_clmulepi64_si128(k1, x1, 0x01));
  const __m128i k32 = _mm_set_epi64x(0, kFold32);
  x1 = _mm_xor_si128(_mm_srli_si128(x1, 4), _mm_clmulepi64_si128(_mm_and_si128(x1, mask32), k32, 0x00));
  const __m128i barrett = _mm_set_epi64x(kMu, kPoly);
  __m128i t = _mm_clmulepi64_si128(_mm_and_si128(x1, mask32), barrett, 0x10);
  t = _mm_clmulepi64_si128(_mm_and_si128(t, mask32), barrett, 0x00);
  return static_cast<std::uint32_t>(_mm_extract_epi32(_mm_xor_si128(x1, t), 1));
}

bool haveClmul() {
  static const bool have = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
  return have;
}

}  // namespace
#endif

std::uint32_t crc32(std::uint32_t crc, const void* data, std::size_t size) {
  auto p = static_cast<const std::uint8_t*>(data);
#ifdef PACSGW_CRC32_CLMUL
  if (size >= 64 && haveClmul()) {
    const std::size_t blocks = size & ~static_cast<std::size_t>(15);
    crc = ~foldBlocks(~crc, p, blocks);
    p += blocks;
    size -= blocks;
  }
#endif
  return crc32Portable(crc, p, size);
}

}  // namespace pacsgw::gateway::spool
