// The pixel layers of chaos-vpd against naive reference implementations written from the paper's text.
#include "codecs/chaos/vpd_core.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

namespace pacsgw::codecs::chaos {
namespace {

template <typename Word> std::vector<Word> randomWords(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<Word> w(n);
  for (auto& v : w) v = static_cast<Word>(rng());
  return w;
}

// Bitstream of the words, most significant bit first.
template <typename Word> std::vector<int> toBits(const std::vector<Word>& w) {
  std::vector<int> bits;
  for (Word v : w)
    for (int b = sizeof(Word) * 8 - 1; b >= 0; --b) bits.push_back((v >> b) & 1);
  return bits;
}

template <typename Word> std::vector<Word> fromBits(const std::vector<int>& bits) {
  std::vector<Word> w(bits.size() / (sizeof(Word) * 8));
  for (std::size_t i = 0; i < bits.size(); ++i) {
    const std::size_t word = i / (sizeof(Word) * 8);
    w[word] = static_cast<Word>((w[word] << 1) | bits[i]);
  }
  return w;
}

// The paper's Step 1 literally: 3-bit terms x_i, y_1 = x_1, y_i = x_i XOR y_(i-1); a final short term
// is padded with zeros and keeps its real bits.
template <typename Word> std::vector<Word> naiveVpd(const std::vector<Word>& in) {
  std::vector<int> bits = toBits(in);
  int prev[3] = {0, 0, 0};
  for (std::size_t i = 0; i < bits.size(); i += 3) {
    for (std::size_t k = 0; k < 3 && i + k < bits.size(); ++k) {
      bits[i + k] ^= prev[k];
      prev[k] = bits[i + k];
    }
  }
  return fromBits<Word>(bits);
}

TEST(ChaosCore, PlanetSboxFromTheSolarSystem) {
  // Rank by distance from the Sun (Me, Ve, Ea, Ma, Ju, Sa, Ur, Ne) -> the planet's Table 2 code.
  const std::array<std::uint8_t, 8> expected = {7, 2, 5, 1, 4, 6, 0, 3};
  EXPECT_EQ(planetSbox(), expected);
  for (std::uint8_t v = 0; v < 8; ++v) EXPECT_EQ(planetSboxInverse()[planetSbox()[v]], v);
  // Table 3 (Rule-37241) is plain XOR of Table 2 codes: Ve xor Ea = Me, Ju xor Sa = Ve.
  EXPECT_EQ(static_cast<int>(Planet::Ve) ^ static_cast<int>(Planet::Ea), static_cast<int>(Planet::Me));
  EXPECT_EQ(static_cast<int>(Planet::Ju) ^ static_cast<int>(Planet::Sa), static_cast<int>(Planet::Ve));
}

TEST(ChaosCore, BitSlicedSboxMatchesTableAtEveryBit) {
  for (unsigned v = 0; v < 8; ++v) {
    for (int bit = 0; bit < 16; ++bit) {
      std::uint16_t a = static_cast<std::uint16_t>(((v >> 2) & 1) << bit);
      std::uint16_t b = static_cast<std::uint16_t>(((v >> 1) & 1) << bit);
      std::uint16_t c = static_cast<std::uint16_t>((v & 1) << bit);
      sboxTriplet(a, b, c);
      const unsigned out = (((a >> bit) & 1) << 2) | (((b >> bit) & 1) << 1) | ((c >> bit) & 1);
      EXPECT_EQ(out, planetSbox()[v]) << v << " bit " << bit;
      sboxTripletInverse(a, b, c);
      EXPECT_EQ(a >> bit & 1, (v >> 2) & 1);
      EXPECT_EQ(b >> bit & 1, (v >> 1) & 1);
      EXPECT_EQ(c >> bit & 1, v & 1);
    }
  }
}

template <typename Word> void checkVpd(std::size_t n) {
  const auto in = randomWords<Word>(n, static_cast<std::uint32_t>(n * 7 + sizeof(Word)));
  auto w = in;
  vpdForward(w.data(), w.size());
  EXPECT_EQ(w, naiveVpd(in)) << "n=" << n;
  vpdInverse(w.data(), w.size());
  EXPECT_EQ(w, in) << "n=" << n;
}

TEST(ChaosCore, VpdMatchesPaperDefinitionAndInverts) {
  for (std::size_t n : {1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 100, 1001}) {
    checkVpd<std::uint8_t>(n);
    checkVpd<std::uint16_t>(n);
  }
}

TEST(ChaosCore, VpdWorkedExample) {
  // Bits 10101111 11111111 as terms 101 011 111 111 111 1(00):
  // y = 101, 110, 001, 110, 001, and the short last term 1 XOR (first bit of 001) = 1.
  std::vector<std::uint8_t> w = {0b10101111, 0b11111111};
  vpdForward(w.data(), w.size());
  EXPECT_EQ(w[0], 0b10111000);
  EXPECT_EQ(w[1], 0b11100011);
}

std::vector<std::uint32_t> randomKeys(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::uint32_t> k(n);
  for (auto& v : k) v = rng();
  return k;
}

TEST(ChaosCore, GridShuffleIsAPermutationAndInverts) {
  for (BlockGeometry g : {BlockGeometry{1, 1}, BlockGeometry{1, 7}, BlockGeometry{5, 1}, BlockGeometry{13, 17},
                          BlockGeometry{64, 48}}) {
    const auto rowKeys = randomKeys(2 * g.rows, 1), colKeys = randomKeys(g.cols, 2), shiftKeys = randomKeys(g.cols, 3);
    const GridShuffle s = makeGridShuffle(g, rowKeys.data(), colKeys.data(), shiftKeys.data());
    std::vector<std::uint32_t> dest = gridDestinations(s);
    std::vector<std::uint32_t> sorted = dest;
    std::sort(sorted.begin(), sorted.end());
    std::vector<std::uint32_t> identity(g.rows * g.cols);
    std::iota(identity.begin(), identity.end(), 0u);
    EXPECT_EQ(sorted, identity);

    const auto in = randomWords<std::uint16_t>(g.rows * g.cols, 9);
    auto w = in;
    std::vector<std::uint16_t> scratch;
    shuffleForward(w.data(), s, scratch);
    for (std::size_t i = 0; i < in.size(); ++i) ASSERT_EQ(w[dest[i]], in[i]);
    shuffleInverse(w.data(), s, scratch);
    EXPECT_EQ(w, in);
  }
}

TEST(ChaosCore, GridShuffleScattersNeighbours) {
  const BlockGeometry g{256, 256};
  const auto rowKeys = randomKeys(512, 4), colKeys = randomKeys(256, 5), shiftKeys = randomKeys(256, 6);
  const auto dest = gridDestinations(makeGridShuffle(g, rowKeys.data(), colKeys.data(), shiftKeys.data()));
  // Horizontally adjacent sources rarely stay adjacent.
  std::size_t adjacent = 0;
  for (std::size_t r = 0; r < g.rows; ++r)
    for (std::size_t c = 0; c + 1 < g.cols; ++c) {
      const std::size_t a = dest[r * g.cols + c], b = dest[r * g.cols + c + 1];
      adjacent += (a > b ? a - b : b - a) == 1;
    }
  EXPECT_LT(adjacent, 200u);  // of 65280 pairs
}

TEST(ChaosCore, XorIsAnInvolutionUsingAllKeyBits) {
  const auto keys = randomKeys(10, 7);
  std::vector<std::uint16_t> w(19, 0);
  xorStream(w.data(), w.size(), keys);
  EXPECT_EQ(w[0], static_cast<std::uint16_t>(keys[0]));
  EXPECT_EQ(w[1], static_cast<std::uint16_t>(keys[0] >> 16));
  EXPECT_EQ(w[18], static_cast<std::uint16_t>(keys[9]));
  xorStream(w.data(), w.size(), keys);
  EXPECT_EQ(w, std::vector<std::uint16_t>(19, 0));
  std::vector<std::uint8_t> b(5, 0);
  xorStream(b.data(), b.size(), keys);
  EXPECT_EQ(b[3], static_cast<std::uint8_t>(keys[0] >> 24));
  EXPECT_EQ(b[4], static_cast<std::uint8_t>(keys[1]));
}

template <typename Word> void checkPlanet(std::size_t n) {
  const auto in = randomWords<Word>(n, static_cast<std::uint32_t>(n));
  const auto keys = randomKeys(n, 11);
  auto w = in;
  planetForward(w.data(), w.size(), keys);
  planetInverse(w.data(), w.size(), keys);
  EXPECT_EQ(w, in) << n;
}

TEST(ChaosCore, PlanetStepInverts) {
  for (std::size_t n : {1, 2, 3, 4, 5, 6, 100, 101}) {
    checkPlanet<std::uint8_t>(n);
    checkPlanet<std::uint16_t>(n);
  }
}

template <typename Word> void checkBlock(std::size_t n, std::size_t rowSamples) {
  const BlockGeometry grid = blockGeometry(n, rowSamples);
  LaneStreams keys;
  for (std::size_t lane = 0; lane < kLanes; ++lane)
    keys[lane] = randomKeys(laneOutputsNeeded(lane, n, grid, sizeof(Word) * 8), static_cast<std::uint32_t>(lane + 1));
  const auto in = randomWords<Word>(n, 77);
  auto w = in;
  std::vector<Word> scratch;
  encryptBlock(w.data(), n, grid, keys, scratch);
  if (n >= 16) {
    std::size_t same = 0;
    for (std::size_t i = 0; i < n; ++i) same += w[i] == in[i];
    EXPECT_LT(same, n / 8) << n;
  }
  decryptBlock(w.data(), n, grid, keys, scratch);
  EXPECT_EQ(w, in) << "n=" << n << " row=" << rowSamples;
}

TEST(ChaosCore, BlockRoundTrip) {
  for (auto [n, row] : std::vector<std::pair<std::size_t, std::size_t>>{
           {1, 1}, {2, 1}, {3, 5}, {7, 3}, {64, 8}, {1000, 33}, {4096, 64}, {12345, 100}}) {
    checkBlock<std::uint8_t>(n, row);
    checkBlock<std::uint16_t>(n, row);
  }
}

TEST(ChaosCore, PaperWrittenDecryptionOrderDoesNotInvert) {
  // The paper's text undoes VPD right after the planet step; check that this order is really wrong
  // (and therefore that the implemented inverse order matters).
  const std::size_t n = 600;
  const BlockGeometry grid = blockGeometry(n, 20);
  LaneStreams keys;
  for (std::size_t lane = 0; lane < kLanes; ++lane)
    keys[lane] = randomKeys(laneOutputsNeeded(lane, n, grid, 16), static_cast<std::uint32_t>(lane + 40));
  const auto in = randomWords<std::uint16_t>(n, 3);
  auto w = in;
  std::vector<std::uint16_t> scratch;
  encryptBlock(w.data(), n, grid, keys, scratch);
  planetInverse(w.data(), n, keys[kPlanet]);
  vpdInverse(w.data(), n);
  xorStream(w.data(), n, keys[kXor2]);
  EXPECT_NE(w, in);
}

}  // namespace
}  // namespace pacsgw::codecs::chaos
