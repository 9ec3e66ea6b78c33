// feature-fusion: key schedule, the coefficient coupling, the network and its training step.
#include "codecs/feature_fusion/coupling.h"
#include "codecs/feature_fusion/feature_keys.h"
#include "codecs/feature_fusion/image_cipher.h"
#include "codecs/feature_fusion/model.h"
#include "codecs/feature_fusion/quality.h"
#include "codecs/feature_fusion/side_info.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <algorithm>
#include <filesystem>
#include <unistd.h>
#include <random>

namespace ff = pacsgw::codecs::feature_fusion;
using pacsgw::SecretBytes;

namespace {

SecretBytes keyOf(std::uint8_t fill) {
  SecretBytes k(32);
  for (std::size_t i = 0; i < 32; ++i) k.data()[i] = static_cast<std::uint8_t>(fill + 7 * i);
  return k;
}

ff::ModelConfig tinyConfig() {
  ff::ModelConfig c;
  c.stemChannels = 4;
  c.channels = {4, 16};  // 2 groups: PixelShuffle(4), last group 4^2 channels
  return c;
}

// A smooth synthetic slice (disc plus gradient), values in [0, 1].
std::vector<float> phantom(int rows, int columns, double shift) {
  std::vector<float> v(static_cast<std::size_t>(rows) * columns);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < columns; ++c) {
      const double dr = r - rows / 2.0 - shift, dc = c - columns / 2.0 + shift;
      const double disc = dr * dr + dc * dc < rows * columns / 8.0 ? 0.5 : 0.0;
      v[static_cast<std::size_t>(r) * columns + c] = static_cast<float>(0.2 + disc + 0.25 * r / rows);
    }
  return v;
}

std::vector<ff::FeatureKeys> keysFor(const std::vector<float>& batch, int n, int side, const ff::ModelConfig& c, std::uint8_t fill) {
  std::vector<ff::FeatureKeys> keys;
  for (int b = 0; b < n; ++b) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(&batch[static_cast<std::size_t>(b) * side * side]);
    keys.push_back(ff::featureKeys(ff::digestImage(p, side * side * sizeof(float)), ff::userKeyFromSubkey(keyOf(fill + b)),
                                   c.channels, side, side));
  }
  return keys;
}

}  // namespace

TEST(FeatureFusionKeys, InitialValuesFollowTheDigestAndTheKey) {
  const std::vector<std::uint8_t> image(4096, 17);
  auto d = ff::digestImage(image.data(), image.size());
  const auto k = ff::userKeyFromSubkey(keyOf(1));
  const auto x0 = ff::initialValues(d, k);
  for (double x : x0) {
    EXPECT_GT(x, 0.0);
    EXPECT_LT(x, 1.0);
  }
  EXPECT_NE(x0, ff::initialValues(d, ff::userKeyFromSubkey(keyOf(2))));
  auto image2 = image;
  image2[100] ^= 1;  // one bit of the image changes every seed (through SHA-256)
  const auto x1 = ff::initialValues(ff::digestImage(image2.data(), image2.size()), k);
  for (std::size_t i = 0; i < x0.size(); ++i) EXPECT_NE(x0[i], x1[i]);
  // Sequences: deterministic, in (0, 1), and a 1e-15 change of x0 separates the orbit.
  const auto a = ff::logisticSequence(x0[0], 2000), b = ff::logisticSequence(x0[0], 2000);
  EXPECT_EQ(a, b);
  const auto c = ff::logisticSequence(x0[0] + 1e-15, 2000);
  int differ = 0;
  for (std::size_t i = 1000; i < 2000; ++i) differ += std::fabs(a[i] - c[i]) > 1e-3;
  EXPECT_GT(differ, 900);
  const auto keys = ff::featureKeys(d, k, {4, 16}, 32, 32);
  ASSERT_EQ(keys.groups.size(), 2u);
  EXPECT_EQ(keys.groups[0].size(), 4u * 16 * 16);
  EXPECT_EQ(keys.groups[1].size(), 16u * 8 * 8);
  EXPECT_EQ(keys.couplingKey.size(), 20u);
}

