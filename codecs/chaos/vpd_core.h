#pragma once
// The paper's pixel transformations (VPD chained XOR, 3-D pixel intershuffling, zigzag XOR, planet
// S-box with key), generalised from 8-bit RGB planes to a run of 8- or 16-bit samples, with their
// exact inverses. Pure integer code: no floating point, no LibTorch.
//
// A "block" is a run of n samples (words). Its bitstream is every word most significant bit first, in
// storage order; VPD cuts that stream into 3-bit symbols ("planets"). For the shuffle the block is seen
// as a grid of `rows` x `cols` samples (cols = samples per image row; rows = image rows of all frames in
// the block) plus a tail of fewer than `cols` samples that the shuffle leaves in place.
#include "codecs/chaos/chaos_map.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace pacsgw::codecs::chaos {

using LaneStreams = std::array<std::vector<std::uint32_t>, kLanes>;

// Which key stream feeds which step (the paper's K1..K8; its assignment was lost, this one follows the
// text's hints: three keys for the 3-D shuffle, two for the second shuffle, one per XOR, one for planets).
enum Lane : std::size_t {
  kShuffle1Rows = 0,     // K1: row permutation and row shifts
  kShuffle1Cols = 1,     // K2: column permutation
  kShuffle1Shifts = 2,   // K3: column shifts
  kXor1 = 3,             // K4
  kShuffle2Rows = 4,     // K5: row permutation and row shifts
  kShuffle2Cols = 5,     // K6: column permutation, then column shifts
  kXor2 = 6,             // K7
  kPlanet = 7,           // K8
};

// Table 2 of the paper: planet -> 3-bit code; Table 3 (Rule-37241) is exactly XOR of these codes.
enum class Planet : std::uint8_t { Ur = 0, Ma = 1, Ve = 2, Ne = 3, Ju = 4, Ea = 5, Sa = 6, Me = 7 };

// The planet S-box: rank by distance from the Sun (Mercury 000 ... Neptune 111) mapped to the planet's
// Table 2 code. The heliocentric order never changes, so this is a constant public permutation.
const std::array<std::uint8_t, 8>& planetSbox();
const std::array<std::uint8_t, 8>& planetSboxInverse();

struct BlockGeometry {
  std::size_t rows = 0;
  std::size_t cols = 0;
};
// Grid of a block of n samples whose image rows hold `samplesPerRow` samples each.
BlockGeometry blockGeometry(std::size_t n, std::size_t samplesPerRow);

// Step 1, VPD: y1 = x1, yi = xi XOR y(i-1) over the 3-bit symbols of the block's bitstream. A final
// partial symbol (bit count not a multiple of 3) is treated as if zero-padded and keeps its real bits.
template <typename Word> void vpdForward(Word* w, std::size_t n);
template <typename Word> void vpdInverse(Word* w, std::size_t n);

// Step 2, keyed 3-D intershuffle (the paper's index formula is lost). A bijection of the grid built from
// key-stream draws: source (r, c) goes to row P[r], column (Q[c] + s[P[r]]) mod cols, and then that
// column is rotated down by t[column]. P, Q are Fisher-Yates permutations; draws map a 32-bit output r
// to floor(r * m / 2^32) in [0, m).
struct GridShuffle {
  BlockGeometry grid;
  std::vector<std::uint32_t> rowPerm, rowShift, colPerm, colShift;
};
// rowKeys: 2*rows outputs (permutation draws, then row shifts); colKeys: cols outputs (permutation
// draws); shiftKeys: cols outputs (column shifts).
GridShuffle makeGridShuffle(BlockGeometry grid, const std::uint32_t* rowKeys, const std::uint32_t* colKeys,
                            const std::uint32_t* shiftKeys);
// Destination of every source index of the grid (a permutation of 0 .. rows*cols-1).
std::vector<std::uint32_t> gridDestinations(const GridShuffle& s);
template <typename Word> void shuffleForward(Word* w, const GridShuffle& s, std::vector<Word>& scratch);
template <typename Word> void shuffleInverse(Word* w, const GridShuffle& s, std::vector<Word>& scratch);

// Step 3, zigzag XOR: every word XORed with the next bits of the key stream (an involution).
template <typename Word> void xorStream(Word* w, std::size_t n, const std::vector<std::uint32_t>& key);

// Step 5, planet with key: for each group of three words (a, b, c) and each bit position, the triplet
// (a_b, b_b, c_b) goes through the planet S-box; then every word is XORed with the key stream. When n is
// not a multiple of 3, the last three words are substituted once more (still a bijection).
template <typename Word> void planetForward(Word* w, std::size_t n, const std::vector<std::uint32_t>& key);
template <typename Word> void planetInverse(Word* w, std::size_t n, const std::vector<std::uint32_t>& key);

// Bit-sliced S-box on three words; exposed for tests.
template <typename Word> void sboxTriplet(Word& a, Word& b, Word& c);
template <typename Word> void sboxTripletInverse(Word& a, Word& b, Word& c);

// Outputs key stream `lane` must provide for a block of n words of `wordBits` bits.
std::size_t laneOutputsNeeded(std::size_t lane, std::size_t n, BlockGeometry grid, unsigned wordBits);

// The whole pipeline of one block:
//   VPD -> shuffle(K1,K2,K3) -> XOR(K4) -> VPD -> shuffle(K5,K6) -> XOR(K7) -> planet S-box + XOR(K8)
// and its inverse, applied in exactly the reverse order (the paper's written decryption order does not
// invert the encryption; see docs/ciphers.md).
template <typename Word>
void encryptBlock(Word* w, std::size_t n, BlockGeometry grid, const LaneStreams& keys, std::vector<Word>& scratch);
template <typename Word>
void decryptBlock(Word* w, std::size_t n, BlockGeometry grid, const LaneStreams& keys, std::vector<Word>& scratch);

}  // namespace pacsgw::codecs::chaos
