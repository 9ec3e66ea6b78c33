// Region mean intensity on Paillier-encrypted, slot-packed pixels (see encrypted_region.h).
#include "codecs/he/encrypted_region.h"

#include "codecs/he/batch.h"

#include <openssl/rand.h>

#include <algorithm>

namespace pacsgw::codecs::he {
namespace {

std::size_t chunkWidthFor(const SlotPacking& packing) { return (packing.slots() + 1) / 2; }

std::uint64_t randomBelowOrEqual(std::uint64_t max) {
  if (max == 0) return 0;
  // Rejection sampling on the smallest power of two above max: uniform, no modulo bias.
  std::uint64_t mask = max;
  for (int s = 1; s < 64; s <<= 1) mask |= mask >> s;
  for (;;) {
    std::uint64_t v = 0;
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&v), sizeof v) != 1) throw HeError("paillier: RAND_bytes failed");
    v &= mask;
    if (v <= max) return v;
  }
}

}  // namespace

// The layout of encryptImage / encryptGrid and the packed plaintexts in chunk order.
template <typename T>
EncryptedImage layOut(const PackedPaillier& he, const std::vector<T>& samples, std::size_t rows, std::size_t columns,
                      std::uint64_t bound, std::vector<BigNum>& plaintexts) {
  if (rows == 0 || columns == 0 || samples.size() != rows * columns)
    throw HeError("paillier: image size does not match its samples");
  if (bound > he.packing().slotLimit()) throw HeError("paillier: the value bound exceeds the slot width");
  EncryptedImage img;
  img.rows = rows;
  img.columns = columns;
  img.chunkWidth = chunkWidthFor(he.packing());
  if (img.chunkWidth == 0) throw HeError("paillier: no slots");
  img.chunksPerRow = (columns + img.chunkWidth - 1) / img.chunkWidth;
  std::vector<std::uint64_t> values;
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t j = 0; j < img.chunksPerRow; ++j) {
      const std::size_t first = j * img.chunkWidth, last = std::min(columns, first + img.chunkWidth);
      values.assign(samples.begin() + r * columns + first, samples.begin() + r * columns + last);
      for (std::uint64_t v : values)
        if (v > bound) throw HeError("paillier: a value exceeds its declared bound");
      plaintexts.push_back(he.packing().pack(values));
    }
  return img;
}

EncryptedImage encryptImage(const PackedPaillier& he, const std::vector<std::uint16_t>& samples, std::size_t rows,
                            std::size_t columns, std::uint64_t sampleBound) {
  std::vector<BigNum> plaintexts;
  EncryptedImage img = layOut(he, samples, rows, columns, sampleBound, plaintexts);
  img.chunks.reserve(plaintexts.size());
  for (const BigNum& m : plaintexts) img.chunks.push_back(PackedCiphertext{he.key().encrypt(m), sampleBound});
  return img;
}

EncryptedImage encryptGrid(const PaillierPrivateKey& key, const PackedPaillier& he,
                           const std::vector<std::uint64_t>& values, std::size_t rows, std::size_t columns,
                           std::uint64_t bound, unsigned threads) {
  if (key.publicKey().n() != he.key().n()) throw HeError("paillier: the private key does not match");
  std::vector<BigNum> plaintexts;
  EncryptedImage img = layOut(he, values, rows, columns, bound, plaintexts);
  std::vector<BigNum> ciphertexts = encryptAll(key, plaintexts, threads);
  img.chunks.reserve(ciphertexts.size());
  for (BigNum& c : ciphertexts) img.chunks.push_back(PackedCiphertext{std::move(c), bound});
  return img;
}

PackedCiphertext encryptedRegionSum(const PackedPaillier& he, const EncryptedImage& image, const Region& region) {
  if (region.rows == 0 || region.columns == 0 || region.row + region.rows > image.rows ||
      region.column + region.columns > image.columns)
    throw HeError("paillier: the region lies outside the image");
  const SlotPacking& packing = he.packing();
  const std::size_t k = image.chunkWidth;
  const std::uint64_t limit = packing.slotLimit();
  const std::size_t firstChunk = region.column / k, lastChunk = (region.column + region.columns - 1) / k;

  bool haveTotal = false;
  PackedCiphertext total;
  for (std::size_t j = firstChunk; j <= lastChunk; ++j) {
    // 1. Add the region's rows slot by slot.
    PackedCiphertext columnSums = image.chunks[region.row * image.chunksPerRow + j];
    for (std::size_t r = region.row + 1; r < region.row + region.rows; ++r)
      columnSums = he.add(columnSums, image.chunks[r * image.chunksPerRow + j]);
    // 2. Multiply by the mask selecting this chunk's region columns into slot k - 1.
    const std::size_t from = std::max(region.column, j * k) - j * k;
    const std::size_t to = std::min(region.column + region.columns, (j + 1) * k) - j * k;  // exclusive
    BigNum mask;
    for (std::size_t i = from; i < to; ++i) bnCheck(BN_set_bit(mask.get(), static_cast<int>((k - 1 - i) * packing.slotBits())), "BN_set_bit");
    // Each product coefficient sums at most (to - from) slot values.
    const std::uint64_t bound = checkedSlotProduct(columnSums.slotBound, to - from, limit);
    PackedCiphertext selected{he.key().multiplyPlain(columnSums.c, mask), bound};
    if (!haveTotal) {
      total = std::move(selected);
      haveTotal = true;
    } else {
      total = he.add(total, selected);
    }
  }

  // 3. Blind every slot but k - 1 with fresh random values (within the headroom left by the bound), and
  //    re-randomise the ciphertext by adding a fresh encryption.
  const std::uint64_t headroom = limit - total.slotBound;
  std::vector<std::uint64_t> blinding(packing.slots());
  for (std::size_t i = 0; i < blinding.size(); ++i) blinding[i] = i == k - 1 ? 0 : randomBelowOrEqual(headroom);
  PackedCiphertext blind{he.key().encrypt(packing.pack(blinding)), headroom};
  return he.add(total, blind);
}

