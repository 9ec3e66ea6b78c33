#include "codecs/feature_fusion/side_info.h"

#include "codecs/pixel_cipher.h"

#include <cstring>

namespace pacsgw::codecs::feature_fusion {
namespace {
constexpr std::size_t kFixed = 4 + 4 + 32 + 1;

void putI32(std::vector<std::uint8_t>& out, std::int32_t v) {
  const auto u = static_cast<std::uint32_t>(v);
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(u >> (8 * i)));
}
std::int32_t getI32(const std::uint8_t* p) {
  std::uint32_t u = 0;
  for (int i = 0; i < 4; ++i) u |= std::uint32_t{p[i]} << (8 * i);
  return static_cast<std::int32_t>(u);
}
}  // namespace

std::size_t frameSideInfoBytes(std::size_t coefficients, std::size_t overflowBytes) {
  return kFixed + 2 * coefficients + overflowBytes;
}

std::vector<std::uint8_t> encodeSideInfo(const std::vector<FrameSideInfo>& frames) {
  std::vector<std::uint8_t> out;
  for (const auto& f : frames) {
    putI32(out, f.lo);
    putI32(out, f.hi);
    out.insert(out.end(), f.digest.sha256.begin(), f.digest.sha256.end());
    out.push_back(f.digest.p);
    for (auto v : f.ep) out.push_back(static_cast<std::uint8_t>(v)), out.push_back(static_cast<std::uint8_t>(v >> 8));
    out.insert(out.end(), f.overflow.begin(), f.overflow.end());
  }
  return out;
}

std::vector<FrameSideInfo> decodeSideInfo(const std::vector<std::uint8_t>& bytes, std::size_t frames,
                                          std::size_t coefficients, std::size_t overflowBytes) {
  const std::size_t each = frameSideInfoBytes(coefficients, overflowBytes);
  if (bytes.size() != frames * each) throw CipherError("feature-fusion: side information of the wrong length");
  std::vector<FrameSideInfo> out(frames);
  const std::uint8_t* p = bytes.data();
  for (auto& f : out) {
    f.lo = getI32(p);
    f.hi = getI32(p + 4);
    std::memcpy(f.digest.sha256.data(), p + 8, 32);
    f.digest.p = p[40];
    p += kFixed;
    f.ep.resize(coefficients);
    for (auto& v : f.ep) v = static_cast<std::uint16_t>(p[0] | (p[1] << 8)), p += 2;
    f.overflow.assign(p, p + overflowBytes);
    p += overflowBytes;
    if (f.hi <= f.lo) throw CipherError("feature-fusion: side information holds an invalid window");
  }
  return out;
}

}  // namespace pacsgw::codecs::feature_fusion
