// Pixel data access: the pixel description and in-place views of native and encapsulated pixel data.
#include "codecs/pixel_access.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcstack.h>

#include <string>

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "pacsgw codecs need a little-endian host: native samples are handed to ciphers in host order"
#endif

namespace pacsgw::codecs {
namespace {

[[noreturn]] void malformed(const std::string& message) {
  throw CryptError(CryptErrorKind::MalformedObject, message);
}

struct PresentElements {
  DcmElement* pixelData = nullptr;
  DcmElement* floatPixelData = nullptr;
  DcmElement* doubleFloatPixelData = nullptr;
  int count() const { return (pixelData ? 1 : 0) + (floatPixelData ? 1 : 0) + (doubleFloatPixelData ? 1 : 0); }
};

// Top level only: an Icon Image Sequence has its own (7FE0,0010) that is not the image.
PresentElements findPixelElements(DcmItem& dataset) {
  PresentElements p;
  DcmElement* e = nullptr;
  if (dataset.findAndGetElement(DCM_PixelData, e, OFFalse).good()) p.pixelData = e;
  if (dataset.findAndGetElement(DCM_FloatPixelData, e, OFFalse).good()) p.floatPixelData = e;
  if (dataset.findAndGetElement(DCM_DoubleFloatPixelData, e, OFFalse).good()) p.doubleFloatPixelData = e;
  return p;
}

bool present(DcmItem& dataset, const DcmTagKey& key) {
  DcmElement* e = nullptr;
  return dataset.findAndGetElement(key, e, OFFalse).good() && e != nullptr;
}

std::uint16_t readUS(DcmItem& dataset, const DcmTagKey& key, const char* name, bool required,
                     std::uint16_t fallback) {
  if (!present(dataset, key)) {
    if (required) malformed(std::string(name) + " is missing");
    return fallback;
  }
  Uint16 v = 0;
  if (dataset.findAndGetUint16(key, v, 0, OFFalse).bad()) {
    if (required) malformed(std::string(name) + " has no valid value");
    return fallback;
  }
  return v;
}

std::uint32_t readNumberOfFrames(DcmItem& dataset) {
  DcmElement* e = nullptr;
  if (dataset.findAndGetElement(DCM_NumberOfFrames, e, OFFalse).bad() || e == nullptr || e->getVM() == 0)
    return 1;
  Sint32 frames = 0;
  if (e->getSint32(frames, 0).bad() || frames < 1) malformed("Number of Frames is not a positive integer");
  return static_cast<std::uint32_t>(frames);
}

bool isValidBitsAllocated(std::uint16_t bits) { return bits == 1 || (bits % 8 == 0 && bits >= 8 && bits <= 64); }

// rows * columns * samples * frames * bits / 8, rounded up; 0 if it does not fit in 64 bits.
std::uint64_t expectedNativeBytes(const PixelLayout& l, std::uint16_t bits) {
  std::uint64_t n = 1;
  for (std::uint64_t f : {std::uint64_t{l.rows}, std::uint64_t{l.columns}, std::uint64_t{l.samplesPerPixel},
                          std::uint64_t{l.numberOfFrames}, std::uint64_t{bits}}) {
    if (__builtin_mul_overflow(n, f, &n)) return 0;
  }
  return (n + 7) / 8;
}

std::string describe(const PixelLayout& l, std::uint16_t bits) {
  return std::to_string(l.rows) + " x " + std::to_string(l.columns) + " x " + std::to_string(l.samplesPerPixel) +
         " samples x " + std::to_string(l.numberOfFrames) + " frames x " + std::to_string(bits) + " bits";
}

// One native element as a single segment; a truncated element is refused, never encrypted.
void addNativeSegment(detail::LocatedPixels& out, std::uint32_t tag, const char* name, std::uint8_t* data,
                      std::uint32_t length, std::uint16_t bits) {
  const PixelLayout& l = out.buffer.layout;
  const std::uint64_t expected = expectedNativeBytes(l, bits);
  if (expected == 0) malformed(std::string(name) + ": the pixel module describes an impossible size");
  if (length == 0 || data == nullptr) malformed(std::string(name) + " is empty");
  if (length % 2 != 0) malformed(std::string(name) + " has an odd length");
  if (length < expected)
    malformed(std::string(name) + " holds " + std::to_string(length) + " bytes but " + describe(l, bits) +
              " need " + std::to_string(expected) + ": truncated object refused");
  out.buffer.segments.push_back(ByteRange{data, length});
  out.elementTags.push_back(tag);
  out.elementLengths.push_back(length);
}

// Keeps exactly one representation of (7FE0,0010): the one that writing in `xfer` would emit.
DcmPixelSequence* selectEncapsulated(DcmPixelData& pd, E_TransferSyntax xfer) {
  E_TransferSyntax type = EXS_Unknown;
  const DcmRepresentationParameter* param = nullptr;
  pd.getCurrentRepresentationKey(type, param);
  if (type == xfer) {
    pd.removeAllButCurrentRepresentations();
  } else {
    pd.getOriginalRepresentationKey(type, param);
    if (type != xfer) malformed("Pixel Data is not encoded in the declared transfer syntax");
    pd.removeAllButOriginalRepresentations();
  }
  pd.getCurrentRepresentationKey(type, param);
  DcmPixelSequence* seq = nullptr;
  if (type != xfer || pd.getEncapsulatedRepresentation(type, param, seq).bad() || seq == nullptr)
    malformed("Pixel Data is not encoded in the declared transfer syntax");
  return seq;
}

void locateEncapsulated(detail::LocatedPixels& out, DcmPixelData& pd, E_TransferSyntax xfer) {
  DcmPixelSequence* seq = selectEncapsulated(pd, xfer);
  const unsigned long items = seq->card();
  // Item 0 is the Basic Offset Table: it holds offsets only and stays clear.
  if (items < 2) malformed("encapsulated Pixel Data has no fragments");
  std::uint64_t total = 0;
  for (unsigned long i = 1; i < items; ++i) {
    DcmPixelItem* item = nullptr;
    if (seq->getItem(item, i).bad() || item == nullptr) malformed("encapsulated Pixel Data: unreadable fragment");
    Uint8* data = nullptr;
    if (item->getUint8Array(data).bad()) malformed("encapsulated Pixel Data: unreadable fragment");
    const Uint32 length = item->getLengthField();
    if (length > 0 && data == nullptr) malformed("encapsulated Pixel Data: unreadable fragment");
    out.buffer.segments.push_back(ByteRange{data, length});
    out.fragmentLengths.push_back(length);
    total += length;
  }
  if (total == 0) malformed("encapsulated Pixel Data has only empty fragments");
  if (total > 0xFFFFFFFFu) malformed("encapsulated Pixel Data exceeds 4 GiB");
  out.elementTags.push_back(detail::kTagPixelData);
  out.elementLengths.push_back(static_cast<std::uint32_t>(total));
}

void locateNative(detail::LocatedPixels& out, DcmPixelData& pd) {
  // No uncompressed value: compressed fragments inside a native transfer syntax, which no reader could use.
  if (!pd.hasRepresentation(EXS_LittleEndianExplicit))
    malformed("Pixel Data is encapsulated but the transfer syntax is native");
  DcmStack unused;
  if (pd.chooseRepresentation(EXS_LittleEndianExplicit, nullptr, unused).bad())
    malformed("native Pixel Data is not accessible");
  pd.removeAllButCurrentRepresentations();
  // For OW, DCMTK converts the value to little-endian byte order here, whatever the host.
  Uint8* data = nullptr;
  if (pd.getUint8Array(data).bad()) malformed("native Pixel Data is not accessible");
  addNativeSegment(out, detail::kTagPixelData, "Pixel Data", data, pd.getLengthField(),
                   out.buffer.layout.bitsAllocated);
}

}  // namespace

namespace {

// The pixel module of `dataset` for the one pixel data element `elements` names.
PixelLayout layoutFromModule(DcmItem& dataset, const PresentElements& elements, E_TransferSyntax xfer) {
  PixelLayout l;
  l.floatingPoint = elements.pixelData == nullptr;
  l.encapsulated = !l.floatingPoint && DcmXfer(xfer).isEncapsulated();
  l.rows = readUS(dataset, DCM_Rows, "Rows", true, 0);
  l.columns = readUS(dataset, DCM_Columns, "Columns", true, 0);
  l.bitsAllocated = readUS(dataset, DCM_BitsAllocated, "Bits Allocated", true, 0);
  l.samplesPerPixel = readUS(dataset, DCM_SamplesPerPixel, "Samples per Pixel", false, 1);
  // Float Pixel Data has no Bits Stored, High Bit or Pixel Representation.
  l.bitsStored = readUS(dataset, DCM_BitsStored, "Bits Stored", false, 0);
  l.highBit = readUS(dataset, DCM_HighBit, "High Bit", false, 0);
  l.pixelRepresentation = readUS(dataset, DCM_PixelRepresentation, "Pixel Representation", false, 0);
  l.planarConfiguration = readUS(dataset, DCM_PlanarConfiguration, "Planar Configuration", false, 0);
  l.numberOfFrames = readNumberOfFrames(dataset);
  OFString photometric;
  if (dataset.findAndGetOFString(DCM_PhotometricInterpretation, photometric, 0, OFFalse).good())
    l.photometricInterpretation = photometric.c_str();

  if (l.rows == 0 || l.columns == 0) malformed("Rows and Columns must be positive");
  if (l.samplesPerPixel == 0) malformed("Samples per Pixel must be positive");
  if (!isValidBitsAllocated(l.bitsAllocated)) malformed("Bits Allocated must be 1 or a multiple of 8 up to 64");
  if (elements.floatPixelData && l.bitsAllocated != 32) malformed("Float Pixel Data needs Bits Allocated 32");
  if (elements.doubleFloatPixelData && l.bitsAllocated != 64)
    malformed("Double Float Pixel Data needs Bits Allocated 64");
  if (l.bitsStored > l.bitsAllocated) malformed("Bits Stored exceeds Bits Allocated");
  if (l.bitsStored > 0 && l.highBit >= l.bitsAllocated) malformed("High Bit lies outside Bits Allocated");
  if (l.pixelRepresentation > 1) malformed("Pixel Representation must be 0 or 1");
  if (l.planarConfiguration > 1) malformed("Planar Configuration must be 0 or 1");
  return l;
}

}  // namespace

PixelLayout readPixelLayout(DcmItem& dataset, E_TransferSyntax xfer) {
  const PresentElements elements = findPixelElements(dataset);
  if (elements.count() == 0) throw CryptError(CryptErrorKind::NoPixelData, "the object has no pixel data");
  // PS3.3 C.7.6.3: exactly one of them; with two, the pixel module would describe only one.
  if (elements.count() > 1) malformed("more than one of Pixel Data, Float Pixel Data, Double Float Pixel Data");
  return layoutFromModule(dataset, elements, xfer);
}

namespace detail {

PixelLayout readNativePixelDataLayout(DcmItem& header, E_TransferSyntax xfer) {
  if (DcmXfer(xfer).isEncapsulated()) malformed("the transfer syntax is not native");
  const PresentElements elements = findPixelElements(header);
  if (elements.count() != 0) malformed("more than one of Pixel Data, Float Pixel Data, Double Float Pixel Data");
  PresentElements pixelDataOnly;
  DcmPixelData placeholder(DCM_PixelData);  // stands for the element that is still arriving
  pixelDataOnly.pixelData = &placeholder;
  return layoutFromModule(header, pixelDataOnly, xfer);
}

void requireNativePixelDataLength(const PixelLayout& layout, std::uint32_t length) {
  std::uint8_t notNull = 0;
  detail::LocatedPixels unused;
  unused.buffer.layout = layout;
  addNativeSegment(unused, kTagPixelData, "Pixel Data", &notNull, length, layout.bitsAllocated);
}

void requireLittleEndianHost() {
  if (gLocalByteOrder != EBO_LittleEndian)
    throw CryptError(CryptErrorKind::UnsupportedLayout, "pixel data encryption needs a little-endian host");
}

void requireUsableTransferSyntax(E_TransferSyntax xfer) {
  // EXS_BigEndianImplicit is a DCMTK-internal syntax without a standard UID.
  const DcmXfer x(xfer);
  if (x.getXfer() == EXS_Unknown || xfer == EXS_BigEndianImplicit || x.getXferID() == nullptr ||
      *x.getXferID() == '\0')
    malformed("unsupported transfer syntax");
}

LocatedPixels locatePixelData(DcmItem& dataset, E_TransferSyntax xfer) {
  requireLittleEndianHost();
  requireUsableTransferSyntax(xfer);
  LocatedPixels out;
  out.buffer.layout = readPixelLayout(dataset, xfer);
  const PresentElements elements = findPixelElements(dataset);

  if (elements.pixelData != nullptr) {
    auto* pd = dynamic_cast<DcmPixelData*>(elements.pixelData);
    if (pd == nullptr) malformed("Pixel Data has an unexpected value representation");
    if (out.buffer.layout.encapsulated)
      locateEncapsulated(out, *pd, xfer);
    else
      locateNative(out, *pd);
  } else if (elements.floatPixelData != nullptr) {
    DcmElement* e = elements.floatPixelData;
    Float32* values = nullptr;  // host order, i.e. little-endian here
    if (e->getVR() != EVR_OF || e->getFloat32Array(values).bad())
      malformed("Float Pixel Data is not an OF element");
    addNativeSegment(out, kTagFloatPixelData, "Float Pixel Data", reinterpret_cast<std::uint8_t*>(values),
                     e->getLengthField(), 32);
  } else {
    DcmElement* e = elements.doubleFloatPixelData;
    Float64* values = nullptr;
    if (e->getVR() != EVR_OD || e->getFloat64Array(values).bad())
      malformed("Double Float Pixel Data is not an OD element");
    addNativeSegment(out, kTagDoubleFloatPixelData, "Double Float Pixel Data",
                     reinterpret_cast<std::uint8_t*>(values), e->getLengthField(), 64);
  }
  return out;
}

namespace {

std::string requiredUid(DcmItem& dataset, const DcmTagKey& key, const char* name) {
  OFString value;
  if (dataset.findAndGetOFStringArray(key, value, OFFalse).bad() || value.empty())
    throw CryptError(CryptErrorKind::MalformedObject, std::string(name) + " is missing");
  return value.c_str();
}

}  // namespace

AadFields nativePixelDataAadFields(DcmItem& header, const KeyReference& ref, const PixelLayout& layout) {
  AadFields fields;
  fields.sopInstanceUid = requiredUid(header, DCM_SOPInstanceUID, "SOP Instance UID");
  fields.sopClassUid = requiredUid(header, DCM_SOPClassUID, "SOP Class UID");
  fields.originalTransferSyntax = ref.originalTransferSyntax;
  fields.layout = layout;
  fields.backendId = ref.record.backendId;
  fields.backendVersion = ref.record.backendVersion;
  fields.keyId = ref.keyId;
  fields.keyScope = ref.keyScope;
  fields.elementTags = ref.protectedElements;
  fields.elementLengths = ref.protectedLengths;
  return fields;
}

}  // namespace detail
}  // namespace pacsgw::codecs
