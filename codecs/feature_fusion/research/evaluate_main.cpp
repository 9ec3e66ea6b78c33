// feature-fusion-evaluate: the paper's measurements of a feature-fusion model on held-out DICOM slices,
// at the model level (side information in clear, so the attacker's view can be measured):
//   cipher image (8-bit view = top byte of the 16-bit codes): entropy, adjacent correlations H/V/D;
//   differential: one plaintext pixel changed (a) through SHA-256 (new feature keys, the paper's test),
//   (b) with the keys held fixed (the network's own diffusion); key sensitivity: one key bit flipped;
//   decryption PSNR/SSIM (8-bit view and full range) with the right and a wrong key; images/s; model size.
//
//   feature-fusion-evaluate --model MODEL --holdout FILE_OR_DIR... [--threads N]
#include "codecs/eval/dicom_input.h"
#include "codecs/eval/metrics.h"
#include "codecs/feature_fusion/image_cipher.h"
#include "codecs/feature_fusion/model.h"
#include "codecs/feature_fusion/quality.h"
#include "codecs/feature_fusion/slice_image.h"

#include <algorithm>
#include <ctime>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>
#include <vector>

using namespace pacsgw::codecs::feature_fusion;
namespace ev = pacsgw::eval;

namespace {

ev::ImageView view8(const std::vector<std::uint16_t>& codes, int rows, int columns) {
  ev::ImageView v;
  v.rows = rows, v.cols = columns, v.planes = 1, v.minValue = 0, v.peak = 255;
  for (auto c : codes) v.values.push_back(c >> 8);
  return v;
}
ev::ImageView unit8(const std::vector<float>& x, int rows, int columns) {
  ev::ImageView v;
  v.rows = rows, v.cols = columns, v.planes = 1, v.minValue = 0, v.peak = 255;
  for (float f : x) v.values.push_back(static_cast<std::int32_t>(std::lround(std::clamp(f, 0.f, 1.f) * 255)));
  return v;
}
// Full range: back to stored values through the slice's window; peak = the window's span.
ev::ImageView full(const std::vector<float>& x, const Slice& s) {
  ev::ImageView v;
  v.rows = s.rows, v.cols = s.columns, v.planes = 1, v.minValue = 0;
  v.peak = static_cast<std::int64_t>(s.high - s.low);
  for (float f : x) v.values.push_back(static_cast<std::int32_t>(std::lround(std::clamp(f, 0.f, 1.f) * (s.high - s.low))));
  return v;
}
pacsgw::SecretBytes randomKey(std::mt19937_64& rng) {
  pacsgw::SecretBytes k(32);
  for (std::size_t i = 0; i < 32; ++i) k.data()[i] = static_cast<std::uint8_t>(rng());
  return k;
}

}  // namespace

