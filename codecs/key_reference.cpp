// The key-reference private block: dictionary registration, writing, strict reading, removal.
#include "codecs/key_reference.h"

#include "codecs/pixel_access.h"

#include <dcmtk/dcmdata/dcdicent.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcvrat.h>
#include <dcmtk/dcmdata/dcvrcs.h>
#include <dcmtk/dcmdata/dcvrdt.h>
#include <dcmtk/dcmdata/dcvrlo.h>
#include <dcmtk/dcmdata/dcvrobow.h>
#include <dcmtk/dcmdata/dcvrui.h>
#include <dcmtk/dcmdata/dcvrul.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>

namespace pacsgw::codecs {
namespace {

using namespace detail;

struct FieldSpec {
  std::uint8_t offset;
  DcmEVR vr;
  const char* name;     // for messages
  const char* keyword;  // for the data dictionary
  int vmMax;            // 1, or DcmVariableVM
};

constexpr std::array<FieldSpec, 15> kFields{{
    {kKeyRefBackendId, EVR_LO, "Backend ID", "PacsgwBackendID", 1},
    {kKeyRefBackendVersion, EVR_LO, "Backend Version", "PacsgwBackendVersion", 1},
    {kKeyRefKeyId, EVR_LO, "Key ID", "PacsgwKeyID", 1},
    {kKeyRefKeyScope, EVR_CS, "Key Scope", "PacsgwKeyScope", 1},
    {kKeyRefOriginalXfer, EVR_UI, "Original Transfer Syntax UID", "PacsgwOriginalTransferSyntaxUID", 1},
    {kKeyRefProtectedElements, EVR_AT, "Protected Elements", "PacsgwProtectedElements", DcmVariableVM},
    {kKeyRefProtectedLengths, EVR_UL, "Protected Lengths", "PacsgwProtectedLengths", DcmVariableVM},
    {kKeyRefNonce, EVR_OB, "Nonce", "PacsgwNonce", 1},
    {kKeyRefTag, EVR_OB, "Authentication Tag", "PacsgwAuthenticationTag", 1},
    {kKeyRefParams, EVR_OB, "Backend Parameters", "PacsgwBackendParameters", 1},
    {kKeyRefEncryptedAt, EVR_DT, "Encrypted DateTime", "PacsgwEncryptedDateTime", 1},
    {kKeyRefFormatVersionElement, EVR_LO, "Key Reference Format Version", "PacsgwKeyReferenceFormatVersion", 1},
    {kKeyRefBoundDigest, EVR_OB, "Bound Attributes Digest", "PacsgwBoundAttributesDigest", 1},
    {kKeyRefPayload, EVR_OB, "Backend Payload", "PacsgwBackendPayload", 1},
    {kKeyRefEnvelope, EVR_OB, "Exact Retrieval Envelope", "PacsgwExactRetrievalEnvelope", 1},
}};

const FieldSpec* findSpec(std::uint8_t offset) {
  for (const auto& f : kFields)
    if (f.offset == offset) return &f;
  return nullptr;
}

std::string tagText(const DcmTagKey& key) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "(%04X,%04X)", key.getGroup(), key.getElement());
  return buf;
}

[[noreturn]] void bad(const std::string& message) {
  throw CryptError(CryptErrorKind::MalformedKeyReference, "key reference: " + message);
}

// An element that no dictionary described arrives as UN: its value is then the raw little-endian
// encoding (PS3.5 6.2.2), which we decode ourselves.
bool isRawVr(DcmEVR vr) { return vr == EVR_UN || vr == EVR_UNKNOWN || vr == EVR_UNKNOWN2B; }

std::vector<std::uint8_t> bytesOf(DcmElement& e) {
  const Uint32 n = e.getLengthField();
  if (n == 0) return {};
  Uint8* p = nullptr;
  if (e.getUint8Array(p).bad() || p == nullptr) return {};
  return std::vector<std::uint8_t>(p, p + n);
}

