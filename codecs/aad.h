#pragma once
// Private to codecs/: the associated data that binds pixel ciphertext to its object. The byte format is
// part of the stored format (docs/conformance.md, "Associated data"); changing it needs a new label.
#include "codecs/pixel_cipher.h"

#include <cstdint>
#include <string>
#include <vector>

namespace pacsgw::codecs::detail {

constexpr const char* kAadLabel = "PACSGW-AAD-1";    // key-reference format 1
constexpr const char* kAadLabelV2 = "PACSGW-AAD-2";  // format 2: also binds the bound attributes
constexpr const char* kAadLabelV3 = "PACSGW-AAD-3";  // format 3: as 2; the backend gets its own subkey

struct AadFields {
  int formatVersion = 3;  // 1, 2 or 3
  std::string sopInstanceUid;
  std::string sopClassUid;
  std::string originalTransferSyntax;
  PixelLayout layout;
  std::string backendId;
  std::string backendVersion;
  std::string keyId;
  std::string keyScope;
  std::vector<std::uint32_t> elementTags;      // 0xGGGGEEEE
  std::vector<std::uint32_t> elementLengths;   // same count as elementTags
  std::vector<std::uint32_t> fragmentLengths;  // empty for native pixel data
  std::vector<std::uint8_t> boundAttributes;   // format 2 and 3: canonicalBoundAttributes()
};

// Sequence of fields, each a 32-bit little-endian length followed by that many bytes.
std::vector<std::uint8_t> buildAad(const AadFields& fields);

}  // namespace pacsgw::codecs::detail
