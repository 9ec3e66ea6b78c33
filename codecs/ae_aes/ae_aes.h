#pragma once
// Backend "ae-aes": convolutional autoencoder + AES-256-GCM (after Alslman et al. 2022), for DICOM.
#include "codecs/backend_table.h"

#include <array>
#include <cstdint>
#include <vector>

namespace pacsgw::codecs {
// Its entry in the backend table (codecs/backend_table.h).
const BackendEntry& aeAesBackend();
}  // namespace pacsgw::codecs

namespace pacsgw::codecs::ae_aes {

constexpr const char* kBackendId = "ae-aes";
constexpr const char* kBackendVersion = "1";
constexpr std::size_t kNonceBytes = 12;
constexpr std::size_t kTagBytes = 16;
constexpr std::size_t kParamsBytes = 40;  // format, latent channels, downscale, 5 zero bytes, model SHA-256

// The transform with an explicit nonce and without verification, for the evaluation core and tests
// (research library only; the backend draws its nonce itself and always verifies).
namespace engine {
CipherRecord encrypt(PixelBuffer& pixels, const SecretBytes& key, const std::vector<std::uint8_t>& aad,
                     const std::vector<std::uint8_t>& nonce, const CipherOptions& options);
// Decrypts the latent with AES-256 in GCM's counter mode without checking the tag, and decodes it.
void decryptUnverified(PixelBuffer& pixels, const SecretBytes& key, const std::vector<std::uint8_t>& aad,
                       const CipherRecord& record, const CipherOptions& options);
// The model's own reconstruction of `pixels` (encode, quantise, decode), in place; no cryptography.
void reconstruct(PixelBuffer& pixels, const CipherOptions& options);
std::size_t modelParameters(const CipherOptions& options);
std::size_t modelFileBytes(const CipherOptions& options);
}  // namespace engine

}  // namespace pacsgw::codecs::ae_aes
