// NIST SP 800-22 rev. 1a subset against the worked examples printed in the document (section 2.x.8)
// and the 100-bit examples built from the binary expansion of pi that the document uses.
#include "codecs/eval/nist.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace pacsgw::eval::nist {
namespace {

// First 100 bits of the binary expansion of pi (3.243F6A8885A308D313198A2E0... in hex), as in SP 800-22.
const char* kPi100 =
    "1100100100001111110110101010001000100001011010001100"
    "001000110100110001001100011001100010100010111000";

TEST(NistSubset, PiExpansionIsWhatTheDocumentUses) {
  const Bits e = bitsFromString(kPi100);
  ASSERT_EQ(e.size(), 100u);
  const std::uint8_t hex[] = {0xC9, 0x0F, 0xDA, 0xA2, 0x21, 0x68, 0xC2, 0x34, 0xC4, 0xC6, 0x62, 0x8B, 0x80};
  EXPECT_EQ(bitsOfBytes(hex, sizeof hex, 100), e);  // 3.243F6A88... shifted: 11.0010 0100 0011 ...
}

TEST(NistSubset, IncompleteGammaKnownValues) {
  EXPECT_NEAR(igamc(1.0, 1.0), std::exp(-1.0), 1e-12);             // Q(1, x) = e^-x
  EXPECT_NEAR(igamc(0.5, 2.0), std::erfc(std::sqrt(2.0)), 1e-12);  // Q(1/2, x) = erfc(sqrt x)
  EXPECT_NEAR(igamc(3.0, 2.5), std::exp(-2.5) * (1 + 2.5 + 2.5 * 2.5 / 2), 1e-12);
  EXPECT_NEAR(igamc(10.0, 30.0), 7.121750862815577e-06, 1e-12);  // e^-30 sum_{k<10} 30^k / k!
  EXPECT_NEAR(igamc(32768.0, 32768.0), 0.499265378021881, 1e-9);
  EXPECT_EQ(igamc(2.0, 0.0), 1.0);
}

TEST(NistSubset, Frequency) {
  EXPECT_NEAR(frequency(bitsFromString("1011010101")), 0.527089, 1e-6);
  EXPECT_NEAR(frequency(bitsFromString(kPi100)), 0.109599, 1e-6);
}

TEST(NistSubset, BlockFrequency) {
  EXPECT_NEAR(blockFrequency(bitsFromString("0110011010"), 3), 0.801252, 1e-6);
  EXPECT_NEAR(blockFrequency(bitsFromString(kPi100), 10), 0.706438, 1e-6);
}

TEST(NistSubset, Runs) {
  EXPECT_NEAR(runs(bitsFromString("1001101011")), 0.147232, 1e-6);
  EXPECT_NEAR(runs(bitsFromString(kPi100)), 0.500798, 1e-6);
  EXPECT_EQ(runs(bitsFromString("1111111111111111111111111111111111110000")), 0.0);  // prerequisite fails
}

TEST(NistSubset, LongestRunOfOnes) {
  const Bits e = bitsFromString(
      "11001100000101010110110001001100111000000000001001"
      "00110101010001000100111101011010000000110101111100"
      "1100111001101101100010110010");
  ASSERT_EQ(e.size(), 128u);
  EXPECT_NEAR(longestRunOfOnes(e), 0.180609, 2e-4);  // document: chi2 4.882605, P 0.180598 (rounded pi_i)
}

TEST(NistSubset, LongestRunProbabilitiesSumToOne) {
  for (std::size_t m : {8u, 128u, 10000u}) {
    double sum = 0;
    for (double p : longestRunProbabilities(m)) sum += p;
    EXPECT_NEAR(sum, 1.0, 1e-3) << m;
  }
}

TEST(NistSubset, DiscreteFourierTransform) {
  // The document's printed examples for this test (N1 = 4, P = 0.029523; N1 = 46, P = 0.168669) cannot be
  // reproduced from its own definition: for 1001010011 all five moduli |S_0..S_4| (0, 2, 4.47, 2, 4.47)
  // lie below T = sqrt(ln(20) n) = 5.47, so N1 = 5, d = (5 - 4.75) / sqrt(10 * .95 * .05 / 4) = 0.7255
  // and P = erfc(0.7255 / sqrt 2) = 0.468160; for the 100 bits of pi N1 = 48, P = 0.646355.
  EXPECT_NEAR(discreteFourierTransform(bitsFromString("1001010011")), 0.468160, 1e-6);
  EXPECT_NEAR(discreteFourierTransform(bitsFromString(kPi100)), 0.646355, 1e-6);
}

TEST(NistSubset, DftOfArbitraryLengthMatchesPowerOfTwoPath) {
  // A non-power-of-two length goes through Bluestein's algorithm; compare with a naive DFT count.
  std::mt19937 rng(5);
  Bits e(1000);
  for (auto& b : e) b = rng() & 1;
  const double n = 1000, t = std::sqrt(std::log(20.0) * n);
  double below = 0;
  for (int k = 0; k < 500; ++k) {
    double re = 0, im = 0;
    for (int j = 0; j < 1000; ++j) {
      const double x = e[j] ? 1 : -1, a = -2 * 3.14159265358979323846 * k * j / n;
      re += x * std::cos(a);
      im += x * std::sin(a);
    }
    below += std::sqrt(re * re + im * im) < t;
  }
  const double d = (below - 0.95 * n / 2) / std::sqrt(n * 0.95 * 0.05 / 4);
  EXPECT_NEAR(discreteFourierTransform(e), std::erfc(std::fabs(d) / std::sqrt(2.0)), 1e-9);
}

TEST(NistSubset, ApproximateEntropy) {
  EXPECT_NEAR(approximateEntropy(bitsFromString("0100110101"), 3), 0.261961, 1e-6);
  EXPECT_NEAR(approximateEntropy(bitsFromString(kPi100), 2), 0.235301, 1e-6);
}

TEST(NistSubset, Serial) {
  const auto p = serial(bitsFromString("0011011101"), 3);
  EXPECT_NEAR(p.first, 0.808792, 1e-6);
  EXPECT_NEAR(p.second, 0.670320, 1e-6);
}

TEST(NistSubset, CumulativeSums) {
  EXPECT_NEAR(cumulativeSums(bitsFromString("1011010111")).first, 0.4116588, 1e-6);
  const auto p = cumulativeSums(bitsFromString(kPi100));
  EXPECT_NEAR(p.first, 0.219194, 1e-6);
  EXPECT_NEAR(p.second, 0.114866, 1e-6);
}

TEST(NistSubset, RandomBitsPassAndConstantBitsFail) {
  std::mt19937_64 rng(42);
  Bits e(1 << 20);
  for (auto& b : e) b = rng() & 1;
  for (const auto& r : runSubset(e)) EXPECT_TRUE(r.pass) << r.name << " p=" << r.pValue;

  Bits alternating(1 << 16);
  for (std::size_t i = 0; i < alternating.size(); ++i) alternating[i] = i & 1;
  std::size_t failed = 0;
  for (const auto& r : runSubset(alternating)) failed += !r.pass;
  EXPECT_GE(failed, 3u);
}

TEST(NistSubset, BitUnpacking) {
  const std::uint8_t bytes[] = {0xA5};
  EXPECT_EQ(bitsOfBytes(bytes, 1), bitsFromString("10100101"));
  EXPECT_EQ(bitsOfWords({0x80000001u}, 33), bitsFromString("10000000000000000000000000000001"));
}

}  // namespace
}  // namespace pacsgw::eval::nist
