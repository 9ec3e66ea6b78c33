#pragma once
// Backend "feature-fusion": Long et al.'s deep feature encoding with logistic-map feature keys, made fit
// for DICOM (docs/ciphers.md, "feature-fusion").
#include "codecs/backend_table.h"

#include <cstdint>
#include <vector>

namespace pacsgw::codecs {
// Its entry in the backend table (codecs/backend_table.h).
const BackendEntry& featureFusionBackend();
}  // namespace pacsgw::codecs

namespace pacsgw::codecs::feature_fusion {

constexpr const char* kBackendId = "feature-fusion";
constexpr const char* kBackendVersion = "1";
constexpr std::size_t kNonceBytes = 12;
constexpr std::size_t kTagBytes = 16;
constexpr std::size_t kParamsBytes = 40;  // format, groups, cipher bits, 5 zero bytes, model SHA-256

// The transform with an explicit nonce and without verification, for the evaluation core and tests
// (research library only; the backend draws its nonce itself and always verifies).
namespace engine {
CipherRecord encrypt(PixelBuffer& pixels, const SecretBytes& key, const std::vector<std::uint8_t>& aad,
                     const std::vector<std::uint8_t>& nonce, const CipherOptions& options);
// Decrypts the side information in GCM's counter mode without checking the tag, and decodes.
void decryptUnverified(PixelBuffer& pixels, const SecretBytes& key, const std::vector<std::uint8_t>& aad,
                       const CipherRecord& record, const CipherOptions& options);
// The model's own reconstruction of `pixels` under `key` (encrypt then decrypt, no sealing), in place.
void reconstruct(PixelBuffer& pixels, const SecretBytes& key, const CipherOptions& options);
// The logistic orbits behind the feature keys of frame `frame` of an encrypted object (NIST tests).
std::vector<std::uint8_t> keyStreamBytes(const SecretBytes& key, const CipherRecord& record, std::size_t bytes,
                                         const CipherOptions& options);
std::size_t modelParameters(const CipherOptions& options);
std::size_t modelFileBytes(const CipherOptions& options);
}  // namespace engine

}  // namespace pacsgw::codecs::feature_fusion