std::string trimRight(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  return s;
}

std::string trim(std::string s) {
  s = trimRight(std::move(s));
  const auto first = s.find_first_not_of(' ');
  return first == std::string::npos ? std::string() : s.substr(first);
}

// Reads one private creator value, typed (LO) or raw (UN).
std::string creatorValue(DcmElement& e) {
  if (e.getVR() == EVR_LO) {
    OFString v;
    if (e.getOFStringArray(v).bad()) return {};
    return trim(v.c_str());
  }
  if (isRawVr(e.getVR())) {
    const auto raw = bytesOf(e);
    return trim(std::string(raw.begin(), raw.end()));
  }
  return {};
}

bool isPrivateCreatorSlot(const DcmTagKey& key) {
  return key.getGroup() == kKeyRefGroup && key.getElement() >= 0x0010 && key.getElement() <= 0x00FF;
}

// Elements (0077,bbxx) of one block, keyed by xx.
std::map<std::uint8_t, DcmElement*> blockElements(DcmItem& dataset, std::uint8_t block) {
  std::map<std::uint8_t, DcmElement*> out;
  for (DcmObject* obj = dataset.nextInContainer(nullptr); obj != nullptr; obj = dataset.nextInContainer(obj)) {
    const DcmTagKey key = obj->getTag();
    if (key.getGroup() != kKeyRefGroup) continue;
    if ((key.getElement() >> 8) != block) continue;
    if (auto* e = dynamic_cast<DcmElement*>(obj)) out[static_cast<std::uint8_t>(key.getElement() & 0xFF)] = e;
  }
  return out;
}

bool blockInUse(DcmItem& dataset, std::uint8_t block) {
  DcmElement* e = nullptr;
  if (dataset.findAndGetElement(DcmTagKey(kKeyRefGroup, block), e, OFFalse).good()) return true;
  return !blockElements(dataset, block).empty();
}

// ---- reading, one field at a time --------------------------------------------------------------------

class BlockReader {
 public:
  bool has(std::uint8_t offset) const { return elements_.count(offset) != 0; }

  BlockReader(DcmItem& dataset, std::uint8_t block) : block_(block), elements_(blockElements(dataset, block)) {
    for (const auto& [offset, e] : elements_) {
      if (findSpec(offset) == nullptr)
        bad("unknown element " + tagText(keyRefTag(block_, offset)) + " in the PACSGW KEYREF 1 block");
    }
  }

  std::string text(std::uint8_t offset, std::size_t maxChars) {
    const FieldSpec& f = *findSpec(offset);
    DcmElement& e = require(f);
    std::string value;
    if (e.getVR() == f.vr) {
      OFString v;
      if (e.getOFStringArray(v).bad()) bad(label(f) + " cannot be read");
      value = v.c_str();
    } else if (isRawVr(e.getVR())) {
      const auto raw = bytesOf(e);
      value.assign(raw.begin(), raw.end());
    } else {
      wrongVr(f, e);
    }
    value = trim(value);
    if (value.empty()) bad(label(f) + " is empty");
    if (value.size() > maxChars) bad(label(f) + " is longer than " + std::to_string(maxChars) + " characters");
    if (value.find('\\') != std::string::npos) bad(label(f) + " has more than one value");
    for (unsigned char c : value)
      if (c < 0x20 || c > 0x7E) bad(label(f) + " contains a character outside printable ASCII");
    return value;
  }

  std::vector<std::uint8_t> bytes(std::uint8_t offset, std::size_t maxBytes) {
    const FieldSpec& f = *findSpec(offset);
    DcmElement& e = require(f);
    if (e.getVR() != EVR_OB && !isRawVr(e.getVR())) wrongVr(f, e);
    if (e.getLengthField() > maxBytes)
      bad(label(f) + " holds " + std::to_string(e.getLengthField()) + " bytes, at most " +
          std::to_string(maxBytes) + " allowed");
    auto value = bytesOf(e);
    if (value.size() != e.getLengthField()) bad(label(f) + " cannot be read");
    return value;
  }

