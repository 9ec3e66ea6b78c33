#pragma once
// The image-cipher yardsticks of the research papers: entropy, adjacent-pixel correlation, NPCR/UACI
// with Wu et al.'s critical values, MSE/PSNR, SSIM. Plain C++, no DICOM, no LibTorch.
#include "codecs/pixel_cipher.h"

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace pacsgw::eval {

// Sample values of an image as the metrics see them: `planes` planes (frames x channels) of rows x cols.
struct ImageView {
  std::size_t rows = 0, cols = 0, planes = 0;
  std::int64_t minValue = 0;  // lowest representable value (0, or -2^(bits-1) when signed)
  std::int64_t peak = 255;    // F: the largest possible difference between two values (2^bits - 1)
  std::vector<std::int32_t> values;  // plane-major, then row-major

  std::int32_t at(std::size_t plane, std::size_t r, std::size_t c) const {
    return values[(plane * rows + r) * cols + c];
  }
  std::size_t size() const { return values.size(); }
};

enum class ViewKind {
  Msb8,  // the papers' 8-bit view: the most significant byte of each allocated sample, 0..255
  Full,  // every allocated bit, signed when Pixel Representation is 1; F = 2^BitsAllocated - 1
};
const char* toString(ViewKind kind);

// Builds a view of native little-endian sample bytes described by `layout` (8 or 16 bits allocated).
ImageView makeView(const codecs::PixelLayout& layout, const std::uint8_t* bytes, std::size_t size, ViewKind kind);

// Every sample's stored value: the word masked to Bits Stored, sign-extended when Pixel Representation
// is 1. F = 2^BitsStored - 1 (the "full range" of the decryption figures).
ImageView storedView(const codecs::PixelLayout& layout, const std::uint8_t* bytes, std::size_t size);

// A display window in stored units: values lo..hi map to 0..255.
struct DisplayWindow {
  double lo = 0, hi = 1;
};
// One window per frame: the minimum and maximum stored value of the frame (hi = lo + 1 when constant),
// the per-frame windowing of the neural backends (codecs/neural/frames.h).
std::vector<DisplayWindow> frameMinMaxWindows(const codecs::PixelLayout& layout, const std::uint8_t* bytes,
                                              std::size_t size);
// The papers' 8-bit view of a medical image: round(255 (v - lo) / (hi - lo)), clamped to 0..255, with the
// window of the sample's frame (`windows` has one entry per frame, or one for all). F = 255.
ImageView windowedView(const codecs::PixelLayout& layout, const std::uint8_t* bytes, std::size_t size,
                       const std::vector<DisplayWindow>& windows);

// Shannon entropy in bits per sample over the histogram of all values (2^bits bins).
double entropy(const ImageView& v);
std::vector<std::uint64_t> histogram(const ImageView& v);  // index = value - minValue

enum class Direction { Horizontal, Vertical, Diagonal };
const char* toString(Direction d);

struct PixelPair {
  std::size_t plane, row, col;  // first pixel; the second is its right / lower / lower-right neighbour
};
// `count` uniformly random adjacent pairs (planes, rows and columns drawn uniformly).
std::vector<PixelPair> samplePairs(const ImageView& shape, Direction d, std::size_t count, std::mt19937_64& rng);
std::vector<std::pair<double, double>> pairValues(const ImageView& v, const std::vector<PixelPair>& pairs, Direction d);

// Pearson correlation coefficient (Eq. 3 of the paper); 0 when either variance is 0.
double correlation(const std::vector<std::pair<double, double>>& xy);
// The same over every adjacent pair of every plane (no sampling error; with 10,000 random pairs the
// standard error of r for an ideal cipher is 1/sqrt(10000) = 0.01).
double correlationAllPairs(const ImageView& v, Direction d);

struct Differential {
  double npcr = 0;  // percent of positions where the two images differ
  double uaci = 0;  // mean |a - b| / F, percent
};
Differential npcrUaci(const ImageView& a, const ImageView& b);

// Wu, Noonan, Agaian (2011), "NPCR and UACI randomness tests for image encryption":
//   NPCR*_alpha = (F - PhiInv(alpha) * sqrt(F / MN)) / (F + 1)           (reject if NPCR < NPCR*)
//   UACI*_alpha = mu_U -/+ PhiInv(alpha / 2) * sigma_U, with
//   mu_U = (F + 2) / (3F + 3),  sigma_U^2 = (F + 2)(F^2 + 2F + 3) / (18 (F + 1)^2 MN F)
// PhiInv is the upper-tail quantile of N(0, 1). Values are fractions (multiply by 100 for percent).
double wuNpcrCritical(double mn, double f, double alpha);
std::pair<double, double> wuUaciInterval(double mn, double f, double alpha);
double npcrMean(double f);
double npcrSigma(double mn, double f);
double uaciMean(double f);
double uaciSigma(double mn, double f);

// Upper-tail standard normal quantile: the z with P(Z > z) = p (for example 1.6449 at 0.05).
double normalUpperQuantile(double p);

double mse(const ImageView& a, const ImageView& b);
// 10 log10(F^2 / MSE); +infinity when the images are identical.
double psnr(const ImageView& a, const ImageView& b);

// Wang et al. (2004) SSIM with an 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, L = F, averaged
// over all window positions of all planes. Planes smaller than the window use one window covering all.
double ssim(const ImageView& a, const ImageView& b);
// SSIM of one window covering the whole of two equally sized sample vectors (unit-test helper).
double ssimGlobal(const std::vector<double>& x, const std::vector<double>& y, double peak);

}  // namespace pacsgw::eval