TEST(FeatureFusionCoupling, InvertsExactly) {
  const auto key = ff::userKeyFromSubkey(keyOf(3));
  ff::AdditiveCoupling coupling(key, 112);
  std::mt19937 rng(5);
  for (int trial = 0; trial < 20; ++trial) {
    ff::AdditiveCoupling::Halves in;
    for (int i = 0; i < 112; ++i) in.key.push_back(static_cast<std::uint16_t>(rng())), in.alpha.push_back(static_cast<std::uint16_t>(rng()));
    const auto out = coupling.forward(in);
    EXPECT_NE(out.alpha, in.alpha);
    const auto back = coupling.inverse(out);
    EXPECT_EQ(back.key, in.key);
    EXPECT_EQ(back.alpha, in.alpha);
    EXPECT_EQ(coupling.recover(coupling.protect(in.alpha, in.key), in.key), in.alpha);
  }
}

// The literal paper transmits (EK, EP): the public block inverts them with no key at all. This block
// transmits EP only; without K (the key) the coefficients do not come back.
TEST(FeatureFusionCoupling, TransmittedHalfDoesNotInvertWithoutTheKey) {
  const auto key = ff::userKeyFromSubkey(keyOf(4));
  ff::AdditiveCoupling coupling(key, 64);
  std::mt19937 rng(9);
  ff::AdditiveCoupling::Halves in;
  for (int i = 0; i < 64; ++i) in.key.push_back(static_cast<std::uint16_t>(rng())), in.alpha.push_back(static_cast<std::uint16_t>(20000 + i));
  const auto both = coupling.forward(in);
  EXPECT_EQ(coupling.inverse(both).alpha, in.alpha);  // the leak of transmitting both halves

  ff::Codes wrongKey = in.key;
  for (auto& v : wrongKey) v = static_cast<std::uint16_t>(rng());
  const auto guessed = coupling.recover(both.alpha, wrongKey);
  int close = 0;
  for (std::size_t i = 0; i < guessed.size(); ++i) close += std::abs(int(guessed[i]) - int(in.alpha[i])) < 2000;
  EXPECT_LT(close, 16);  // chance level is about 64 * 4000 / 65536 = 4
  // Other users' key: other F and G parameters too.
  ff::AdditiveCoupling other(ff::userKeyFromSubkey(keyOf(5)), 64);
  EXPECT_NE(other.recover(both.alpha, in.key), in.alpha);
}

TEST(FeatureFusionModel, EncryptDecryptShapesAndDeterminism) {
  const auto c = tinyConfig();
  ff::FeatureFusionModel a(c, 7), b(c, 7);
  EXPECT_EQ(a.sizeMultiple(), 4);
  EXPECT_EQ(a.coefficientCount(), 20u);
  const auto img = phantom(32, 32, 0);
  const auto keys = keysFor(img, 1, 32, c, 1);
  const auto ea = a.encrypt(img, 32, 32, keys[0]), eb = b.encrypt(img, 32, 32, keys[0]);
  EXPECT_EQ(ea.cipher, eb.cipher);
  EXPECT_EQ(ea.cipher.size(), 32u * 32);
  ASSERT_EQ(ea.alpha.size(), 20u);
  for (float v : ea.alpha) EXPECT_TRUE(v >= c.alphaMin && v <= 1.0f);
  EXPECT_EQ(a.decrypt(ea.cipher, 32, 32, ea.alpha, keys[0]).size(), 32u * 32);
  EXPECT_THROW(a.encrypt(phantom(30, 30, 0), 30, 30, keys[0]), std::invalid_argument);
  // Save and load give the same model.
  const auto path = std::filesystem::temp_directory_path() / ("ff_model_" + std::to_string(::getpid()) + ".pt");
  a.save(path.string());
  const auto loaded = ff::FeatureFusionModel::load(path.string());
  EXPECT_EQ(loaded.encrypt(img, 32, 32, keys[0]).cipher, ea.cipher);
  std::filesystem::remove(path);
  EXPECT_THROW(ff::FeatureFusionModel::load(path.string()), std::runtime_error);
}