  std::vector<std::uint32_t> tags(std::uint8_t offset) {
    const FieldSpec& f = *findSpec(offset);
    DcmElement& e = require(f);
    std::vector<std::uint32_t> out;
    if (e.getVR() == EVR_AT) {
      for (unsigned long i = 0; i < e.getVM(); ++i) {
        DcmTagKey key;
        if (e.getTagVal(key, i).bad()) bad(label(f) + " cannot be read");
        out.push_back((std::uint32_t{key.getGroup()} << 16) | key.getElement());
      }
    } else if (isRawVr(e.getVR())) {
      const auto raw = bytesOf(e);
      if (raw.size() % 4 != 0) bad(label(f) + " has a length that is not a multiple of 4");
      for (std::size_t i = 0; i < raw.size(); i += 4) {
        const std::uint32_t group = raw[i] | (raw[i + 1] << 8);
        const std::uint32_t element = raw[i + 2] | (raw[i + 3] << 8);
        out.push_back((group << 16) | element);
      }
    } else {
      wrongVr(f, e);
    }
    return out;
  }

  std::vector<std::uint32_t> longs(std::uint8_t offset) {
    const FieldSpec& f = *findSpec(offset);
    DcmElement& e = require(f);
    std::vector<std::uint32_t> out;
    if (e.getVR() == EVR_UL) {
      for (unsigned long i = 0; i < e.getVM(); ++i) {
        Uint32 v = 0;
        if (e.getUint32(v, i).bad()) bad(label(f) + " cannot be read");
        out.push_back(v);
      }
    } else if (isRawVr(e.getVR())) {
      const auto raw = bytesOf(e);
      if (raw.size() % 4 != 0) bad(label(f) + " has a length that is not a multiple of 4");
      for (std::size_t i = 0; i < raw.size(); i += 4)
        out.push_back(std::uint32_t{raw[i]} | (std::uint32_t{raw[i + 1]} << 8) | (std::uint32_t{raw[i + 2]} << 16) |
                      (std::uint32_t{raw[i + 3]} << 24));
    } else {
      wrongVr(f, e);
    }
    return out;
  }

  std::string label(const FieldSpec& f) const { return std::string(f.name) + " " + tagText(keyRefTag(block_, f.offset)); }

 private:
  DcmElement& require(const FieldSpec& f) {
    const auto it = elements_.find(f.offset);
    if (it == elements_.end() || it->second == nullptr) bad(label(f) + " is missing");
    return *it->second;
  }
  [[noreturn]] void wrongVr(const FieldSpec& f, DcmElement& e) {
    bad(label(f) + " has VR " + DcmVR(e.getVR()).getVRName() + ", expected " + DcmVR(f.vr).getVRName());
  }

  std::uint8_t block_;
  std::map<std::uint8_t, DcmElement*> elements_;
};

// DICOM DT: YYYY[MM[DD[HH[MM[SS[.F{1-6}]]]]]][&ZZXX]. Own check because DCMTK 3.6.7 rejects a +0000 offset.
bool isDateTime(const std::string& v) {
  std::size_t end = v.size();
  if (end >= 5 && (v[end - 5] == '+' || v[end - 5] == '-')) {
    const std::string off = v.substr(end - 4);
    if (!std::all_of(off.begin(), off.end(), [](unsigned char c) { return std::isdigit(c); })) return false;
    if (std::stoi(off.substr(0, 2)) > 14 || std::stoi(off.substr(2)) > 59) return false;
    end -= 5;
  }
  const std::string body = v.substr(0, end);
  const std::size_t dot = body.find('.');
  const std::string whole = body.substr(0, dot);
  if (dot != std::string::npos) {
    const std::string frac = body.substr(dot + 1);
    if (whole.size() != 14 || frac.empty() || frac.size() > 6) return false;
    if (!std::all_of(frac.begin(), frac.end(), [](unsigned char c) { return std::isdigit(c); })) return false;
  }
  if (whole.size() < 4 || whole.size() > 14 || whole.size() % 2 != 0) return false;
  if (!std::all_of(whole.begin(), whole.end(), [](unsigned char c) { return std::isdigit(c); })) return false;
  const int limits[][2] = {{1, 12}, {1, 31}, {0, 23}, {0, 59}, {0, 60}};  // month .. second
  for (std::size_t i = 4, k = 0; i < whole.size(); i += 2, ++k) {
    const int n = std::stoi(whole.substr(i, 2));
    if (n < limits[k][0] || n > limits[k][1]) return false;
  }
  return true;
}

