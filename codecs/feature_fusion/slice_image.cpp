#include "codecs/feature_fusion/slice_image.h"

#include <algorithm>
#include <string>

namespace pacsgw::codecs::feature_fusion {

std::vector<Slice> slicesOf(const PixelLayout& layout, const std::vector<std::uint8_t>& bytes) {
  if (layout.samplesPerPixel != 1 || layout.floatingPoint || layout.encapsulated ||
      (layout.bitsAllocated != 8 && layout.bitsAllocated != 16))
    throw UnsupportedLayoutError("feature-fusion: monochrome 8/16-bit native samples only");
  const std::size_t perFrame = static_cast<std::size_t>(layout.rows) * layout.columns;
  const std::size_t sampleBytes = layout.bitsAllocated / 8;
  if (bytes.size() < perFrame * sampleBytes * layout.numberOfFrames)
    throw UnsupportedLayoutError("feature-fusion: pixel data shorter than its layout");
  const unsigned stored = std::clamp<unsigned>(layout.bitsStored, 1, layout.bitsAllocated);
  std::vector<Slice> out;
  for (std::uint32_t f = 0; f < layout.numberOfFrames; ++f) {
    std::vector<double> v(perFrame);
    for (std::size_t i = 0; i < perFrame; ++i) {
      const std::size_t at = (f * perFrame + i) * sampleBytes;
      std::uint32_t raw = bytes[at];
      if (sampleBytes == 2) raw |= std::uint32_t{bytes[at + 1]} << 8;
      raw &= (stored >= 32 ? 0xffffffffU : ((1U << stored) - 1));
      std::int64_t value = raw;
      if (layout.pixelRepresentation == 1 && (raw >> (stored - 1)) & 1U) value -= (std::int64_t{1} << stored);
      v[i] = static_cast<double>(value);
    }
    Slice s;
    s.rows = layout.rows;
    s.columns = layout.columns;
    s.low = *std::min_element(v.begin(), v.end());
    s.high = *std::max_element(v.begin(), v.end());
    const double span = s.high > s.low ? s.high - s.low : 1.0;
    s.values.resize(perFrame);
    for (std::size_t i = 0; i < perFrame; ++i) s.values[i] = static_cast<float>((v[i] - s.low) / span);
    out.push_back(std::move(s));
  }
  return out;
}

Slice cropToMultiple(const Slice& slice, int multiple) {
  Slice s = slice;
  s.rows = slice.rows / multiple * multiple;
  s.columns = slice.columns / multiple * multiple;
  s.values.resize(static_cast<std::size_t>(s.rows) * s.columns);
  for (int r = 0; r < s.rows; ++r)
    std::copy_n(&slice.values[static_cast<std::size_t>(r) * slice.columns], s.columns, &s.values[static_cast<std::size_t>(r) * s.columns]);
  return s;
}

}  // namespace pacsgw::codecs::feature_fusion
