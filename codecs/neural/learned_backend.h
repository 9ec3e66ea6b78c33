#pragma once
// What every backend built on a learned model declares alike in its backend-table entry.
#include "codecs/pixel_cipher.h"

#include <string>

namespace pacsgw::codecs::neural {

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

}  // namespace pacsgw::codecs::neural
