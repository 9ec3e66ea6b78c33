#pragma once
// Private to codecs/: the attributes outside the pixel data that key-reference format 2 binds into the
// associated data, because changing them changes which patient, study or body location the pixels
// belong to, or what the pixel values mean. The list and its encoding are part of the stored format
// (docs/conformance.md, "Bound attributes"); changing either needs a new format version.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcitem.h>

#include <array>
#include <cstdint>
#include <vector>

namespace pacsgw::codecs::detail {

// Top-level tags bound by format 2, as 0xGGGGEEEE, in ascending order.
const std::vector<std::uint32_t>& boundAttributeTags();

// Canonical bytes of the bound attributes of `dataset`: for each tag, in order, whether it is present
// and its value. Strings are compared as values (padding trimmed, DS / IS numerically), sequences item
// by item, so re-encoding the object (implicit / explicit VR, byte order) does not change the result.
std::vector<std::uint8_t> canonicalBoundAttributes(DcmItem& dataset);

// SHA-256 of the canonical bytes; stored in the key-reference block so a failed check can say
// "a bound attribute changed" rather than only "authentication failed". Not a security control: the
// associated data is.
std::array<std::uint8_t, 32> boundAttributesDigest(const std::vector<std::uint8_t>& canonical);

}  // namespace pacsgw::codecs::detail
