#pragma once
// Image-quality figures of the model's own reconstruction, in the papers' 8-bit view.
#include "codecs/feature_fusion/model.h"
#include "codecs/feature_fusion/slice_image.h"

#include <cstdint>
#include <vector>

namespace pacsgw::codecs::feature_fusion {

// PSNR (peak 255) and SSIM (Wang et al.: 11x11 Gaussian window, sigma 1.5, C1 = (0.01*255)^2,
// C2 = (0.03*255)^2) of round(255 * a) against round(255 * b).
double psnr8(const std::vector<float>& a, const std::vector<float>& b);
double ssim8(const std::vector<float>& a, const std::vector<float>& b, int rows, int columns);
// Shannon entropy (bits) of the top byte of 16-bit codes, or of 8-bit codes.
double entropy8(const std::vector<std::uint16_t>& codes, int bits);

struct HeldOutQuality {
  double psnrRight = 0, ssimRight = 0, psnrWrong = 0, ssimWrong = 0, cipherEntropy = 0;
};
// Means over the slices (cropped to the model's size multiple) of protect -> recover with the right
// subkey and with a different one (the attacker holding the side information but not the key).
HeldOutQuality heldOutQuality(const FeatureFusionModel& model, const std::vector<Slice>& slices, std::uint64_t seed);

}  // namespace pacsgw::codecs::feature_fusion