int main(int argc, char** argv) try {
  std::string modelPath;
  std::vector<std::string> inputs;
  int threads = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--model" && i + 1 < argc) modelPath = argv[++i];
    else if (a == "--threads" && i + 1 < argc) threads = std::stoi(argv[++i]);
    else if (a == "--holdout") continue;
    else inputs.push_back(a);
  }
  if (modelPath.empty() || inputs.empty()) throw std::runtime_error("usage: --model MODEL --holdout FILE...");
  if (threads > 0) setTorchThreads(threads);
  const auto model = FeatureFusionModel::load(modelPath);
  std::printf("model %s: %zu parameters, %ju bytes\n", modelPath.c_str(), model.parameterCount(),
              static_cast<std::uintmax_t>(std::filesystem::file_size(modelPath)));
  ev::DecoderRegistration codecs;
  std::mt19937_64 rng(2024);
  for (const auto& path : ev::expandInputs(inputs)) {
    const auto image = ev::loadDicomImage(path);
    for (const auto& whole : slicesOf(image.layout, image.bytes)) {
      const Slice s = cropToMultiple(whole, model.sizeMultiple());
      const auto* bytes = reinterpret_cast<const std::uint8_t*>(s.values.data());
      const std::size_t n = s.values.size() * sizeof(float);
      const auto digest = digestImage(bytes, n);
      const auto key = randomKey(rng), wrong = randomKey(rng);
      // Process CPU time (all threads): on a shared machine wall time mostly measures the neighbours.
      const std::clock_t t0 = std::clock();
      const auto enc = protectImage(model, s.values, s.rows, s.columns, digest, key);
      const std::clock_t t1 = std::clock();
      const auto good = recoverImage(model, enc, key);
      const std::clock_t t2 = std::clock();
      const auto bad = recoverImage(model, enc, wrong);
      const auto c8 = view8(enc.cipher, s.rows, s.columns);
      // One pixel changed (the centre, by 1/255 of the window): (a) new digest, (b) same digest.
      auto changed = s.values;
      const std::size_t centre = static_cast<std::size_t>(s.rows / 2) * s.columns + s.columns / 2;
      changed[centre] = changed[centre] > 0.5f ? changed[centre] - 1.f / 255 : changed[centre] + 1.f / 255;
      const auto digest2 = digestImage(reinterpret_cast<const std::uint8_t*>(changed.data()), n);
      const auto viaHash = view8(protectImage(model, changed, s.rows, s.columns, digest2, key).cipher, s.rows, s.columns);
      const auto networkOnly = view8(protectImage(model, changed, s.rows, s.columns, digest, key).cipher, s.rows, s.columns);
      auto flipped = key;
      flipped.data()[31] ^= 0x01;
      const auto keySens = view8(protectImage(model, s.values, s.rows, s.columns, digest, flipped).cipher, s.rows, s.columns);
      const auto dHash = ev::npcrUaci(c8, viaHash), dNet = ev::npcrUaci(c8, networkOnly), dKey = ev::npcrUaci(c8, keySens);
      const auto x8 = unit8(s.values, s.rows, s.columns);
      const double encS = static_cast<double>(t1 - t0) / CLOCKS_PER_SEC, decS = static_cast<double>(t2 - t1) / CLOCKS_PER_SEC;
      std::printf("%s %dx%d window [%g, %g]\n", path.c_str(), s.rows, s.columns, s.low, s.high);
      std::printf("  cipher: entropy %.4f  corr H %.4f V %.4f D %.4f\n", ev::entropy(c8),
                  ev::correlationAllPairs(c8, ev::Direction::Horizontal), ev::correlationAllPairs(c8, ev::Direction::Vertical),
                  ev::correlationAllPairs(c8, ev::Direction::Diagonal));
      std::printf("  one pixel, new keys (SHA-256): NPCR %.2f%% UACI %.2f%%; keys fixed (network): NPCR %.2f%% UACI %.2f%%; "
                  "one key bit: NPCR %.2f%% UACI %.2f%%\n",
                  dHash.npcr, dHash.uaci, dNet.npcr, dNet.uaci, dKey.npcr, dKey.uaci);
      std::printf("  decrypt 8-bit: right PSNR %.2f SSIM %.4f | wrong PSNR %.2f SSIM %.4f; full range: right PSNR %.2f SSIM %.4f\n",
                  ev::psnr(x8, unit8(good, s.rows, s.columns)), ev::ssim(x8, unit8(good, s.rows, s.columns)),
                  ev::psnr(x8, unit8(bad, s.rows, s.columns)), ev::ssim(x8, unit8(bad, s.rows, s.columns)),
                  ev::psnr(full(s.values, s), full(good, s)), ev::ssim(full(s.values, s), full(good, s)));
      std::printf("  CPU time: encrypt %.3f s (%.2f images/s per core), decrypt %.3f s (%.2f images/s per core)\n", encS,
                  1 / encS, decS, 1 / decS);
    }
  }
  return 0;
} catch (const std::exception& e) {
  std::cerr << "feature-fusion-evaluate: " << e.what() << "\n";
  return 1;
}
