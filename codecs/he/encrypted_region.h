#pragma once
// One useful computation on encrypted pixels: the mean intensity of a rectangular region, evaluated
// with the public key only. The party holding the private key learns the region's sum and nothing
// else about the pixels (every other slot of the result is blinded with fresh random values).
//
// Layout: each image row is cut into chunks of k = ceil(slots / 2) samples, sample i of a chunk in slot
// i; the upper slots stay empty. To sum the region's columns within a chunk without decrypting, the
// chunk's ciphertext is raised to the public mask M = sum of B^(k-1-i) over the region's columns i:
// plaintext multiplication by M is a polynomial product in B, whose coefficient k-1 is exactly the sum
// of the selected samples, and whose degree 2k-2 still fits the slots (no wrap modulo n). Rows are
// first added slot by slot (one multiplication each), so the region costs one exponentiation per chunk
// column, not per pixel.
#include "codecs/he/slot_packing.h"

#include <cstdint>
#include <vector>

namespace pacsgw::codecs::he {

struct EncryptedImage {
  std::size_t rows = 0;
  std::size_t columns = 0;
  std::size_t chunkWidth = 0;      // samples per ciphertext (k)
  std::size_t chunksPerRow = 0;
  std::vector<PackedCiphertext> chunks;  // row-major: row r, chunk j at r * chunksPerRow + j
};

struct Region {
  std::size_t row = 0, column = 0, rows = 0, columns = 0;
  std::size_t pixels() const { return rows * columns; }
};

// Samples row-major, each <= sampleBound (e.g. 65535 for 16-bit data). Public-key encryption.
EncryptedImage encryptImage(const PackedPaillier& he, const std::vector<std::uint16_t>& samples, std::size_t rows,
                            std::size_t columns, std::uint64_t sampleBound);
// The same layout for any non-negative values, encrypted by the key holder (fast CRT encryption) on
// `threads` threads (0: all hardware threads).
EncryptedImage encryptGrid(const PaillierPrivateKey& key, const PackedPaillier& he,
                           const std::vector<std::uint64_t>& values, std::size_t rows, std::size_t columns,
                           std::uint64_t bound, unsigned threads = 0);

// The exact block feature of an image: the sum of the stored sample values of each block x block tile
// (tiles at the right and bottom edges may be smaller), each sample first shifted by `offset` so that
// signed data becomes non-negative (32768 for signed 16-bit, 0 for unsigned). A region mean over whole
// tiles, computed on the encrypted grid, is then exactly the mean of the original samples.
struct BlockGrid {
  std::size_t imageRows = 0, imageColumns = 0, block = 0;
  std::size_t rows = 0, columns = 0;  // tiles
  std::int64_t offset = 0;
  std::vector<std::uint64_t> sums;    // row-major tiles
  std::uint64_t bound() const;        // public bound of one tile sum: block^2 * (max sample + offset)
  std::uint64_t maxSample = 0;        // largest sample + offset the layout allows (e.g. 65535)
  std::size_t pixels(const Region& tiles) const;  // image pixels covered by a region given in tiles
};
BlockGrid blockSums(const std::vector<std::int32_t>& samples, std::size_t rows, std::size_t columns,
                    std::size_t block, std::int64_t offset, std::uint64_t maxSample);
// Mean sample value (in the stored units, offset removed) of a region given in tiles, from the
// decrypted encrypted-region sum.
double decryptBlockRegionMean(const PaillierPrivateKey& priv, const PackedPaillier& he, const EncryptedImage& image,
                              const BlockGrid& layout, const PackedCiphertext& regionSum, const Region& tiles);
// The reference: the same mean computed on the original samples.
double plaintextBlockRegionMean(const std::vector<std::int32_t>& samples, const BlockGrid& layout, const Region& tiles);

// Public-key only. The result's slot chunkWidth - 1 holds the region's sample sum.
PackedCiphertext encryptedRegionSum(const PackedPaillier& he, const EncryptedImage& image, const Region& region);

// Decrypts the result of encryptedRegionSum and returns sum / pixels.
double decryptRegionMean(const PaillierPrivateKey& priv, const PackedPaillier& he, const EncryptedImage& image,
                         const PackedCiphertext& regionSum, const Region& region);

// The same mean computed on the plaintext, as the reference.
double plaintextRegionMean(const std::vector<std::uint16_t>& samples, std::size_t columns, const Region& region);

}  // namespace pacsgw::codecs::he
