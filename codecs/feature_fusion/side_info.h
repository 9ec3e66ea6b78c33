#pragma once
// The side information of feature-fusion frames: what decryption needs besides the key and the cipher
// image, serialised as the plaintext of the backend payload. The backend seals it with AES-256-GCM
// (feature_fusion_backend.cpp); nothing here is ever stored in clear.
//
// Per frame, fixed size for a given model and layout (little-endian):
//   window lo i32 | window hi i32 | SHA-256 of the frame (32) | p u8 | EP u16 x coefficients |
//   overflow bytes (cipher codes that do not fit Pixel Data: padding to the model's size multiple, and
//   the low byte of every code for 8-bit pixel data)
#include "codecs/feature_fusion/coupling.h"
#include "codecs/feature_fusion/feature_keys.h"

#include <cstdint>
#include <vector>

namespace pacsgw::codecs::feature_fusion {

struct FrameSideInfo {
  std::int32_t lo = 0, hi = 1;  // stored-value window of the frame
  ImageDigest digest;
  Codes ep;
  std::vector<std::uint8_t> overflow;
};

std::size_t frameSideInfoBytes(std::size_t coefficients, std::size_t overflowBytes);
std::vector<std::uint8_t> encodeSideInfo(const std::vector<FrameSideInfo>& frames);
// Throws CipherError when `bytes` is not exactly `frames` records of this shape.
std::vector<FrameSideInfo> decodeSideInfo(const std::vector<std::uint8_t>& bytes, std::size_t frames,
                                          std::size_t coefficients, std::size_t overflowBytes);

}  // namespace pacsgw::codecs::feature_fusion
