#pragma once
// Backend "ae-he": the autoencoder feature extractor of codecs/neural/ with Paillier encryption of the
// features (after Suvitha & Murugan 2024), for DICOM. docs/ciphers.md, "ae-he".
#include "codecs/ae_he/he_payload.h"
#include "codecs/backend_table.h"

#include <cstdint>
#include <vector>

namespace pacsgw::codecs {
// Its entry in the backend table (codecs/backend_table.h).
const BackendEntry& aeHeBackend();
}  // namespace pacsgw::codecs

namespace pacsgw::codecs::ae_he {

constexpr const char* kBackendId = "ae-he";
constexpr const char* kBackendVersion = "1";
constexpr std::size_t kNonceBytes = 16;
constexpr std::size_t kTagBytes = 32;
constexpr std::size_t kParamsBytes = 40;  // format, latent channels, downscale, tile, modulus bits, 2 zero bytes, model SHA-256
constexpr int kModulusBits = 3072;        // fixed by backend version 1 (docs/ciphers.md, key size policy)
constexpr unsigned kTile = 16;            // block feature: 16 x 16 tiles

// The Paillier key of the object encrypted under the backend key `key` (derived, cached per process).
std::shared_ptr<const he::PaillierPrivateKey> paillierKeyFor(const SecretBytes& key);

// The transform with an explicit nonce and without verification, for the evaluation core and tests
// (research library only; the backend draws its nonce itself and always verifies).
namespace engine {
CipherRecord encrypt(PixelBuffer& pixels, const SecretBytes& key, const std::vector<std::uint8_t>& aad,
                     const std::vector<std::uint8_t>& nonce, const CipherOptions& options);
// Decrypts the features with the Paillier key of `key` without checking the tag (a wrong key decodes
// garbage features), and decodes them.
void decryptUnverified(PixelBuffer& pixels, const SecretBytes& key, const std::vector<std::uint8_t>& aad,
                       const CipherRecord& record, const CipherOptions& options);
// The model's own reconstruction of `pixels` (encode, quantise, decode), in place; no cryptography.
void reconstruct(PixelBuffer& pixels, const CipherOptions& options);
std::size_t modelParameters(const CipherOptions& options);
std::size_t modelFileBytes(const CipherOptions& options);
}  // namespace engine

}  // namespace pacsgw::codecs::ae_he
