#pragma once
// What every backend built on a learned model declares alike in its backend-table entry.
#include "codecs/backend_table.h"
#include "codecs/pixel_cipher.h"

#include <memory>
#include <string>

namespace pacsgw::codecs::neural {

// What most learned backends accept (BackendInfo::layouts).
inline constexpr const char* kNativeMonochromeLayouts =
    "native integer pixel data, 8 or 16 bits allocated (any bits stored), signed or unsigned, one sample per "
    "pixel (CT, MR, CR, ...), any size, single- or multi-frame";

// A lossy, authenticated backend for native integer pixel data (no compressed fragments, no float).
inline BackendInfo learnedBackendInfo(std::string id, std::string version, std::string lossyMethod,
                                      std::string layouts, std::string summary) {
  BackendInfo i;
  i.id = std::move(id);
  i.version = std::move(version);
  i.lossless = false;
  i.maxSampleError = 65535;  // a learned reconstruction has no a-priori bound; the envelope makes retrieval exact
  i.lossyMethod = std::move(lossyMethod);
  i.authenticated = true;
  i.supportsEncapsulated = false;
  i.supportsFloat = false;
  i.layouts = std::move(layouts);
  i.summary = std::move(summary);
  return i;
}

// The backend-table entry of a learned backend whose cipher is built from the options alone.
template <typename Cipher>
const BackendEntry& learnedBackendEntry(BackendInfo (*info)()) {
  static const BackendEntry entry{info(), [](const CipherOptions& options) -> std::unique_ptr<PixelCipher> {
                                    return std::make_unique<Cipher>(options);
                                  }};
  return entry;
}

}  // namespace pacsgw::codecs::neural
