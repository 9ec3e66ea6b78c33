#pragma once
// Backend "chaos-vpd": the DCGAN + virtual planet domain + chaotic map cipher, hardened for DICOM.
#include "codecs/pixel_cipher.h"

#include <memory>

namespace pacsgw::codecs {
std::unique_ptr<PixelCipher> makeChaosVpdCipher(const CipherOptions& options);
}  // namespace pacsgw::codecs
