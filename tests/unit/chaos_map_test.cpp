// The chaotic map and key streams of chaos-vpd: reference values are pinned so that any change in
// floating-point evaluation (FMA contraction, -ffast-math, a different operation order, x87) fails here
// instead of making old ciphertexts undecryptable. The pinned orbit values were computed independently
// with the same operation sequence in another language's IEEE-754 doubles.
#include "codecs/chaos/chaos_map.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

namespace pacsgw::codecs::chaos {
namespace {

std::uint64_t bitsOf(double v) {
  std::uint64_t u = 0;
  std::memcpy(&u, &v, sizeof u);
  return u;
}

TEST(ChaosMap, PortableExpIsWithinTwoUlpOfLibm) {
  for (double x = -20.0; x <= 20.0; x += 0.0625) {
    const double ours = portableExp(x);
    const double ref = std::exp(x);
    EXPECT_NEAR(ours, ref, 2.0 * (std::nextafter(ref, INFINITY) - ref)) << x;
  }
  EXPECT_EQ(portableExp(0.0), 1.0);
  EXPECT_THROW(portableExp(100.0), std::domain_error);
}

TEST(ChaosMap, PortableExpReferenceBits) {
  EXPECT_EQ(portableExp(8.0), 0x1.749ea7d470c6ep+11);
  EXPECT_EQ(portableExp(10.0), 0x1.5829dcf950560p+14);
  EXPECT_EQ(portableExp(11.99609375), 0x1.3ca422a3af8e5p+17);
}

TEST(ChaosMap, ChebyshevIdentity) {
  // (1 + T4(u)) / 2 with T4(u) = 8u^4 - 8u^2 + 1 = cos(4 arccos u).
  for (double u = -1.0; u <= 1.0; u += 1.0 / 64) {
    const double t4 = std::cos(4.0 * std::acos(u));
    EXPECT_NEAR(halfOnePlusT4(u), (1.0 + t4) / 2.0, 1e-12) << u;
  }
  EXPECT_EQ(halfOnePlusT4(1.0), 1.0);
  EXPECT_EQ(halfOnePlusT4(0.0), 1.0);
  EXPECT_EQ(halfOnePlusT4(-1.0), 1.0);
}

TEST(ChaosMap, OrbitReferenceValues) {
  // Initial condition of the paper's bifurcation figures, mu = 10.
  const double gain = portableExp(10.0);
  double x = 0.25454;
  for (int i = 0; i < 1000; ++i) x = mapStep(x, gain);
  EXPECT_EQ(bitsOf(x), bitsOf(0x1.b43412ccec000p-3));
  const std::uint32_t expected[] = {0x95eb, 0xe912, 0x1a1e, 0x75b2};
  for (std::uint32_t e : expected) {
    x = mapStep(x, gain);
    EXPECT_EQ(outputBits(x), e);
  }
}

TEST(ChaosMap, StateStaysInUnitInterval) {
  for (double mu : {8.0, 9.5, 11.999}) {
    const double gain = portableExp(mu);
    double x = 0.0;  // the fixed point of the plain Chebyshev map is not one here
    for (int i = 0; i < 100000; ++i) {
      x = mapStep(x, gain);
      ASSERT_GE(x, 0.0);
      ASSERT_LT(x, 1.0);
    }
  }
}

TEST(ChaosMap, OutputBitsAreBits20To35) {
  for (double x : {0.0, 0.5, 0.123456789, 0.999999999, 1.0 / 3.0}) {
    const auto expected = static_cast<std::uint32_t>(static_cast<std::uint64_t>(std::ldexp(x, 35)) & 0xFFFF);
    EXPECT_EQ(outputBits(x), expected) << x;
  }
}

TEST(ChaosMap, LyapunovExponentPositiveOverParameterRange) {
  for (double mu = kMuMin; mu < kMuMin + 4.0; mu += 0.5) {
    const double le = lyapunovExponent(0.25454, mu, 200000);
    EXPECT_GT(le, 0.0) << mu;
    // ln(gain) + E[ln|T4'(u)|] for u uniform on [-1, 1] (about 1.02).
    EXPECT_NEAR(le - mu, 1.02, 0.05) << mu;
  }
}

TEST(ChaosMap, LaneSeedFromDigestPart) {
  LaneSeed s = laneSeedFromDigestPart(0);
  EXPECT_EQ(s.x0, 0.0);
  EXPECT_EQ(s.mu, 8.0);
  s = laneSeedFromDigestPart(1000000000000005ULL);
  EXPECT_EQ(s.x0, 5.0 / 1e15);
  EXPECT_EQ(s.mu, 8.0 + 1.0 / 256);
  s = laneSeedFromDigestPart(~0ULL);  // 18446744073709551615
  EXPECT_EQ(s.x0, 744073709551615.0 / 1e15);
  EXPECT_EQ(s.mu, 8.0 + (18446 % 1024) / 256.0);
}

// The scalar definition of a key stream, for comparison with the vectorised generator.
std::vector<std::uint32_t> scalarStream(const LaneSeed& seed, std::size_t words) {
  std::vector<double> x(kSubOrbits, seed.x0), gain(kSubOrbits);
  for (std::size_t j = 0; j < kSubOrbits; ++j) {
    gain[j] = portableExp(seed.mu + static_cast<double>(j) / 1024.0);
    for (std::size_t i = 0; i < kTransient; ++i) x[j] = mapStep(x[j], gain[j]);
  }
  std::vector<std::uint32_t> out(words);
  std::uint64_t steps = 0;
  for (std::size_t t = 0; t * kSubOrbits < words; ++t) {
    for (std::size_t j = 0; j < kSubOrbits; ++j) {
      const double a = mapStep(x[j], gain[j]);
      const double b = mapStep(a, gain[j]);
      x[j] = b;
      if (t * kSubOrbits + j < words) out[t * kSubOrbits + j] = (outputBits(a) << 16) | outputBits(b);
    }
    steps += 2;
    if (steps % kReseedInterval == 0)
      for (std::size_t j = 0; j < kSubOrbits; ++j) x[j] = perturb(x[j], steps / kReseedInterval * kSubOrbits + j);
  }
  return out;
}

TEST(ChaosMap, VectorisedStreamMatchesScalarDefinition) {
  const LaneSeed seed{0.6180339887, 9.25};
  // Crosses the first orbit perturbation (kReseedInterval steps = kReseedInterval / 2 words per orbit).
  const std::size_t words = (kReseedInterval / 2 + 100) * kSubOrbits;
  KeyStream ks(seed);
  std::vector<std::uint32_t> a, b;
  ks.generate(words / 2, a);
  ks.generate(words - a.size(), b);  // continuing in a second call must give the same stream
  a.insert(a.end(), b.begin(), b.end());
  const std::vector<std::uint32_t> ref = scalarStream(seed, words);
  ASSERT_EQ(a.size(), ref.size());
  for (std::size_t i = 0; i < ref.size(); ++i) ASSERT_EQ(a[i], ref[i]) << "word " << i;
}

TEST(ChaosMap, StreamBytesLookUniform) {
  KeyStream ks(LaneSeed{0.31415926535, 8.0});
  std::vector<std::uint32_t> words;
  ks.generate(1 << 18, words);
  std::vector<double> counts(256, 0.0);
  std::size_t ones = 0;
  for (std::uint32_t w : words)
    for (int b = 0; b < 4; ++b) {
      counts[(w >> (8 * b)) & 0xFF] += 1;
      ones += __builtin_popcount((w >> (8 * b)) & 0xFF);
    }
  const double n = 4.0 * words.size();
  double chi2 = 0;
  for (double c : counts) chi2 += (c - n / 256) * (c - n / 256) / (n / 256);
  EXPECT_LT(chi2, 330.5);  // chi-square, 255 degrees of freedom, p = 0.001
  EXPECT_NEAR(static_cast<double>(ones) / (8 * n), 0.5, 0.002);
}

TEST(ChaosMap, NearbySeedsDiverge) {
  const LaneSeed a{0.4, 10.0};
  const LaneSeed b{std::nextafter(0.4, 1.0), 10.0};  // one ulp apart
  std::vector<std::uint32_t> sa, sb;
  KeyStream(a).generate(4096, sa);
  KeyStream(b).generate(4096, sb);
  std::size_t equal = 0;
  for (std::size_t i = 0; i < sa.size(); ++i) equal += sa[i] == sb[i];
  EXPECT_LT(equal, 5u);
}

}  // namespace
}  // namespace pacsgw::codecs::chaos
