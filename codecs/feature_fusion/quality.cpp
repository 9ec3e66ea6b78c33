#include "codecs/feature_fusion/quality.h"

#include "codecs/feature_fusion/image_cipher.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

namespace pacsgw::codecs::feature_fusion {
namespace {
double to8(float v) { return std::round(std::clamp(v, 0.0f, 1.0f) * 255.0); }
}  // namespace

double psnr8(const std::vector<float>& a, const std::vector<float>& b) {
  double mse = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double d = to8(a[i]) - to8(b[i]);
    mse += d * d;
  }
  mse /= static_cast<double>(a.size());
  return mse == 0 ? std::numeric_limits<double>::infinity() : 10.0 * std::log10(255.0 * 255.0 / mse);
}

double ssim8(const std::vector<float>& a, const std::vector<float>& b, int rows, int columns) {
  constexpr int radius = 5;
  double w[2 * radius + 1], sum = 0;
  for (int i = -radius; i <= radius; ++i) sum += (w[i + radius] = std::exp(-(i * i) / (2 * 1.5 * 1.5)));
  for (double& v : w) v /= sum;
  const double c1 = std::pow(0.01 * 255, 2), c2 = std::pow(0.03 * 255, 2);
  double total = 0;
  long count = 0;
  for (int r = radius; r < rows - radius; ++r)
    for (int c = radius; c < columns - radius; ++c) {
      double mx = 0, my = 0, xx = 0, yy = 0, xy = 0;
      for (int i = -radius; i <= radius; ++i)
        for (int j = -radius; j <= radius; ++j) {
          const double k = w[i + radius] * w[j + radius];
          const std::size_t at = static_cast<std::size_t>(r + i) * columns + (c + j);
          const double x = to8(a[at]), y = to8(b[at]);
          mx += k * x, my += k * y, xx += k * x * x, yy += k * y * y, xy += k * x * y;
        }
      const double vx = xx - mx * mx, vy = yy - my * my, cxy = xy - mx * my;
      total += ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2));
      ++count;
    }
  return count ? total / count : 0.0;
}

double entropy8(const std::vector<std::uint16_t>& codes, int bits) {
  double histogram[256] = {};
  for (auto v : codes) histogram[bits > 8 ? (v >> (bits - 8)) & 0xff : v & 0xff] += 1;
  double h = 0;
  for (double n : histogram)
    if (n > 0) h -= (n / codes.size()) * std::log2(n / codes.size());
  return h;
}

HeldOutQuality heldOutQuality(const FeatureFusionModel& model, const std::vector<Slice>& slices, std::uint64_t seed) {
  std::mt19937_64 rng(seed ^ 0x5eedf00dULL);
  HeldOutQuality q;
  int n = 0;
  for (const auto& full : slices) {
    const Slice s = cropToMultiple(full, model.sizeMultiple());
    if (s.rows == 0 || s.columns == 0) continue;
    SecretBytes right(32), wrong(32);
    for (std::size_t i = 0; i < 32; ++i) right.data()[i] = static_cast<std::uint8_t>(rng()), wrong.data()[i] = static_cast<std::uint8_t>(rng());
    const auto digest = digestImage(reinterpret_cast<const std::uint8_t*>(s.values.data()), s.values.size() * sizeof(float));
    const auto image = protectImage(model, s.values, s.rows, s.columns, digest, right);
    const auto good = recoverImage(model, image, right);
    const auto bad = recoverImage(model, image, wrong);
    q.psnrRight += psnr8(good, s.values);
    q.ssimRight += ssim8(good, s.values, s.rows, s.columns);
    q.psnrWrong += psnr8(bad, s.values);
    q.ssimWrong += ssim8(bad, s.values, s.rows, s.columns);
    q.cipherEntropy += entropy8(image.cipher, model.config().cipherBits);
    ++n;
  }
  if (n > 0) q.psnrRight /= n, q.ssimRight /= n, q.psnrWrong /= n, q.ssimWrong /= n, q.cipherEntropy /= n;
  return q;
}

}  // namespace pacsgw::codecs::feature_fusion
