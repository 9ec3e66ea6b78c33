#pragma once
// The backend payload of ae-he: what the PACS stores besides the cipher image, all of it public except
// through the Paillier key. No LibTorch, no DICOM here (a PACS-side service reads it with this file and
// codecs/he/ only).
//
// Layout (big-endian integers; docs/ciphers.md, "ae-he"):
//   magic "PGHE" | format 1 (u8) | 0 (u8) | modulus bits (u16) | n (modulus bits / 8 bytes)
//   frames (u32) | codes per frame (u32) | code slot bits (u8) | 0 (u8) | latent ciphertexts (u32)
//   image rows (u16) | image columns (u16) | tile (u16) | grid rows (u16) | grid columns (u16)
//   sample offset (i32) | largest shifted sample (u32) | grid ciphertexts per frame (u32)
//   latent ciphertexts, then grid ciphertexts frame by frame; each 2 * modulus bits / 8 bytes.
// Every count is checked against the others and against the total length before anything is used.
#include "codecs/he/encrypted_region.h"
#include "codecs/he/paillier.h"

#include <cstdint>
#include <vector>

namespace pacsgw::codecs::ae_he {

struct HePayload {
  int modulusBits = 0;
  he::BigNum n;
  // The 8-bit codes of every frame (window bytes then latent), one vector densely packed.
  std::uint32_t frames = 0;
  std::uint32_t codesPerFrame = 0;
  unsigned codeSlotBits = 8;
  std::vector<he::BigNum> latent;
  // The exact block feature of every frame (codecs/he/encrypted_region.h).
  std::uint16_t imageRows = 0, imageColumns = 0, tile = 0, gridRows = 0, gridColumns = 0;
  std::int32_t offset = 0;
  std::uint32_t maxSample = 0;
  std::uint32_t gridCiphertextsPerFrame = 0;
  std::vector<he::BigNum> grid;  // frames * gridCiphertextsPerFrame

  std::size_t ciphertextBytes() const { return static_cast<std::size_t>(modulusBits) / 4; }
  // The layout of the block feature, and frame f's encrypted grid as encryptedRegionSum takes it.
  he::BlockGrid blockLayout() const;
  he::EncryptedImage frameGrid(const he::PackedPaillier& he, std::uint32_t frame) const;
};

// Slot width of the block feature (48 bits: sums of 16 x 16 tiles of 17-bit shifted samples over a
// region of up to 2^14 tiles still fit, see docs).
constexpr unsigned kGridSlotBits = 48;

// The computation on ciphertext, as a PACS-side service runs it with the public modulus of the payload
// only: the blinded encrypted sum of frame `frame`'s samples over a region given in tiles.
he::PackedCiphertext encryptedRegionSum(const HePayload& payload, std::uint32_t frame, const he::Region& tiles);
// The key holder's step: the region's mean stored value (offset removed), exact.
double decryptRegionMean(const HePayload& payload, const he::PaillierPrivateKey& key, std::uint32_t frame,
                         const he::Region& tiles, const he::PackedCiphertext& sum);
// The tiles covering a region given in pixels (rounded outwards to whole tiles).
he::Region tilesCovering(const HePayload& payload, const he::Region& pixels);

std::vector<std::uint8_t> serialisePayload(const HePayload& payload);
// Throws he::HeError naming the first inconsistency.
HePayload parsePayload(const std::vector<std::uint8_t>& bytes);

}  // namespace pacsgw::codecs::ae_he