double decryptRegionMean(const PaillierPrivateKey& priv, const PackedPaillier& he, const EncryptedImage& image,
                         const PackedCiphertext& regionSum, const Region& region) {
  const auto slots = he.decrypt(priv, regionSum, image.chunkWidth);
  return static_cast<double>(slots[image.chunkWidth - 1]) / static_cast<double>(region.pixels());
}

double plaintextRegionMean(const std::vector<std::uint16_t>& samples, std::size_t columns, const Region& region) {
  std::uint64_t sum = 0;
  for (std::size_t r = region.row; r < region.row + region.rows; ++r)
    for (std::size_t c = region.column; c < region.column + region.columns; ++c) sum += samples[r * columns + c];
  return static_cast<double>(sum) / static_cast<double>(region.pixels());
}

// ---- block grid -----------------------------------------------------------------------------------

std::uint64_t BlockGrid::bound() const { return static_cast<std::uint64_t>(block) * block * maxSample; }

std::size_t BlockGrid::pixels(const Region& tiles) const {
  std::size_t total = 0;
  for (std::size_t r = tiles.row; r < tiles.row + tiles.rows; ++r)
    for (std::size_t c = tiles.column; c < tiles.column + tiles.columns; ++c)
      total += std::min(block, imageRows - r * block) * std::min(block, imageColumns - c * block);
  return total;
}

BlockGrid blockSums(const std::vector<std::int32_t>& samples, std::size_t rows, std::size_t columns,
                    std::size_t block, std::int64_t offset, std::uint64_t maxSample) {
  if (rows == 0 || columns == 0 || samples.size() != rows * columns)
    throw HeError("paillier: image size does not match its samples");
  if (block == 0 || block > 4096) throw HeError("paillier: block size must be 1..4096");
  if (maxSample > (std::uint64_t{1} << 32)) throw HeError("paillier: samples wider than 32 bits");
  BlockGrid g;
  g.imageRows = rows;
  g.imageColumns = columns;
  g.block = block;
  g.rows = (rows + block - 1) / block;
  g.columns = (columns + block - 1) / block;
  g.offset = offset;
  g.maxSample = maxSample;
  g.sums.assign(g.rows * g.columns, 0);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < columns; ++c) {
      const std::int64_t v = static_cast<std::int64_t>(samples[r * columns + c]) + offset;
      if (v < 0 || static_cast<std::uint64_t>(v) > maxSample) throw HeError("paillier: a sample lies outside the declared range");
      g.sums[(r / block) * g.columns + c / block] += static_cast<std::uint64_t>(v);
    }
  return g;
}

double decryptBlockRegionMean(const PaillierPrivateKey& priv, const PackedPaillier& he, const EncryptedImage& image,
                              const BlockGrid& layout, const PackedCiphertext& regionSum, const Region& tiles) {
  const auto slots = he.decrypt(priv, regionSum, image.chunkWidth);
  const std::size_t pixels = layout.pixels(tiles);
  // Remove the offset in integers, so the result is the plaintext mean to the last bit.
  const std::int64_t sum = static_cast<std::int64_t>(slots[image.chunkWidth - 1]) -
                           layout.offset * static_cast<std::int64_t>(pixels);
  return static_cast<double>(sum) / static_cast<double>(pixels);
}

double plaintextBlockRegionMean(const std::vector<std::int32_t>& samples, const BlockGrid& layout, const Region& tiles) {
  std::int64_t sum = 0;
  std::size_t pixels = 0;
  const std::size_t r0 = tiles.row * layout.block, c0 = tiles.column * layout.block;
  const std::size_t r1 = std::min(layout.imageRows, (tiles.row + tiles.rows) * layout.block);
  const std::size_t c1 = std::min(layout.imageColumns, (tiles.column + tiles.columns) * layout.block);
  for (std::size_t r = r0; r < r1; ++r)
    for (std::size_t c = c0; c < c1; ++c, ++pixels) sum += samples[r * layout.imageColumns + c];
  return static_cast<double>(sum) / static_cast<double>(pixels);
}

}  // namespace pacsgw::codecs::he
