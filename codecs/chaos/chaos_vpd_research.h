#pragma once
// Research hooks into chaos-vpd for the evaluation suite and the tests. The gateway never calls these:
// they allow a caller-chosen nonce (deterministic encryption), decryption without verification (the
// paper's unauthenticated core, for wrong-key and robustness figures) and access to the key streams.
// Nothing here may be used to protect real data.
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
CallTimings lastCallTimings();

// Encryption exactly as the backend does it, but with a given 32-byte nonce.
CipherRecord encryptWithNonce(PixelBuffer& pixels, const SecretBytes& dataKey, const std::vector<std::uint8_t>& aad,
                              const std::vector<std::uint8_t>& nonce, Device device = Device::Cpu);

// As encryptWithNonce, but the synthetic IV is forced to `siv` instead of being computed from the
// plaintext: the key streams then no longer depend on the pixels, which is the paper's own construction.
// Used to measure the diffusion of the VPD layers alone.
CipherRecord encryptWithFixedSiv(PixelBuffer& pixels, const SecretBytes& dataKey, const std::vector<std::uint8_t>& aad,
                                 const std::vector<std::uint8_t>& nonce, const std::array<std::uint8_t, kSivBytes>& siv,
                                 Device device = Device::Cpu);

// Inverts the layers under the key schedule named by `record` without checking the tag or the synthetic
// IV (the paper's decryption). With a wrong key or altered ciphertext it returns wrong pixels, not an error.
void decryptUnauthenticated(PixelBuffer& pixels, const SecretBytes& dataKey, const std::vector<std::uint8_t>& aad,
                            const CipherRecord& record, Device device = Device::Cpu);

// The eight key streams K1..K8 (32-bit outputs) of segment 0, block 0 of the object `record` describes,
// `outputsPerLane` outputs each (may exceed what encryption used).
LaneStreams keyStreams(const SecretBytes& dataKey, const CipherRecord& record, std::size_t outputsPerLane,
                       Device device = Device::Cpu);

// The decoy image and the paper-style sum string ("S_R+1,S_G+1,S_B+1") of the object `record` describes.
struct DecoySummary {
  std::vector<std::uint8_t> image;  // planar RGB, 32 x 32
  std::string sums;
};
DecoySummary decoyFor(const SecretBytes& dataKey, const CipherRecord& record, Device device = Device::Cpu);

}  // namespace pacsgw::codecs::chaos