bool isPixelTag(std::uint32_t tag) {
  return tag == kTagPixelData || tag == kTagFloatPixelData || tag == kTagDoubleFloatPixelData;
}

bool isUidSyntax(const std::string& uid) {
  if (uid.empty() || uid.size() > 64) return false;
  return DcmUniqueIdentifier::checkStringValue(uid.c_str(), "1").good();
}

// Checks the parts of a KeyReference that do not depend on how they were encoded.
void validateValues(const KeyReference& ref, const std::string& where) {
  const auto& r = ref.record;
  auto printable = [](const std::string& s) {
    return std::all_of(s.begin(), s.end(), [](unsigned char c) { return c >= 0x20 && c <= 0x7E && c != '\\'; });
  };
  if (r.backendId.empty() || r.backendId.size() > 64 || !printable(r.backendId))
    bad(where + "Backend ID must be 1-64 printable characters");
  if (r.backendVersion.empty() || r.backendVersion.size() > 64 || !printable(r.backendVersion))
    bad(where + "Backend Version must be 1-64 printable characters");
  if (!isUuid(ref.keyId)) bad(where + "Key ID is not a UUID");
  if (ref.keyScope != "STUDY" && ref.keyScope != "SERIES" && ref.keyScope != "INSTANCE")
    bad(where + "Key Scope must be STUDY, SERIES or INSTANCE");
  if (!isUidSyntax(ref.originalTransferSyntax)) bad(where + "Original Transfer Syntax UID is not a valid UID");
  const DcmXfer xfer(ref.originalTransferSyntax.c_str());
  if (xfer.getXfer() == EXS_Unknown || ref.originalTransferSyntax != xfer.getXferID())
    bad(where + "Original Transfer Syntax UID " + ref.originalTransferSyntax + " is not a known transfer syntax");
  if (ref.protectedElements.empty()) bad(where + "Protected Elements is empty");
  if (ref.protectedElements.size() != ref.protectedLengths.size())
    bad(where + "Protected Elements and Protected Lengths differ in value multiplicity (" +
        std::to_string(ref.protectedElements.size()) + " vs " + std::to_string(ref.protectedLengths.size()) + ")");
  for (std::size_t i = 0; i < ref.protectedElements.size(); ++i) {
    if (!isPixelTag(ref.protectedElements[i])) bad(where + "Protected Elements names a non-pixel-data element");
    for (std::size_t j = 0; j < i; ++j)
      if (ref.protectedElements[j] == ref.protectedElements[i]) bad(where + "Protected Elements repeats an element");
  }
  if (r.nonce.size() > kMaxNonceBytes) bad(where + "Nonce is longer than 64 bytes");
  if (r.tag.size() > kMaxTagBytes) bad(where + "Authentication Tag is longer than 64 bytes");
  if (r.params.size() > kMaxParamsBytes) bad(where + "Backend Parameters exceed 1 MiB");
  const std::size_t sideCap = maxSideDataBytes(ref.protectedLengths);
  if (r.payload.size() > sideCap) bad(where + "Backend Payload exceeds " + std::to_string(sideCap) + " bytes");
  if (ref.exactEnvelope.size() > sideCap) bad(where + "Exact Retrieval Envelope exceeds " + std::to_string(sideCap) + " bytes");
  if (ref.encryptedAt.size() > 26 || !isDateTime(ref.encryptedAt))
    bad(where + "Encrypted DateTime is not a valid DT value");
  if (ref.formatVersion < 1 || ref.formatVersion > 3) bad(where + "Key Reference Format Version must be 1, 2 or 3");
  if (ref.formatVersion >= 2 && ref.boundAttributesDigest.size() != kBoundDigestBytes)
    bad(where + "Bound Attributes Digest must hold 32 bytes");
  if (ref.formatVersion == 1 && !ref.boundAttributesDigest.empty())
    bad(where + "a format 1 key reference has no Bound Attributes Digest");
}

