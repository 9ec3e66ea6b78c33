#pragma once
// Backend "edgnet": the EDG-Net generator pair (Ding et al.) with a keyed layer that makes the weights
// alone useless to a reader of the PACS copy. No LibTorch here (edgnet_model.h).
#include "codecs/backend_table.h"

#include <cstdint>
#include <vector>

namespace pacsgw::codecs {
// Its entry in the backend table (codecs/backend_table.h).
const BackendEntry& edgNetBackend();
}  // namespace pacsgw::codecs

namespace pacsgw::codecs::edgnet {

constexpr const char* kBackendId = "edgnet";
constexpr const char* kBackendVersion = "1";
constexpr std::size_t kNonceBytes = 12;
constexpr std::size_t kTagBytes = 16;
constexpr std::size_t kParamsBytes = 40;  // format, ngf, residual blocks, tile (LE16), 3 zero bytes, model SHA-256

// The transform with an explicit nonce and without verification, for the evaluation core and tests
// (research library only; the backend draws its nonce itself and always verifies).
namespace engine {
CipherRecord encrypt(PixelBuffer& pixels, const SecretBytes& key, const std::vector<std::uint8_t>& aad,
                     const std::vector<std::uint8_t>& nonce, const CipherOptions& options);
// Removes the key-stream mask and decrypts the windows with `key` without checking the tag, then runs
// the decrypting generator on whatever cipher image results.
void decryptUnverified(PixelBuffer& pixels, const SecretBytes& key, const std::vector<std::uint8_t>& aad,
                       const CipherRecord& record, const CipherOptions& options);
// The model's own reconstruction G_dec(G_enc(x)) of `pixels` (8-bit cipher image between), in place.
void reconstruct(PixelBuffer& pixels, const CipherOptions& options);
// The network's cipher image of each frame (before the key-stream mask), concatenated; no cryptography.
std::vector<std::uint8_t> networkCipherImage(const PixelBuffer& pixels, const CipherOptions& options);
std::size_t modelParameters(const CipherOptions& options);
std::size_t modelFileBytes(const CipherOptions& options);
}  // namespace engine

}  // namespace pacsgw::codecs::edgnet
