// Canonical encoding of the attributes key-reference format 2 binds (see bound_attributes.h).
#include "codecs/bound_attributes.h"

#include "codecs/pixel_cipher.h"

#include <dcmtk/dcmdata/dcelem.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/dcmdata/dcvr.h>
#include <dcmtk/dcmdata/dcvrobow.h>
#include <dcmtk/dcmdata/dcvrss.h>
#include <dcmtk/dcmdata/dcvrus.h>

#include <openssl/evp.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace pacsgw::codecs::detail {
namespace {

// Why each group is bound is documented in docs/conformance.md ("Bound attributes").
const std::vector<std::uint32_t> kBoundTags = {
    0x00180050,  // Slice Thickness
    0x00180088,  // Spacing Between Slices
    0x00181164,  // Imager Pixel Spacing
    0x00182010,  // Nominal Scanned Pixel Spacing
    0x0020000D,  // Study Instance UID
    0x0020000E,  // Series Instance UID
    0x00200020,  // Patient Orientation
    0x00200032,  // Image Position (Patient)
    0x00200037,  // Image Orientation (Patient)
    0x00200052,  // Frame of Reference UID
    0x00200060,  // Laterality
    0x00200062,  // Image Laterality
    0x00201041,  // Slice Location
    0x00280030,  // Pixel Spacing
    0x00280034,  // Pixel Aspect Ratio
    0x00280120,  // Pixel Padding Value
    0x00280121,  // Pixel Padding Range Limit
    0x00281040,  // Pixel Intensity Relationship
    0x00281041,  // Pixel Intensity Relationship Sign
    0x00281050,  // Window Center
    0x00281051,  // Window Width
    0x00281052,  // Rescale Intercept
    0x00281053,  // Rescale Slope
    0x00281054,  // Rescale Type
    0x00281056,  // VOI LUT Function
    0x00281101,  // Red Palette Color Lookup Table Descriptor
    0x00281102,  // Green Palette Color Lookup Table Descriptor
    0x00281103,  // Blue Palette Color Lookup Table Descriptor
    0x00281201,  // Red Palette Color Lookup Table Data
    0x00281202,  // Green Palette Color Lookup Table Data
    0x00281203,  // Blue Palette Color Lookup Table Data
    0x00281221,  // Segmented Red Palette Color Lookup Table Data
    0x00281222,  // Segmented Green Palette Color Lookup Table Data
    0x00281223,  // Segmented Blue Palette Color Lookup Table Data
    0x00283000,  // Modality LUT Sequence
    0x00283010,  // VOI LUT Sequence
    0x00409096,  // Real World Value Mapping Sequence
    0x20500020,  // Presentation LUT Shape
    0x52009229,  // Shared Functional Groups Sequence
    0x52009230,  // Per-Frame Functional Groups Sequence
};

class Canonical {
 public:
  void u8(std::uint8_t v) { out_.push_back(v); }
  void u32(std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  void text(const std::string& s) {
    if (s.size() > 0xFFFFFFFFu) throw CipherError("bound attribute value too long");
    u32(static_cast<std::uint32_t>(s.size()));
    out_.insert(out_.end(), s.begin(), s.end());
  }
  void bytes(const std::uint8_t* p, std::size_t n) { out_.insert(out_.end(), p, p + n); }
  std::vector<std::uint8_t> take() { return std::move(out_); }

 private:
  std::vector<std::uint8_t> out_;
};

std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \0", 0, 2);
  if (first == std::string::npos) return {};
  const auto last = s.find_last_not_of(" \0", std::string::npos, 2);
  return s.substr(first, last - first + 1);
}

// "1", "1.0" and " 1.000 " are the same Decimal String: compare numbers, not spellings.
std::string normaliseNumber(const std::string& value) {
  const std::string t = trim(value);
  if (t.empty()) return t;
  errno = 0;
  char* end = nullptr;
  const double d = std::strtod(t.c_str(), &end);
  if (end == nullptr || *end != '\0' || errno != 0 || !std::isfinite(d)) return t;
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", d == 0.0 ? 0.0 : d);  // -0 and 0 are one value
  return buf;
}

void writeItem(Canonical& out, DcmItem& item, int depth);

// 16-bit values (US, SS, OW and OB): raw bytes in little-endian order. An implicit-VR encoding leaves
// "US or SS" elements (Pixel Padding Value, LUT descriptors) to be guessed, so their decimal text
// could differ between encodings of the same object; their bytes cannot.
bool writeRawWords(Canonical& out, DcmElement& element) {
  const unsigned long bytes = element.getLengthField();
  const std::uint8_t* data = nullptr;
  std::vector<std::uint8_t> words;
  auto fromWords = [&](const Uint16* w) {
    for (unsigned long i = 0; w != nullptr && i < bytes / 2; ++i) {
      words.push_back(static_cast<std::uint8_t>(w[i] & 0xFF));
      words.push_back(static_cast<std::uint8_t>(w[i] >> 8));
    }
    data = words.data();
  };
  if (auto* us = dynamic_cast<DcmUnsignedShort*>(&element)) {
    Uint16* w = nullptr;
    if (bytes > 0 && us->getUint16Array(w).good()) fromWords(w);
  } else if (auto* ss = dynamic_cast<DcmSignedShort*>(&element)) {
    Sint16* w = nullptr;
    if (bytes > 0 && ss->getSint16Array(w).good()) fromWords(reinterpret_cast<Uint16*>(w));
  } else if (auto* ob = dynamic_cast<DcmOtherByteOtherWord*>(&element)) {
    if (bytes > 0 && ob->getVR() == EVR_OB) {
      Uint8* b = nullptr;
      if (ob->getUint8Array(b).good()) data = b;
    } else if (bytes > 0) {
      Uint16* w = nullptr;
      if (ob->getUint16Array(w).good()) fromWords(w);
    }
  } else {
    return false;
  }
  out.u8('B');
  out.u32(static_cast<std::uint32_t>(data == nullptr ? 0 : bytes));
  if (data != nullptr) out.bytes(data, bytes);
  return true;
}

void writeElement(Canonical& out, DcmElement& element, int depth) {
  if (auto* sq = dynamic_cast<DcmSequenceOfItems*>(&element)) {
    if (depth > 16) throw CipherError("bound attribute sequences nested too deeply");
    out.u8('Q');
    out.u32(static_cast<std::uint32_t>(sq->card()));
    for (unsigned long i = 0; i < sq->card(); ++i) writeItem(out, *sq->getItem(i), depth + 1);
    return;
  }
  if (writeRawWords(out, element)) return;
  // Every other VR has a string form in DCMTK independent of the transfer syntax it arrived in.
  OFString all;
  if (element.getOFStringArray(all, OFTrue).bad()) all.clear();
  const DcmEVR vr = element.getVR();
  const bool numeric = vr == EVR_DS || vr == EVR_IS;
  out.u8('V');
  std::vector<std::string> values;
  std::string current;
  for (const char c : std::string(all.c_str(), all.length())) {
    if (c == '\\') {
      values.push_back(current);
      current.clear();
    } else {
      current.push_back(c);
    }
  }
  values.push_back(current);
  out.u32(static_cast<std::uint32_t>(values.size()));
  for (const auto& v : values) out.text(numeric ? normaliseNumber(v) : trim(v));
}

void writeItem(Canonical& out, DcmItem& item, int depth) {
  std::uint32_t count = 0;
  for (DcmObject* o = item.nextInContainer(nullptr); o != nullptr; o = item.nextInContainer(o))
    if (o->getTag().getElement() != 0x0000) ++count;  // group lengths are encoding, not content
  out.u32(count);
  for (DcmObject* o = item.nextInContainer(nullptr); o != nullptr; o = item.nextInContainer(o)) {
    const DcmTagKey key = o->getTag();
    if (key.getElement() == 0x0000) continue;
    out.u32((std::uint32_t{key.getGroup()} << 16) | key.getElement());
    if (auto* e = dynamic_cast<DcmElement*>(o)) writeElement(out, *e, depth);
    else out.u8('?');
  }
}

}  // namespace

