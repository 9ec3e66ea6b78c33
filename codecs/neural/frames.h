#pragma once
// How neural backends see pixel data: monochrome frames of stored sample values, windowed to [0, 1].
// No LibTorch here. The same windowing is used for training, encryption and the metrics
// (docs/ciphers.md, "Neural backends: windowing"):
//   * stored value v: the word masked to Bits Stored, sign-extended when Pixel Representation is 1;
//   * window per frame: lo = min v, hi = max v over the frame (hi = lo + 1 for a constant frame);
//   * model input x = (v - lo) / (hi - lo) in [0, 1], float32;
//   * model output y in [0, 1] -> v' = round(lo + y (hi - lo)), clamped to the stored range;
//   * the 8-bit view of the papers' metrics: round(255 x).
// CT and MR differ only in their window; no fixed Hounsfield window is applied, so the model sees every
// stored value and works for any modality.
#include "codecs/pixel_cipher.h"

#include <cstdint>
#include <string>
#include <vector>

namespace pacsgw::codecs::neural {

struct Window {
  std::int32_t lo = 0;
  std::int32_t hi = 1;
};

struct UnitFrame {
  int rows = 0;
  int columns = 0;
  Window window;
  std::vector<float> values;  // rows * columns, row-major, in [0, 1]
};

// Throws UnsupportedLayoutError unless native, integer, 8 or 16 bits allocated, one sample per pixel.
void checkMonochromeLayout(const PixelLayout& layout, const std::string& backendId);
// Frames held by one segment; throws CipherError if the segment is not a whole number of frames.
std::size_t framesIn(const ByteRange& segment, const PixelLayout& layout);
std::size_t frameBytes(const PixelLayout& layout);

UnitFrame readFrame(const std::uint8_t* frame, const PixelLayout& layout);
// As readFrame with a given window (values outside it are clamped to [0, 1]).
UnitFrame readFrame(const std::uint8_t* frame, const PixelLayout& layout, Window window);
// Writes `unit` (rows * columns values) back as stored values of `window`.
void writeFrame(std::uint8_t* frame, const PixelLayout& layout, const std::vector<float>& unit, Window window);

inline std::uint8_t eightBit(float unit) {
  const float c = unit < 0.f ? 0.f : (unit > 1.f ? 1.f : unit);
  return static_cast<std::uint8_t>(c * 255.f + 0.5f);
}

}  // namespace pacsgw::codecs::neural