TEST(FeatureFusionTraining, LossDecreasesAndIsDeterministic) {
  const auto c = tinyConfig();
  const int n = 4, side = 32;
  std::vector<float> batch;
  for (int b = 0; b < n; ++b) {
    const auto p = phantom(side, side, b);
    batch.insert(batch.end(), p.begin(), p.end());
  }
  const auto keys = keysFor(batch, n, side, c, 10);
  auto run = [&](int steps, std::vector<double>& losses) {
    ff::FeatureFusionModel model(c, 3);
    ff::FeatureFusionTrainer trainer(model, ff::TrainConfig{}, 11);
    for (int s = 0; s < steps; ++s) losses.push_back(trainer.step(batch, n, side, side, keys, 1.0, true).total);
  };
  std::vector<double> first, second;
  run(30, first);
  run(30, second);
  EXPECT_EQ(first, second);  // same seed, same inputs: same trajectory
  double early = 0, late = 0;
  for (int i = 0; i < 5; ++i) early += first[i], late += first[25 + i];
  EXPECT_LT(late, early * 0.8);
}

// Trained briefly on phantoms: the right key decrypts far better than a wrong one, with the side
// information (digest and EP) in the attacker's hands.
TEST(FeatureFusionTraining, WrongKeyDoesNotDecrypt) {
  const auto c = tinyConfig();
  const int n = 4, side = 32;
  ff::FeatureFusionModel model(c, 5);
  ff::FeatureFusionTrainer trainer(model, ff::TrainConfig{}, 5);
  std::mt19937 rng(1);
  for (int s = 0; s < 250; ++s) {
    std::vector<float> batch;
    for (int b = 0; b < n; ++b) {
      const auto p = phantom(side, side, static_cast<double>(rng() % 9) - 4);
      batch.insert(batch.end(), p.begin(), p.end());
    }
    trainer.step(batch, n, side, side, keysFor(batch, n, side, c, static_cast<std::uint8_t>(rng())), s < 100 ? 0.0 : 0.3, s >= 50);
  }
  const auto img = phantom(side, side, 1.5);
  const auto digest = ff::digestImage(reinterpret_cast<const std::uint8_t*>(img.data()), img.size() * sizeof(float));
  const auto right = keyOf(40), wrong = keyOf(41);
  const auto image = ff::protectImage(model, img, side, side, digest, right);
  const double psnrRight = ff::psnr8(ff::recoverImage(model, image, right), img);
  const double psnrWrong = ff::psnr8(ff::recoverImage(model, image, wrong), img);
  std::printf("phantom PSNR right %.2f dB, wrong %.2f dB\n", psnrRight, psnrWrong);
  EXPECT_GT(psnrRight, 18.0);
  EXPECT_GT(psnrRight - psnrWrong, 8.0);
}

TEST(FeatureFusionSideInfo, RoundTripsAndRejectsWrongLengths) {
  std::vector<ff::FrameSideInfo> frames(2);
  for (int f = 0; f < 2; ++f) {
    frames[f].lo = -1024 + f;
    frames[f].hi = 3071 - f;
    frames[f].digest.sha256.fill(static_cast<std::uint8_t>(0xab + f));
    frames[f].digest.p = static_cast<std::uint8_t>(77 + f);
    for (int i = 0; i < 20; ++i) frames[f].ep.push_back(static_cast<std::uint16_t>(i * 3271 + f));
    frames[f].overflow = {1, 2, 3, static_cast<std::uint8_t>(f)};
  }
  const auto bytes = ff::encodeSideInfo(frames);
  EXPECT_EQ(bytes.size(), 2 * ff::frameSideInfoBytes(20, 4));
  const auto back = ff::decodeSideInfo(bytes, 2, 20, 4);
  for (int f = 0; f < 2; ++f) {
    EXPECT_EQ(back[f].lo, frames[f].lo);
    EXPECT_EQ(back[f].hi, frames[f].hi);
    EXPECT_EQ(back[f].digest.sha256, frames[f].digest.sha256);
    EXPECT_EQ(back[f].digest.p, frames[f].digest.p);
    EXPECT_EQ(back[f].ep, frames[f].ep);
    EXPECT_EQ(back[f].overflow, frames[f].overflow);
  }
  EXPECT_THROW(ff::decodeSideInfo(bytes, 3, 20, 4), pacsgw::codecs::CipherError);
  EXPECT_THROW(ff::decodeSideInfo({bytes.begin(), bytes.end() - 1}, 2, 20, 4), pacsgw::codecs::CipherError);
  auto badWindow = frames;
  badWindow[1].hi = badWindow[1].lo;
  EXPECT_THROW(ff::decodeSideInfo(ff::encodeSideInfo(badWindow), 2, 20, 4), pacsgw::codecs::CipherError);
}