// ---- writing ------------------------------------------------------------------------------------------

template <typename T>
std::unique_ptr<DcmElement> textElement(const DcmTagKey& key, DcmEVR vr, const std::string& v) {
  auto e = std::make_unique<T>(DcmTag(key, DcmVR(vr)));
  if (e->putString(v.c_str()).bad()) bad("cannot encode " + tagText(key));
  return e;
}

std::unique_ptr<DcmElement> bytesElement(std::uint8_t block, std::uint8_t offset, const std::vector<std::uint8_t>& v) {
  auto e = std::make_unique<DcmOtherByteOtherWord>(DcmTag(keyRefTag(block, offset), DcmVR(EVR_OB)));
  const OFCondition ok = v.empty() ? e->putUint8Array(nullptr, 0) : e->putUint8Array(v.data(), v.size());
  if (ok.bad()) bad("cannot encode " + tagText(keyRefTag(block, offset)));
  return e;
}

}  // namespace

// ---- detail helpers ---------------------------------------------------------------------------------

namespace detail {

std::size_t maxSideDataBytes(const std::vector<std::uint32_t>& protectedLengths) {
  std::uint64_t total = 0;
  for (const std::uint32_t n : protectedLengths) total += n;
  return static_cast<std::size_t>(std::min<std::uint64_t>(2 * total + (std::uint64_t{1} << 20), std::uint64_t{1} << 30));
}

std::vector<std::uint8_t> findKeyReferenceBlocks(DcmItem& dataset) {
  std::vector<std::uint8_t> blocks;
  for (DcmObject* obj = dataset.nextInContainer(nullptr); obj != nullptr; obj = dataset.nextInContainer(obj)) {
    const DcmTagKey key = obj->getTag();
    if (!isPrivateCreatorSlot(key)) continue;
    auto* e = dynamic_cast<DcmElement*>(obj);
    if (e != nullptr && creatorValue(*e) == kKeyRefCreator) blocks.push_back(static_cast<std::uint8_t>(key.getElement()));
  }
  return blocks;
}

bool isUuid(const std::string& text) {
  if (text.size() != 36) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? text[i] != '-' : !std::isxdigit(static_cast<unsigned char>(text[i]))) return false;
  }
  return true;
}

std::string normaliseKeyScope(const std::string& scope) {
  std::string upper = scope;
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  if (upper != "STUDY" && upper != "SERIES" && upper != "INSTANCE")
    throw CryptError(CryptErrorKind::MalformedKeyReference, "key scope must be STUDY, SERIES or INSTANCE");
  return upper;
}

std::string currentUtcDateTime() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() % 1000000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d%02d%02d%02d%02d%02d.%06d+0000", utc.tm_year + 1900, utc.tm_mon + 1,
                utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(micros));
  return buf;
}

}  // namespace detail

// ---- public API ---------------------------------------------------------------------------------------

void registerKeyReferenceDictionary() {
  static std::once_flag once;
  std::call_once(once, [] {
    DcmDataDictionary& dict = dcmDataDict.wrlock();
    for (const auto& f : kFields) {
      // Private entries hold only the element byte; DCMTK matches them in every block of the creator.
      const DcmTagKey key(kKeyRefGroup, f.offset);
      if (dict.findEntry(key, kKeyRefCreator) != nullptr) continue;
      dict.addEntry(new DcmDictEntry(kKeyRefGroup, f.offset, DcmVR(f.vr), f.keyword, 1, f.vmMax, "PACSGW",
                                     OFTrue, kKeyRefCreator));
    }
    dcmDataDict.wrunlock();
  });
}

