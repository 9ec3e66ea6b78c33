// The papers' metrics against values worked out by hand, and Wu et al.'s critical values against the
// published tables (Wu, Noonan, Agaian 2011; reproduced in Kumar et al. 2025, Tables 12 and 13).
#include "codecs/eval/metrics.h"

#include <gtest/gtest.h>

#include <cmath>

namespace pacsgw::eval {
namespace {

ImageView view8(std::size_t rows, std::size_t cols, std::vector<std::int32_t> values) {
  ImageView v;
  v.rows = rows;
  v.cols = cols;
  v.planes = values.size() / (rows * cols);
  v.peak = 255;
  v.values = std::move(values);
  return v;
}

TEST(EvalMetrics, EntropyHandComputed) {
  EXPECT_DOUBLE_EQ(entropy(view8(1, 4, {0, 0, 1, 1})), 1.0);
  EXPECT_DOUBLE_EQ(entropy(view8(1, 4, {7, 7, 7, 7})), 0.0);
  // p = 3/4, 1/4: -(0.75 log2 0.75 + 0.25 log2 0.25) = 0.811278...
  EXPECT_NEAR(entropy(view8(2, 2, {0, 0, 0, 1})), 0.8112781244591328, 1e-15);
  std::vector<std::int32_t> all(256);
  for (int i = 0; i < 256; ++i) all[i] = i;
  EXPECT_DOUBLE_EQ(entropy(view8(16, 16, all)), 8.0);
}

TEST(EvalMetrics, CorrelationHandComputed) {
  EXPECT_NEAR(correlation({{1, 2}, {2, 4}, {3, 6}}), 1.0, 1e-15);
  EXPECT_NEAR(correlation({{1, 3}, {2, 2}, {3, 1}}), -1.0, 1e-15);
  // x = 1,2,3,4; y = 2,1,4,3: cov = 0.75*... -> r = 0.6
  EXPECT_NEAR(correlation({{1, 2}, {2, 1}, {3, 4}, {4, 3}}), 0.6, 1e-15);
  EXPECT_EQ(correlation({{1, 5}, {2, 5}, {3, 5}}), 0.0);  // no variance
}

TEST(EvalMetrics, AdjacentPairsFollowTheDirection) {
  // value = 10 * row + col: horizontal neighbours differ by 1, vertical by 10, diagonal by 11.
  std::vector<std::int32_t> v;
  for (int r = 0; r < 8; ++r)
    for (int c = 0; c < 9; ++c) v.push_back(10 * r + c);
  const ImageView img = view8(8, 9, v);
  std::mt19937_64 rng(1);
  for (auto [d, delta] : {std::pair{Direction::Horizontal, 1.0}, std::pair{Direction::Vertical, 10.0},
                          std::pair{Direction::Diagonal, 11.0}}) {
    const auto pairs = samplePairs(img, d, 500, rng);
    ASSERT_EQ(pairs.size(), 500u);
    for (const auto& [a, b] : pairValues(img, pairs, d)) ASSERT_EQ(b - a, delta);
    EXPECT_NEAR(correlation(pairValues(img, pairs, d)), 1.0, 1e-12);
  }
}

TEST(EvalMetrics, AllPairsCorrelation) {
  // Horizontal neighbours of 0 1 / 2 0: pairs (0,1), (2,0): r = -1; vertical pairs (0,2), (1,0): r = -1.
  EXPECT_NEAR(correlationAllPairs(view8(2, 2, {0, 1, 2, 0}), Direction::Horizontal), -1.0, 1e-15);
  EXPECT_NEAR(correlationAllPairs(view8(2, 2, {0, 1, 2, 0}), Direction::Vertical), -1.0, 1e-15);
  std::vector<std::int32_t> ramp;
  for (int r = 0; r < 5; ++r)
    for (int c = 0; c < 6; ++c) ramp.push_back(10 * r + c);
  EXPECT_NEAR(correlationAllPairs(view8(5, 6, ramp), Direction::Diagonal), 1.0, 1e-12);
}

TEST(EvalMetrics, NpcrUaciHandComputed) {
  // Two of four pixels differ, by 255 and by 51: NPCR 50 %, UACI (255 + 51) / (4 * 255) = 30 %.
  const auto d = npcrUaci(view8(2, 2, {0, 10, 20, 30}), view8(2, 2, {255, 10, 71, 30}));
  EXPECT_DOUBLE_EQ(d.npcr, 50.0);
  EXPECT_DOUBLE_EQ(d.uaci, 30.0);
}

TEST(EvalMetrics, WuNpcrCriticalValuesMatchPublishedTables) {
  // 256 x 256 and 512 x 512, F = 255, alpha = 0.05 / 0.01 / 0.001 (percent, 4 decimals as published).
  EXPECT_NEAR(100 * wuNpcrCritical(65536, 255, 0.05), 99.5693, 5e-5);
  EXPECT_NEAR(100 * wuNpcrCritical(65536, 255, 0.01), 99.5527, 5e-5);
  EXPECT_NEAR(100 * wuNpcrCritical(65536, 255, 0.001), 99.5341, 5e-5);
  EXPECT_NEAR(100 * wuNpcrCritical(262144, 255, 0.05), 99.5893, 5e-5);
  EXPECT_NEAR(100 * wuNpcrCritical(262144, 255, 0.01), 99.5810, 5e-5);
  EXPECT_NEAR(100 * wuNpcrCritical(262144, 255, 0.001), 99.5717, 5e-5);
  // Kumar et al. Table 12: mu 99.6094, sigma 0.0122 (512 x 512).
  EXPECT_NEAR(100 * npcrMean(255), 99.6094, 5e-5);
  EXPECT_NEAR(100 * npcrSigma(262144, 255), 0.0122, 5e-5);
}

TEST(EvalMetrics, WuUaciIntervalsMatchPublishedTables) {
  auto pct = [](std::pair<double, double> p) { return std::pair{100 * p.first, 100 * p.second}; };
  auto i = pct(wuUaciInterval(65536, 255, 0.05));
  EXPECT_NEAR(i.first, 33.2824, 5e-5);
  EXPECT_NEAR(i.second, 33.6447, 5e-5);
  i = pct(wuUaciInterval(65536, 255, 0.01));
  EXPECT_NEAR(i.first, 33.2255, 5e-5);
  EXPECT_NEAR(i.second, 33.7016, 5e-5);
  i = pct(wuUaciInterval(65536, 255, 0.001));
  EXPECT_NEAR(i.first, 33.1594, 5e-5);
  EXPECT_NEAR(i.second, 33.7677, 5e-5);
  i = pct(wuUaciInterval(262144, 255, 0.05));
  EXPECT_NEAR(i.first, 33.3730, 5e-5);
  EXPECT_NEAR(i.second, 33.5541, 5e-5);
  i = pct(wuUaciInterval(262144, 255, 0.01));
  EXPECT_NEAR(i.first, 33.3445, 5e-5);
  EXPECT_NEAR(i.second, 33.5826, 5e-5);
  i = pct(wuUaciInterval(262144, 255, 0.001));
  EXPECT_NEAR(i.first, 33.3115, 5e-5);
  EXPECT_NEAR(i.second, 33.6156, 5e-5);
  EXPECT_NEAR(100 * uaciMean(255), 33.4635, 5e-5);
  EXPECT_NEAR(100 * uaciSigma(262144, 255), 0.0462, 5e-5);
}

TEST(EvalMetrics, SixteenBitStatisticsUseTheFullRange) {
  // For F = 65535 the ideal NPCR is 1 - 1/65536 and the ideal UACI (F+2)/(3F+3) ~ 1/3.
  EXPECT_NEAR(npcrMean(65535), 1 - 1.0 / 65536, 1e-15);
  EXPECT_NEAR(uaciMean(65535), 65537.0 / 196608.0, 1e-15);
  EXPECT_LT(wuNpcrCritical(262144, 65535, 0.05), npcrMean(65535));
}

TEST(EvalMetrics, NormalQuantiles) {
  EXPECT_NEAR(normalUpperQuantile(0.05), 1.6448536269514722, 1e-12);
  EXPECT_NEAR(normalUpperQuantile(0.025), 1.959963984540054, 1e-12);
  EXPECT_NEAR(normalUpperQuantile(0.0005), 3.2905267314918945, 1e-11);
  EXPECT_NEAR(normalUpperQuantile(0.5), 0.0, 1e-15);
  EXPECT_NEAR(normalUpperQuantile(0.975), -1.959963984540054, 1e-12);
}

TEST(EvalMetrics, MseAndPsnrHandComputed) {
  const ImageView a = view8(1, 4, {0, 0, 0, 0}), b = view8(1, 4, {2, 0, 0, 0});
  EXPECT_DOUBLE_EQ(mse(a, b), 1.0);  // 4 / 4
  EXPECT_NEAR(psnr(a, b), 10 * std::log10(255.0 * 255.0), 1e-12);  // 48.1308 dB
  EXPECT_TRUE(std::isinf(psnr(a, a)));
  ImageView c = view8(1, 2, {0, 0}), d = view8(1, 2, {255, 255});
  EXPECT_DOUBLE_EQ(psnr(c, d), 0.0);
}

TEST(EvalMetrics, SsimHandComputed) {
  // One window over x = (0, 255), y = (0, 0): mean 127.5 / 0, var 16256.25 / 0, cov 0, L = 255.
  const double c1 = 2.55 * 2.55, c2 = 7.65 * 7.65;
  const double expected = (c1 * c2) / ((127.5 * 127.5 + c1) * (16256.25 + c2));
  EXPECT_NEAR(ssimGlobal({0, 255}, {0, 0}, 255), expected, 1e-15);
  EXPECT_NEAR(ssimGlobal({3, 9, 27}, {3, 9, 27}, 255), 1.0, 1e-15);
  // Small planes fall back to one window per plane.
  EXPECT_NEAR(ssim(view8(1, 2, {0, 255}), view8(1, 2, {0, 0})), expected, 1e-15);
}

TEST(EvalMetrics, SsimWindowed) {
  std::vector<std::int32_t> smooth, noisy;
  std::mt19937 rng(3);
  for (int r = 0; r < 32; ++r)
    for (int c = 0; c < 32; ++c) {
      smooth.push_back(4 * r + 2 * c);
      noisy.push_back(static_cast<std::int32_t>(rng() % 256));
    }
  EXPECT_NEAR(ssim(view8(32, 32, smooth), view8(32, 32, smooth)), 1.0, 1e-12);
  EXPECT_LT(ssim(view8(32, 32, smooth), view8(32, 32, noisy)), 0.1);
}

TEST(EvalMetrics, ViewsOf16BitSignedData) {
  codecs::PixelLayout l;
  l.rows = 1;
  l.columns = 3;
  l.bitsAllocated = 16;
  l.bitsStored = 12;
  l.pixelRepresentation = 1;
  const std::uint8_t bytes[] = {0x00, 0xFC, 0x34, 0x12, 0xFF, 0xFF};  // -1024, 0x1234, -1
  const ImageView full = makeView(l, bytes, sizeof bytes, ViewKind::Full);
  EXPECT_EQ(full.values, (std::vector<std::int32_t>{-1024, 0x1234, -1}));
  EXPECT_EQ(full.peak, 65535);
  EXPECT_EQ(full.minValue, -32768);
  const ImageView msb = makeView(l, bytes, sizeof bytes, ViewKind::Msb8);
  EXPECT_EQ(msb.values, (std::vector<std::int32_t>{0xFC, 0x12, 0xFF}));
  EXPECT_EQ(msb.peak, 255);
  EXPECT_EQ(histogram(full)[static_cast<std::size_t>(-1 + 32768)], 1u);
}

TEST(EvalMetrics, ViewsOfRgbPlanarAndInterleaved) {
  codecs::PixelLayout l;
  l.rows = 1;
  l.columns = 2;
  l.bitsAllocated = 8;
  l.bitsStored = 8;
  l.samplesPerPixel = 3;
  const std::uint8_t interleaved[] = {1, 2, 3, 4, 5, 6};
  EXPECT_EQ(makeView(l, interleaved, 6, ViewKind::Full).values, (std::vector<std::int32_t>{1, 4, 2, 5, 3, 6}));
  l.planarConfiguration = 1;
  EXPECT_EQ(makeView(l, interleaved, 6, ViewKind::Full).values, (std::vector<std::int32_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(makeView(l, interleaved, 6, ViewKind::Full).planes, 3u);
}

// 16-bit little-endian sample bytes of `values` (two's complement for negative values).
std::vector<std::uint8_t> words(const std::vector<int>& values) {
  std::vector<std::uint8_t> b;
  for (int v : values) {
    const auto w = static_cast<std::uint16_t>(static_cast<std::int16_t>(v));
    b.push_back(static_cast<std::uint8_t>(w));
    b.push_back(static_cast<std::uint8_t>(w >> 8));
  }
  return b;
}

codecs::PixelLayout grey16(std::uint16_t rows, std::uint16_t cols, std::uint32_t frames, int bitsStored, int signedRep) {
  codecs::PixelLayout l;
  l.rows = rows;
  l.columns = cols;
  l.numberOfFrames = frames;
  l.samplesPerPixel = 1;
  l.bitsAllocated = 16;
  l.bitsStored = static_cast<std::uint16_t>(bitsStored);
  l.highBit = static_cast<std::uint16_t>(bitsStored - 1);
  l.pixelRepresentation = static_cast<std::uint16_t>(signedRep);
  return l;
}

TEST(EvalMetrics, StoredViewMasksToBitsStoredAndSignExtends) {
  // 12 bits stored, signed: 0xF000 above the high bit is ignored; 0x0800 is -2048, 0x07FF is 2047.
  const auto l = grey16(1, 4, 1, 12, 1);
  const auto b = words({0x0800, 0x07FF, static_cast<std::int16_t>(0xF005), 0x0FFF});
  const ImageView v = storedView(l, b.data(), b.size());
  EXPECT_EQ(v.values, (std::vector<std::int32_t>{-2048, 2047, 5, -1}));
  EXPECT_EQ(v.peak, 4095);
  EXPECT_EQ(v.minValue, -2048);
}

TEST(EvalMetrics, WindowedViewUsesEachFramesMinMax) {
  // Frame 1 spans 0..1020 (4 stored units per 8-bit level), frame 2 spans -100..-100+255.
  const auto l = grey16(1, 4, 2, 16, 1);
  const auto b = words({0, 1020, 510, 4, -100, 155, 0, -100});
  const auto w = frameMinMaxWindows(l, b.data(), b.size());
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0].lo, 0);
  EXPECT_EQ(w[0].hi, 1020);
  EXPECT_EQ(w[1].lo, -100);
  EXPECT_EQ(w[1].hi, 155);
  const ImageView v = windowedView(l, b.data(), b.size(), w);
  EXPECT_EQ(v.values, (std::vector<std::int32_t>{0, 255, 128, 1, 0, 255, 100, 0}));
  EXPECT_EQ(v.peak, 255);
  // A constant frame gets a one-unit window instead of dividing by zero.
  const auto flat = words({7, 7, 7, 7});
  EXPECT_EQ(frameMinMaxWindows(grey16(2, 2, 1, 16, 0), flat.data(), flat.size())[0].hi, 8);
}

TEST(EvalMetrics, PsnrOfAKnownPerturbationInTheWindowedAndFullRangeViews) {
  // 64 samples 0..1020 in steps of 4 per 8-bit level... one sample off by 40 stored units = 10 levels.
  std::vector<int> plain(64), changed;
  for (int i = 0; i < 64; ++i) plain[i] = i == 0 ? 0 : (i == 63 ? 1020 : 16 * i);
  changed = plain;
  changed[20] += 40;
  const auto l = grey16(8, 8, 1, 12, 0);
  const auto a = words(plain), b = words(changed);
  const auto w = frameMinMaxWindows(l, a.data(), a.size());
  // 8-bit view: MSE = 10^2 / 64 -> PSNR = 10 log10(255^2 * 64 / 100).
  EXPECT_NEAR(psnr(windowedView(l, a.data(), a.size(), w), windowedView(l, b.data(), b.size(), w)),
              10 * std::log10(255.0 * 255.0 * 64 / 100), 1e-9);
  // Full range (12 bits stored, F = 4095): MSE = 40^2 / 64.
  EXPECT_NEAR(psnr(storedView(l, a.data(), a.size()), storedView(l, b.data(), b.size())),
              10 * std::log10(4095.0 * 4095.0 * 64 / 1600), 1e-9);
}

}  // namespace
}  // namespace pacsgw::eval
