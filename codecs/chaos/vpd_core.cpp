#include "codecs/chaos/vpd_core.h"

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace pacsgw::codecs::chaos {
namespace {

// VPD works on 48-bit registers: 16 whole symbols, 3 words of 16 bits or 6 of 8 bits.
constexpr unsigned kRegisterBits = 48;
constexpr std::uint64_t kRegisterMask = (std::uint64_t{1} << kRegisterBits) - 1;
constexpr std::uint64_t kSymbolOnes = 0x249249249249ULL;  // 001 in each of the 16 symbol lanes

template <typename Word> constexpr unsigned bitsOf() { return sizeof(Word) * 8; }

template <typename Word> std::uint64_t load(const Word* w, std::size_t count) {
  std::uint64_t x = 0;
  for (std::size_t i = 0; i < count; ++i) x = (x << bitsOf<Word>()) | w[i];
  return x;
}

template <typename Word> void store(Word* w, std::size_t count, std::uint64_t x) {
  for (std::size_t i = count; i-- > 0;) {
    w[i] = static_cast<Word>(x);
    x >>= bitsOf<Word>();
  }
}

// Prefix XOR across the symbol lanes of a register, most significant symbol first (Kogge-Stone).
// The carry from the previous register is XORed into every lane afterwards.
inline std::uint64_t prefixXor(std::uint64_t x) {
  x ^= x >> 3;
  x ^= x >> 6;
  x ^= x >> 12;
  return x ^ (x >> 24);
}

inline std::uint64_t prefixXorInverse(std::uint64_t y, std::uint64_t carry) {
  return (y ^ ((y >> 3) | (carry << (kRegisterBits - 3)))) & kRegisterMask;
}

// Planet S-box in algebraic normal form (a is the most significant bit of the triplet); the tests check
// these formulas against planetSbox() for every input.
template <typename Word> inline void sboxWords(Word& a, Word& b, Word& c) {
  const Word ab = a & b, ac = a & c, bc = b & c;
  const Word na = static_cast<Word>(~(c ^ ac ^ ab));
  const Word nb = static_cast<Word>(~(b ^ a ^ ac ^ ab));
  const Word nc = static_cast<Word>(~(c ^ bc ^ a ^ ac));
  a = na;
  b = nb;
  c = nc;
}

template <typename Word> inline void sboxWordsInverse(Word& a, Word& b, Word& c) {
  const Word ab = a & b, ac = a & c, bc = b & c;
  const Word na = static_cast<Word>(~(c ^ b ^ ab));
  const Word nb = static_cast<Word>(~(b ^ bc ^ a ^ ac ^ ab));
  const Word nc = static_cast<Word>(c ^ b ^ bc ^ ac);
  a = na;
  b = nb;
  c = nc;
}

inline std::size_t ceilDiv(std::size_t a, std::size_t b) { return (a + b - 1) / b; }

}  // namespace

const std::array<std::uint8_t, 8>& planetSbox() {
  static const std::array<std::uint8_t, 8> table = [] {
    // Distance from the Sun, nearest first; rank r gets the Table 2 code of the r-th planet.
    constexpr Planet byDistance[8] = {Planet::Me, Planet::Ve, Planet::Ea, Planet::Ma,
                                      Planet::Ju, Planet::Sa, Planet::Ur, Planet::Ne};
    std::array<std::uint8_t, 8> t{};
    for (std::size_t r = 0; r < 8; ++r) t[r] = static_cast<std::uint8_t>(byDistance[r]);
    return t;
  }();
  return table;
}

const std::array<std::uint8_t, 8>& planetSboxInverse() {
  static const std::array<std::uint8_t, 8> table = [] {
    std::array<std::uint8_t, 8> t{};
    for (std::uint8_t v = 0; v < 8; ++v) t[planetSbox()[v]] = v;
    return t;
  }();
  return table;
}

template <typename Word> void vpdForward(Word* w, std::size_t n) {
  constexpr std::size_t per = kRegisterBits / bitsOf<Word>();
  std::uint64_t carry = 0;
  std::size_t i = 0;
  for (; i + per <= n; i += per) {
    const std::uint64_t p = prefixXor(load(w + i, per));
    store(w + i, per, p ^ (carry * kSymbolOnes));
    carry ^= p & 7;  // the last symbol: its own prefix XOR the incoming carry (keeps the multiply off the chain)
  }
  if (i < n) {  // tail: left-align in the register, zero-padded
    const unsigned bits = static_cast<unsigned>(n - i) * bitsOf<Word>();
    const std::uint64_t y = (prefixXor(load(w + i, n - i) << (kRegisterBits - bits)) ^ (carry * kSymbolOnes)) &
                            kRegisterMask;
    store(w + i, n - i, y >> (kRegisterBits - bits));
  }
}

template <typename Word> void vpdInverse(Word* w, std::size_t n) {
  constexpr std::size_t per = kRegisterBits / bitsOf<Word>();
  std::uint64_t carry = 0;
  std::size_t i = 0;
  for (; i + per <= n; i += per) {
    const std::uint64_t y = load(w + i, per);
    store(w + i, per, prefixXorInverse(y, carry));
    carry = y & 7;
  }
  if (i < n) {
    const unsigned bits = static_cast<unsigned>(n - i) * bitsOf<Word>();
    const std::uint64_t y = load(w + i, n - i) << (kRegisterBits - bits);
    store(w + i, n - i, prefixXorInverse(y, carry) >> (kRegisterBits - bits));
  }
}

BlockGeometry blockGeometry(std::size_t n, std::size_t samplesPerRow) {
  BlockGeometry g;
  if (samplesPerRow == 0 || samplesPerRow > n) return g;  // too small to shuffle
  g.cols = samplesPerRow;
  g.rows = n / samplesPerRow;
  return g;
}

namespace {

inline std::uint32_t draw(std::uint32_t r, std::size_t bound) {
  return static_cast<std::uint32_t>((static_cast<std::uint64_t>(r) * bound) >> 32);
}

std::vector<std::uint32_t> fisherYates(std::size_t size, const std::uint32_t* keys) {
  std::vector<std::uint32_t> p(size);
  for (std::size_t i = 0; i < size; ++i) p[i] = static_cast<std::uint32_t>(i);
  for (std::size_t i = size; i-- > 1;) std::swap(p[i], p[draw(keys[size - 1 - i], i + 1)]);
  return p;
}

}  // namespace

GridShuffle makeGridShuffle(BlockGeometry grid, const std::uint32_t* rowKeys, const std::uint32_t* colKeys,
                            const std::uint32_t* shiftKeys) {
  if (grid.rows > UINT32_MAX || grid.cols > UINT32_MAX) throw std::invalid_argument("grid too large");
  GridShuffle s;
  s.grid = grid;
  if (grid.rows == 0 || grid.cols == 0) return s;
  s.rowPerm = fisherYates(grid.rows, rowKeys);
  s.colPerm = fisherYates(grid.cols, colKeys);
  s.rowShift.resize(grid.rows);
  for (std::size_t r = 0; r < grid.rows; ++r) s.rowShift[r] = draw(rowKeys[grid.rows + r], grid.cols);
  s.colShift.resize(grid.cols);
  for (std::size_t c = 0; c < grid.cols; ++c) s.colShift[c] = draw(shiftKeys[c], grid.rows);
  return s;
}

namespace {

// Calls f(source index, destination index) for every grid cell, source in order.
template <typename F> inline void forEachMove(const GridShuffle& s, F&& f) {
  const std::size_t rows = s.grid.rows, cols = s.grid.cols;
  for (std::size_t r = 0; r < rows; ++r) {
    const std::size_t r1 = s.rowPerm[r];
    const std::size_t shift = s.rowShift[r1];
    const std::size_t src = r * cols;
    for (std::size_t c = 0; c < cols; ++c) {
      std::size_t c1 = s.colPerm[c] + shift;
      if (c1 >= cols) c1 -= cols;
      std::size_t r2 = r1 + s.colShift[c1];
      if (r2 >= rows) r2 -= rows;
      f(src + c, r2 * cols + c1);
    }
  }
}

}  // namespace

std::vector<std::uint32_t> gridDestinations(const GridShuffle& s) {
  std::vector<std::uint32_t> d(s.grid.rows * s.grid.cols);
  forEachMove(s, [&](std::size_t from, std::size_t to) { d[from] = static_cast<std::uint32_t>(to); });
  return d;
}

// Both directions run in two cache-friendly passes without data-dependent branches: rows (each row moves
// to P[r] and is gathered through Q^-1 rotated by its shift, inside one row) and columns (every column
// rotated by its shift, walking all rows in order).
namespace {

// dst[(Q[c] + shift) mod cols] = src[c], written as two branch-free gathers through Q^-1.
template <typename Word>
inline void permuteRow(const Word* src, Word* dst, const std::uint32_t* qinv, std::size_t cols, std::size_t shift) {
  for (std::size_t t = shift; t < cols; ++t) dst[t] = src[qinv[t - shift]];
  for (std::size_t t = 0; t < shift; ++t) dst[t] = src[qinv[t + cols - shift]];
}

// dst[c] = src[(c + shift) mod cols] ... inverse of permuteRow: dst[c] = src[(Q[c] + shift) mod cols].
template <typename Word>
inline void unpermuteRow(const Word* src, Word* dst, const std::uint32_t* q, std::size_t cols, std::size_t shift) {
  for (std::size_t c = 0; c < cols; ++c) {
    const std::size_t t = q[c] + shift;
    dst[c] = src[t - (t >= cols ? cols : 0)];
  }
}

std::vector<std::uint32_t> inversePermutation(const std::vector<std::uint32_t>& p) {
  std::vector<std::uint32_t> inv(p.size());
  for (std::size_t i = 0; i < p.size(); ++i) inv[p[i]] = static_cast<std::uint32_t>(i);
  return inv;
}

}  // namespace

template <typename Word> void shuffleForward(Word* w, const GridShuffle& s, std::vector<Word>& scratch) {
  const std::size_t rows = s.grid.rows, cols = s.grid.cols;
  if (rows * cols < 2) return;
  scratch.resize(rows * cols);
  Word* tmp = scratch.data();
  const std::vector<std::uint32_t> qinv = inversePermutation(s.colPerm);
  for (std::size_t r = 0; r < rows; ++r) {
    const std::size_t r1 = s.rowPerm[r];
    permuteRow(w + r * cols, tmp + r1 * cols, qinv.data(), cols, s.rowShift[r1]);
  }
  // Column c moves down by colShift[c]: destination row r2 takes source row r2 - colShift[c] (mod rows).
  for (std::size_t r2 = 0; r2 < rows; ++r2) {
    Word* dst = w + r2 * cols;
    for (std::size_t c = 0; c < cols; ++c) {
      const std::size_t back = rows - s.colShift[c];  // in 1..rows
      const std::size_t r = r2 + back;
      dst[c] = tmp[(r - (r >= rows ? rows : 0)) * cols + c];
    }
  }
}

template <typename Word> void shuffleInverse(Word* w, const GridShuffle& s, std::vector<Word>& scratch) {
  const std::size_t rows = s.grid.rows, cols = s.grid.cols;
  if (rows * cols < 2) return;
  scratch.resize(rows * cols);
  Word* tmp = scratch.data();
  for (std::size_t r = 0; r < rows; ++r) {
    Word* dst = tmp + r * cols;
    for (std::size_t c = 0; c < cols; ++c) {
      const std::size_t r2 = r + s.colShift[c];
      dst[c] = w[(r2 - (r2 >= rows ? rows : 0)) * cols + c];
    }
  }
  for (std::size_t r = 0; r < rows; ++r) {
    const std::size_t r1 = s.rowPerm[r];
    unpermuteRow(tmp + r1 * cols, w + r * cols, s.colPerm.data(), cols, s.rowShift[r1]);
  }
}

template <typename Word> void xorStream(Word* w, std::size_t n, const std::vector<std::uint32_t>& key) {
  constexpr std::size_t per = 32 / bitsOf<Word>();
  std::size_t i = 0;
  std::size_t k = 0;
  for (; i + per <= n; i += per, ++k) {
    std::uint32_t r = key[k];
    for (std::size_t s = 0; s < per; ++s, r >>= bitsOf<Word>()) w[i + s] ^= static_cast<Word>(r);
  }
  for (std::uint32_t r = i < n ? key[k] : 0; i < n; ++i, r >>= bitsOf<Word>()) w[i] ^= static_cast<Word>(r);
}

template <typename Word> void sboxTriplet(Word& a, Word& b, Word& c) { sboxWords(a, b, c); }
template <typename Word> void sboxTripletInverse(Word& a, Word& b, Word& c) { sboxWordsInverse(a, b, c); }

template <typename Word> void planetForward(Word* w, std::size_t n, const std::vector<std::uint32_t>& key) {
  const std::size_t groups = n / 3;
  for (std::size_t g = 0; g < groups; ++g) sboxWords(w[3 * g], w[3 * g + 1], w[3 * g + 2]);
  if (n % 3 != 0 && n >= 3) sboxWords(w[n - 3], w[n - 2], w[n - 1]);
  xorStream(w, n, key);
}

template <typename Word> void planetInverse(Word* w, std::size_t n, const std::vector<std::uint32_t>& key) {
  xorStream(w, n, key);
  if (n % 3 != 0 && n >= 3) sboxWordsInverse(w[n - 3], w[n - 2], w[n - 1]);
  const std::size_t groups = n / 3;
  for (std::size_t g = 0; g < groups; ++g) sboxWordsInverse(w[3 * g], w[3 * g + 1], w[3 * g + 2]);
}

std::size_t laneOutputsNeeded(std::size_t lane, std::size_t n, BlockGeometry grid, unsigned wordBits) {
  if (wordBits != 8 && wordBits != 16) throw std::invalid_argument("laneOutputsNeeded: word size must be 8 or 16");
  switch (lane) {
    case kShuffle1Rows:
    case kShuffle2Rows:
      return 2 * grid.rows;
    case kShuffle1Cols:
    case kShuffle1Shifts:
      return grid.cols;
    case kShuffle2Cols:
      return 2 * grid.cols;
    case kXor1:
    case kXor2:
    case kPlanet:
      return ceilDiv(n, 32 / wordBits);
    default:
      throw std::invalid_argument("laneOutputsNeeded: no such lane");
  }
}

template <typename Word>
void encryptBlock(Word* w, std::size_t n, BlockGeometry grid, const LaneStreams& keys, std::vector<Word>& scratch) {
  const GridShuffle s1 = makeGridShuffle(grid, keys[kShuffle1Rows].data(), keys[kShuffle1Cols].data(),
                                         keys[kShuffle1Shifts].data());
  const GridShuffle s2 = makeGridShuffle(grid, keys[kShuffle2Rows].data(), keys[kShuffle2Cols].data(),
                                         keys[kShuffle2Cols].data() + grid.cols);
  vpdForward(w, n);
  shuffleForward(w, s1, scratch);
  xorStream(w, n, keys[kXor1]);
  vpdForward(w, n);
  shuffleForward(w, s2, scratch);
  xorStream(w, n, keys[kXor2]);
  planetForward(w, n, keys[kPlanet]);
}

template <typename Word>
void decryptBlock(Word* w, std::size_t n, BlockGeometry grid, const LaneStreams& keys, std::vector<Word>& scratch) {
  const GridShuffle s1 = makeGridShuffle(grid, keys[kShuffle1Rows].data(), keys[kShuffle1Cols].data(),
                                         keys[kShuffle1Shifts].data());
  const GridShuffle s2 = makeGridShuffle(grid, keys[kShuffle2Rows].data(), keys[kShuffle2Cols].data(),
                                         keys[kShuffle2Cols].data() + grid.cols);
  planetInverse(w, n, keys[kPlanet]);
  xorStream(w, n, keys[kXor2]);
  shuffleInverse(w, s2, scratch);
  vpdInverse(w, n);
  xorStream(w, n, keys[kXor1]);
  shuffleInverse(w, s1, scratch);
  vpdInverse(w, n);
}

#define PACSGW_CHAOS_INSTANTIATE(Word)                                                                         \
  template void vpdForward<Word>(Word*, std::size_t);                                                        \
  template void vpdInverse<Word>(Word*, std::size_t);                                                        \
  template void shuffleForward<Word>(Word*, const GridShuffle&, std::vector<Word>&);                         \
  template void shuffleInverse<Word>(Word*, const GridShuffle&, std::vector<Word>&);                         \
  template void xorStream<Word>(Word*, std::size_t, const std::vector<std::uint32_t>&);                      \
  template void planetForward<Word>(Word*, std::size_t, const std::vector<std::uint32_t>&);                  \
  template void planetInverse<Word>(Word*, std::size_t, const std::vector<std::uint32_t>&);                  \
  template void sboxTriplet<Word>(Word&, Word&, Word&);                                                      \
  template void sboxTripletInverse<Word>(Word&, Word&, Word&);                                               \
  template void encryptBlock<Word>(Word*, std::size_t, BlockGeometry, const LaneStreams&, std::vector<Word>&); \
  template void decryptBlock<Word>(Word*, std::size_t, BlockGeometry, const LaneStreams&, std::vector<Word>&);

PACSGW_CHAOS_INSTANTIATE(std::uint8_t)
PACSGW_CHAOS_INSTANTIATE(std::uint16_t)
#undef PACSGW_CHAOS_INSTANTIATE

}  // namespace pacsgw::codecs::chaos