const std::vector<std::uint32_t>& boundAttributeTags() { return kBoundTags; }

std::vector<std::uint8_t> canonicalBoundAttributes(DcmItem& dataset) {
  Canonical out;
  out.text("PACSGW-BOUND-2");
  out.u32(static_cast<std::uint32_t>(kBoundTags.size()));
  // kBoundTags ascend and DCMTK keeps an item's elements in ascending tag order: one merged walk
  // finds them all (a search per tag scanned the whole data set 40 times for every instance).
  DcmObject* next = dataset.nextInContainer(nullptr);
  for (const std::uint32_t tag : kBoundTags) {
    out.u32(tag);
    DcmElement* element = nullptr;
    for (; next != nullptr; next = dataset.nextInContainer(next)) {
      const DcmTagKey key = next->getTag();
      const std::uint32_t here = (std::uint32_t{key.getGroup()} << 16) | key.getElement();
      if (here < tag) continue;
      if (here == tag) element = dynamic_cast<DcmElement*>(next);
      break;
    }
    if (element == nullptr) {
      out.u8('-');  // absent: adding the attribute later is a change too
      continue;
    }
    writeElement(out, *element, 0);
  }
  return out.take();
}

std::array<std::uint8_t, 32> boundAttributesDigest(const std::vector<std::uint8_t>& canonical) {
  std::array<std::uint8_t, 32> digest{};
  unsigned int length = 0;
  if (EVP_Digest(canonical.data(), canonical.size(), digest.data(), &length, EVP_sha256(), nullptr) != 1 ||
      length != digest.size())
    throw CipherError("SHA-256 of the bound attributes failed");
  return digest;
}

}  // namespace pacsgw::codecs::detail
