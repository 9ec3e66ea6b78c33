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

// Samples row-major, each <= sampleBound (e.g. 65535 for 16-bit data).
EncryptedImage encryptImage(const PackedPaillier& he, const std::vector<std::uint16_t>& samples, std::size_t rows,
                            std::size_t columns, std::uint64_t sampleBound);

// Public-key only. The result's slot chunkWidth - 1 holds the region's sample sum.
PackedCiphertext encryptedRegionSum(const PackedPaillier& he, const EncryptedImage& image, const Region& region);

// Decrypts the result of encryptedRegionSum and returns sum / pixels.
double decryptRegionMean(const PaillierPrivateKey& priv, const PackedPaillier& he, const EncryptedImage& image,
                         const PackedCiphertext& regionSum, const Region& region);

// The same mean computed on the plaintext, as the reference.
double plaintextRegionMean(const std::vector<std::uint16_t>& samples, std::size_t columns, const Region& region);

}  // namespace pacsgw::codecs::he
