#pragma once
// One image through feature-fusion with its side information: the cipher image, and what decryption
// needs besides the key: the image digest (to rebuild the feature keys) and EP, the fusion coefficients
// coupled with the key (coupling.h). Neither lets anyone without the key rebuild the keys or the
// coefficients. In the product this side information is sealed with AES-256-GCM (side_info.h); here it
// is in clear so tests and the evaluation can play the attacker who has it.
#include "codecs/feature_fusion/coupling.h"
#include "codecs/feature_fusion/feature_keys.h"
#include "codecs/feature_fusion/model.h"

#include <cstdint>
#include <vector>

namespace pacsgw::codecs::feature_fusion {

struct ProtectedImage {
  int rows = 0, columns = 0;
  std::vector<std::uint16_t> cipher;  // the pixel-shuffle cipher image, cipherBits codes
  ImageDigest digest;
  Codes ep;  // protected fusion coefficients
};

// values: rows * columns in [0, 1]; digest: of the original pixel bytes (digestImage).
ProtectedImage protectImage(const FeatureFusionModel& model, const std::vector<float>& values, int rows, int columns,
                            const ImageDigest& digest, const SecretBytes& subkey);
// The model's reconstruction under `subkey` (a wrong key yields a wrong image, not an error: the
// integrity check is the AES-GCM seal of the side information).
std::vector<float> recoverImage(const FeatureFusionModel& model, const ProtectedImage& image, const SecretBytes& subkey);

}  // namespace pacsgw::codecs::feature_fusion
