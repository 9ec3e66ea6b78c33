#pragma once
// The backend table: every PixelCipher this build offers, one entry each. A backend joins it with one
// line in codecs/CMakeLists.txt (pacsgw_cipher_backend(...)); nothing else lists backends. The entry
// carries the constructor and the capabilities; the evaluation core (research hooks for `pacsgw eval`)
// is named on the same line but lives in a research library the service binary never links
// (codecs/eval/core_table.h). See docs/ciphers.md, "Adding a backend".
#include "codecs/pixel_cipher.h"

#include <memory>
#include <string>
#include <vector>

namespace pacsgw::codecs {

struct BackendEntry {
  // id, version and capabilities; the constructed cipher's info() must equal this.
  BackendInfo info;
  // Builds an instance for the given options (device already validated to cpu | cuda | auto).
  std::unique_ptr<PixelCipher> (*make)(const CipherOptions& options) = nullptr;
};

// All entries of this build, in the order of codecs/CMakeLists.txt (the first is the default).
const std::vector<const BackendEntry*>& backendTable();
// nullptr when `id` is not in the table.
const BackendEntry* findBackend(const std::string& id);

}  // namespace pacsgw::codecs
