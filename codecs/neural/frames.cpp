// Stored sample values <-> unit-range frames (see frames.h for the windowing).
#include "codecs/neural/frames.h"

#include <algorithm>
#include <cmath>

namespace pacsgw::codecs::neural {
namespace {

std::int32_t storedValue(const std::uint8_t* frame, std::size_t i, const PixelLayout& l) {
  std::uint32_t word = l.bitsAllocated == 16 ? static_cast<std::uint32_t>(frame[2 * i] | (frame[2 * i + 1] << 8))
                                             : frame[i];
  const unsigned bits = l.bitsStored;
  const std::uint32_t mask = bits >= 32 ? 0xFFFFFFFFu : ((1u << bits) - 1u);
  word &= mask;
  if (l.pixelRepresentation == 1 && bits > 0 && (word >> (bits - 1)) & 1u) return static_cast<std::int32_t>(word) - (1 << bits);
  return static_cast<std::int32_t>(word);
}

void storeValue(std::uint8_t* frame, std::size_t i, std::int32_t v, const PixelLayout& l) {
  const unsigned bits = l.bitsStored;
  const std::int32_t lo = l.pixelRepresentation == 1 ? -(1 << (bits - 1)) : 0;
  const std::int32_t hi = l.pixelRepresentation == 1 ? (1 << (bits - 1)) - 1 : (1 << bits) - 1;
  v = std::clamp(v, lo, hi);
  const auto word = static_cast<std::uint32_t>(v);  // two's complement, sign-extended to the word
  if (l.bitsAllocated == 16) {
    frame[2 * i] = static_cast<std::uint8_t>(word);
    frame[2 * i + 1] = static_cast<std::uint8_t>(word >> 8);
  } else {
    frame[i] = static_cast<std::uint8_t>(word);
  }
}

}  // namespace

void checkMonochromeLayout(const PixelLayout& layout, const std::string& backendId) {
  if (layout.encapsulated)
    throw UnsupportedLayoutError(backendId + " protects native (uncompressed) pixel data only");
  if (layout.floatingPoint) throw UnsupportedLayoutError(backendId + " does not support Float Pixel Data");
  if (layout.bitsAllocated != 8 && layout.bitsAllocated != 16)
    throw UnsupportedLayoutError(backendId + " supports 8 or 16 bits allocated, got " + std::to_string(layout.bitsAllocated));
  if (layout.bitsStored == 0 || layout.bitsStored > layout.bitsAllocated)
    throw UnsupportedLayoutError(backendId + ": bits stored must be 1.." + std::to_string(layout.bitsAllocated));
  if (layout.samplesPerPixel != 1)
    throw UnsupportedLayoutError(backendId + " supports one sample per pixel (CT, MR, ...), got " +
                                 std::to_string(layout.samplesPerPixel));
  if (layout.rows == 0 || layout.columns == 0) throw UnsupportedLayoutError(backendId + ": empty image");
}

std::size_t frameBytes(const PixelLayout& layout) {
  return static_cast<std::size_t>(layout.rows) * layout.columns * (layout.bitsAllocated / 8);
}

std::size_t framesIn(const ByteRange& segment, const PixelLayout& layout) {
  const std::size_t n = frameBytes(layout);
  if (n == 0 || segment.size % n != 0 || (segment.size > 0 && segment.data == nullptr))
    throw CipherError("pixel data is not a whole number of " + std::to_string(layout.rows) + "x" +
                      std::to_string(layout.columns) + " frames");
  return segment.size / n;
}

UnitFrame readFrame(const std::uint8_t* frame, const PixelLayout& layout) {
  const std::size_t n = static_cast<std::size_t>(layout.rows) * layout.columns;
  Window w{storedValue(frame, 0, layout), storedValue(frame, 0, layout)};
  for (std::size_t i = 1; i < n; ++i) {
    const std::int32_t v = storedValue(frame, i, layout);
    w.lo = std::min(w.lo, v);
    w.hi = std::max(w.hi, v);
  }
  if (w.hi == w.lo) w.hi = w.lo + 1;
  return readFrame(frame, layout, w);
}

UnitFrame readFrame(const std::uint8_t* frame, const PixelLayout& layout, Window window) {
  UnitFrame f;
  f.rows = layout.rows;
  f.columns = layout.columns;
  f.window = window;
  const std::size_t n = static_cast<std::size_t>(f.rows) * f.columns;
  f.values.resize(n);
  const double scale = 1.0 / (static_cast<double>(window.hi) - window.lo);
  for (std::size_t i = 0; i < n; ++i) {
    const double x = (storedValue(frame, i, layout) - static_cast<double>(window.lo)) * scale;
    f.values[i] = static_cast<float>(std::clamp(x, 0.0, 1.0));
  }
  return f;
}

void writeFrame(std::uint8_t* frame, const PixelLayout& layout, const std::vector<float>& unit, Window window) {
  const std::size_t n = static_cast<std::size_t>(layout.rows) * layout.columns;
  if (unit.size() != n) throw CipherError("reconstruction has the wrong size");
  const double span = static_cast<double>(window.hi) - window.lo;
  for (std::size_t i = 0; i < n; ++i) {
    const double y = std::clamp(static_cast<double>(unit[i]), 0.0, 1.0);
    storeValue(frame, i, static_cast<std::int32_t>(std::lround(window.lo + y * span)), layout);
  }
}

}  // namespace pacsgw::codecs::neural
