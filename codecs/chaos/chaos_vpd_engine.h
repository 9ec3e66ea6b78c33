#pragma once
// Private to codecs/chaos: the chaos-vpd format constants and its transform with every input explicit.
// The backend (chaos_vpd.cpp) draws the nonce itself and verifies the tag before calling invertLayers;
// the research library (codecs/chaos/research/, never linked by the service binary) exposes these
// building blocks to `pacsgw eval` and the tests.
#include "codecs/chaos/vpd_core.h"
#include "codecs/pixel_cipher.h"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace pacsgw::codecs::chaos {

constexpr const char* kBackendId = "chaos-vpd";
constexpr const char* kBackendVersion = "1";
constexpr std::size_t kNonceBytes = 32;   // HKDF salt, fresh per object
constexpr std::size_t kTagBytes = 32;     // HMAC-SHA-256, untruncated
constexpr std::size_t kSivBytes = 32;     // synthetic IV (plaintext-dependent key input), in params
constexpr std::size_t kParamsBytes = 8 + kSivBytes;
constexpr std::size_t kBlockWords = std::size_t{1} << 20;  // samples per independently keyed block

// Where the time of the last encrypt/decrypt on this thread went (milliseconds).
struct CallTimings {
  double generatorMs = 0;  // DCGAN decoy (once per object)
  double scheduleMs = 0;   // HKDF, SHA-512 and key streams (all blocks)
  double pixelsMs = 0;     // the VPD / shuffle / XOR / planet layers (all blocks)
  double macMs = 0;        // synthetic IV and tag (HMAC-SHA-256 passes over the pixels)
};

// The decoy image and the paper-style sum string ("S_R+1,S_G+1,S_B+1") of one object.
struct DecoySummary {
  std::vector<std::uint8_t> image;  // planar RGB, 32 x 32
  std::string sums;
};

namespace engine {

CallTimings lastCallTimings();

// Encrypts under `nonce`; with `forcedSiv` the synthetic IV is that value instead of the plaintext's HMAC.
CipherRecord encrypt(PixelBuffer& pixels, const SecretBytes& dataKey, const std::vector<std::uint8_t>& aad,
                     const std::vector<std::uint8_t>& nonce, const std::array<std::uint8_t, kSivBytes>* forcedSiv,
                     Device device);

// Inverts the layers under the key schedule `record` names. Checks the record's shape, not its tag.
void invertLayers(PixelBuffer& pixels, const SecretBytes& dataKey, const CipherRecord& record, Device device);

// The eight key streams of segment 0, block 0, `outputsPerLane` outputs each.
LaneStreams keyStreams(const SecretBytes& dataKey, const CipherRecord& record, std::size_t outputsPerLane,
                       Device device);

DecoySummary decoyFor(const SecretBytes& dataKey, const CipherRecord& record, Device device);

}  // namespace engine
}  // namespace pacsgw::codecs::chaos