bool hasKeyReference(DcmItem& dataset) { return !findKeyReferenceBlocks(dataset).empty(); }

KeyReference readKeyReference(DcmItem& dataset) {
  const auto blocks = findKeyReferenceBlocks(dataset);
  if (blocks.empty())
    throw CryptError(CryptErrorKind::NotEncrypted, "the object carries no PACSGW KEYREF 1 block");
  if (blocks.size() > 1) bad("the PACSGW KEYREF 1 creator is reserved in more than one block");

  BlockReader in(dataset, blocks.front());
  const std::string version = in.text(kKeyRefFormatVersionElement, 64);
  if (version != "1" && version != "2" && version != "3")
    bad("Key Reference Format Version is '" + version + "', this build reads versions 1, 2 and 3");

  KeyReference ref;
  ref.formatVersion = version[0] - '0';
  if (ref.formatVersion >= 2) ref.boundAttributesDigest = in.bytes(kKeyRefBoundDigest, kBoundDigestBytes);
  else if (in.has(kKeyRefBoundDigest)) bad("a format 1 key reference has no Bound Attributes Digest");
  ref.record.backendId = in.text(kKeyRefBackendId, 64);
  ref.record.backendVersion = in.text(kKeyRefBackendVersion, 64);
  ref.keyId = in.text(kKeyRefKeyId, 64);
  ref.keyScope = in.text(kKeyRefKeyScope, 16);
  ref.originalTransferSyntax = in.text(kKeyRefOriginalXfer, 64);
  ref.protectedElements = in.tags(kKeyRefProtectedElements);
  ref.protectedLengths = in.longs(kKeyRefProtectedLengths);
  ref.record.nonce = in.bytes(kKeyRefNonce, kMaxNonceBytes);
  ref.record.tag = in.bytes(kKeyRefTag, kMaxTagBytes);
  ref.record.params = in.bytes(kKeyRefParams, kMaxParamsBytes);
  const std::size_t sideCap = maxSideDataBytes(ref.protectedLengths);
  if (in.has(kKeyRefPayload)) ref.record.payload = in.bytes(kKeyRefPayload, sideCap);
  if (in.has(kKeyRefEnvelope)) ref.exactEnvelope = in.bytes(kKeyRefEnvelope, sideCap);
  ref.encryptedAt = in.text(kKeyRefEncryptedAt, 26);
  validateValues(ref, "");
  return ref;
}

