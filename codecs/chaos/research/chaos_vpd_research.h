#pragma once
// Research hooks into chaos-vpd for the evaluation suite and the tests (library pacsgw_chaos_research,
// which the service binary does not link; tests/unit/codecs_link_test checks it):
// they allow a caller-chosen nonce (deterministic encryption), decryption without verification (the
// paper's unauthenticated core, for wrong-key and robustness figures) and access to the key streams.
// Nothing here may be used to protect real data.
#include "codecs/chaos/chaos_vpd_engine.h"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace pacsgw::codecs::chaos {

// Where the time of the last encrypt/decrypt on this thread went (milliseconds).
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

// The decoy image and the paper-style sum string of the object `record` describes.
DecoySummary decoyFor(const SecretBytes& dataKey, const CipherRecord& record, Device device = Device::Cpu);

}  // namespace pacsgw::codecs::chaos
