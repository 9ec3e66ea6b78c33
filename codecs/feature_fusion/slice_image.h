#pragma once
// Native DICOM samples to the model's input: one slice per frame, values mapped linearly from the
// frame's own [min, max] to [0, 1] (the range is kept so the full-range values can be restored).
// The "8-bit view" of the papers is round(255 * value).
#include "codecs/pixel_cipher.h"

#include <cstdint>
#include <vector>

namespace pacsgw::codecs::feature_fusion {

struct Slice {
  int rows = 0, columns = 0;
  double low = 0, high = 0;   // stored-value range mapped to [0, 1]
  std::vector<float> values;  // rows * columns, row-major
};

// Monochrome 8- or 16-bit native samples (signed or not). Throws UnsupportedLayoutError otherwise.
std::vector<Slice> slicesOf(const PixelLayout& layout, const std::vector<std::uint8_t>& bytes);

// The top-left part of a slice whose sides are multiples of `multiple`.
Slice cropToMultiple(const Slice& slice, int multiple);

}  // namespace pacsgw::codecs::feature_fusion
