// Region mean intensity on Paillier-encrypted, slot-packed pixels (see encrypted_region.h).
#include "codecs/he/encrypted_region.h"

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

EncryptedImage encryptImage(const PackedPaillier& he, const std::vector<std::uint16_t>& samples, std::size_t rows,
                            std::size_t columns, std::uint64_t sampleBound) {
  if (rows == 0 || columns == 0 || samples.size() != rows * columns)
    throw HeError("paillier: image size does not match its samples");
  EncryptedImage img;
  img.rows = rows;
  img.columns = columns;
  img.chunkWidth = chunkWidthFor(he.packing());
  if (img.chunkWidth == 0) throw HeError("paillier: no slots");
  img.chunksPerRow = (columns + img.chunkWidth - 1) / img.chunkWidth;
  img.chunks.reserve(rows * img.chunksPerRow);
  std::vector<std::uint64_t> values;
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t j = 0; j < img.chunksPerRow; ++j) {
      const std::size_t first = j * img.chunkWidth, last = std::min(columns, first + img.chunkWidth);
      values.assign(samples.begin() + r * columns + first, samples.begin() + r * columns + last);
      img.chunks.push_back(he.encrypt(values, sampleBound));
    }
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

}  // namespace pacsgw::codecs::he