void writeKeyReference(DcmItem& dataset, const KeyReference& ref) {
  if (hasKeyReference(dataset))
    throw CryptError(CryptErrorKind::AlreadyEncrypted, "the object already carries a PACSGW KEYREF 1 block");
  validateValues(ref, "cannot write: ");
  // DICOM pads odd values to even length, which would change the bytes a backend reads back.
  if (ref.record.nonce.size() % 2 || ref.record.tag.size() % 2 || ref.record.params.size() % 2 ||
      ref.record.payload.size() % 2 || ref.exactEnvelope.size() % 2)
    bad("cannot write: Nonce, Authentication Tag, Backend Parameters, Payload and Envelope must have even lengths");

  std::uint8_t block = 0;
  for (unsigned b = 0x10; b <= 0xFF && block == 0; ++b)
    if (!blockInUse(dataset, static_cast<std::uint8_t>(b))) block = static_cast<std::uint8_t>(b);
  if (block == 0)
    throw CryptError(CryptErrorKind::MalformedObject, "no free private block in group 0077 for the key reference");

  std::vector<std::unique_ptr<DcmElement>> elements;
  elements.push_back(textElement<DcmLongString>(DcmTagKey(kKeyRefGroup, block), EVR_LO, kKeyRefCreator));  // (0077,00bb)
  elements.push_back(textElement<DcmLongString>(keyRefTag(block, kKeyRefBackendId), EVR_LO, ref.record.backendId));
  elements.push_back(textElement<DcmLongString>(keyRefTag(block, kKeyRefBackendVersion), EVR_LO, ref.record.backendVersion));
  elements.push_back(textElement<DcmLongString>(keyRefTag(block, kKeyRefKeyId), EVR_LO, ref.keyId));
  elements.push_back(textElement<DcmCodeString>(keyRefTag(block, kKeyRefKeyScope), EVR_CS, ref.keyScope));
  elements.push_back(textElement<DcmUniqueIdentifier>(keyRefTag(block, kKeyRefOriginalXfer), EVR_UI, ref.originalTransferSyntax));

  auto at = std::make_unique<DcmAttributeTag>(DcmTag(keyRefTag(block, kKeyRefProtectedElements), DcmVR(EVR_AT)));
  auto ul = std::make_unique<DcmUnsignedLong>(DcmTag(keyRefTag(block, kKeyRefProtectedLengths), DcmVR(EVR_UL)));
  for (std::size_t i = 0; i < ref.protectedElements.size(); ++i) {
    const std::uint32_t t = ref.protectedElements[i];
    if (at->putTagVal(DcmTagKey(static_cast<Uint16>(t >> 16), static_cast<Uint16>(t & 0xFFFF)), i).bad() ||
        ul->putUint32(ref.protectedLengths[i], i).bad())
      bad("cannot encode Protected Elements");
  }
  elements.push_back(std::move(at));
  elements.push_back(std::move(ul));
  elements.push_back(bytesElement(block, kKeyRefNonce, ref.record.nonce));
  elements.push_back(bytesElement(block, kKeyRefTag, ref.record.tag));
  elements.push_back(bytesElement(block, kKeyRefParams, ref.record.params));
  elements.push_back(textElement<DcmDateTime>(keyRefTag(block, kKeyRefEncryptedAt), EVR_DT, ref.encryptedAt));
  elements.push_back(textElement<DcmLongString>(keyRefTag(block, kKeyRefFormatVersionElement), EVR_LO,
                                                std::to_string(ref.formatVersion)));
  if (ref.formatVersion >= 2) elements.push_back(bytesElement(block, kKeyRefBoundDigest, ref.boundAttributesDigest));
  if (!ref.record.payload.empty()) elements.push_back(bytesElement(block, kKeyRefPayload, ref.record.payload));
  if (!ref.exactEnvelope.empty()) elements.push_back(bytesElement(block, kKeyRefEnvelope, ref.exactEnvelope));

  for (auto& e : elements) {
    if (dataset.insert(e.get(), OFFalse).bad()) {
      removeKeyReference(dataset);
      throw CryptError(CryptErrorKind::MalformedObject, "could not insert the key-reference block");
    }
    e.release();  // the dataset owns it now
  }
}

void removeKeyReference(DcmItem& dataset) {
  for (const std::uint8_t block : findKeyReferenceBlocks(dataset)) {
    std::vector<DcmTagKey> keys;
    for (const auto& [offset, e] : blockElements(dataset, block)) keys.push_back(keyRefTag(block, offset));
    keys.emplace_back(kKeyRefGroup, block);
    for (const auto& key : keys) dataset.findAndDeleteElement(key, OFFalse, OFFalse);
  }
  // A group length left alone in the group would describe nothing.
  bool othersInGroup = false;
  for (DcmObject* obj = dataset.nextInContainer(nullptr); obj != nullptr; obj = dataset.nextInContainer(obj))
    if (obj->getTag().getGroup() == kKeyRefGroup && obj->getTag().getElement() != 0) othersInGroup = true;
  if (!othersInGroup) dataset.findAndDeleteElement(DcmTagKey(kKeyRefGroup, 0x0000), OFFalse, OFFalse);
}

}  // namespace pacsgw::codecs
