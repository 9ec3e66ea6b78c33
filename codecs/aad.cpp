// Canonical associated data: fixed field order, every field length-prefixed, integers little-endian,
// so that no two different inputs can produce the same bytes.
#include "codecs/aad.h"

namespace pacsgw::codecs::detail {
namespace {

class Writer {
 public:
  void u16(std::uint16_t v) { putLe(v, 2); }
  void u32(std::uint32_t v) { putLe(v, 4); }

  void field(const std::string& text) {
    u32(checkedLength(text.size()));
    out_.insert(out_.end(), text.begin(), text.end());
  }
  void field16(std::uint16_t v) {
    u32(2);
    u16(v);
  }
  void field32(std::uint32_t v) {
    u32(4);
    u32(v);
  }
  // Length of a field whose body is written next with u16/u32.
  void header(std::size_t bodyBytes) { u32(checkedLength(bodyBytes)); }

  std::vector<std::uint8_t> take() { return std::move(out_); }

 private:
  static std::uint32_t checkedLength(std::size_t n) {
    if (n > 0xFFFFFFFFu) throw CipherError("associated data field too long");
    return static_cast<std::uint32_t>(n);
  }
  void putLe(std::uint32_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  std::vector<std::uint8_t> out_;
};

}  // namespace

std::vector<std::uint8_t> buildAad(const AadFields& f) {
  if (f.elementTags.size() != f.elementLengths.size())
    throw CipherError("associated data: element tags and lengths differ in number");
  const PixelLayout& l = f.layout;
  if (f.formatVersion < 1 || f.formatVersion > 3) throw CipherError("associated data: unknown format version");
  Writer w;
  // The label carries the format, so relabelling an object as another format changes the associated data.
  w.field(f.formatVersion == 1 ? kAadLabel : f.formatVersion == 2 ? kAadLabelV2 : kAadLabelV3);
  w.field(f.sopInstanceUid);
  w.field(f.sopClassUid);
  w.field(f.originalTransferSyntax);
  w.field16(l.rows);
  w.field16(l.columns);
  w.field16(l.samplesPerPixel);
  w.field(l.photometricInterpretation);
  w.field16(l.bitsAllocated);
  w.field16(l.bitsStored);
  w.field16(l.highBit);
  w.field16(l.pixelRepresentation);
  w.field16(l.planarConfiguration);
  w.field32(l.numberOfFrames);
  w.field(f.backendId);
  w.field(f.backendVersion);
  w.field(f.keyId);
  w.field(f.keyScope);
  // Protected elements: count, then (tag, length) pairs.
  w.header(4 + 8 * f.elementTags.size());
  w.u32(static_cast<std::uint32_t>(f.elementTags.size()));
  for (std::size_t i = 0; i < f.elementTags.size(); ++i) {
    w.u32(f.elementTags[i]);
    w.u32(f.elementLengths[i]);
  }
  // Fragments: count (0 for native pixel data), then each fragment length.
  w.header(4 + 4 * f.fragmentLengths.size());
  w.u32(static_cast<std::uint32_t>(f.fragmentLengths.size()));
  for (std::uint32_t len : f.fragmentLengths) w.u32(len);
  if (f.formatVersion >= 2) w.field(std::string(f.boundAttributes.begin(), f.boundAttributes.end()));
  return w.take();
}

}  // namespace pacsgw::codecs::detail
