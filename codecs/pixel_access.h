#pragma once
// Private to codecs/: in-place access to the top-level pixel data of a DICOM dataset.
#include "codecs/aad.h"
#include "codecs/dicom_crypt.h"

#include <cstdint>
#include <vector>

namespace pacsgw::codecs::detail {

constexpr std::uint32_t kTagFloatPixelData = 0x7FE00008;
constexpr std::uint32_t kTagDoubleFloatPixelData = 0x7FE00009;
constexpr std::uint32_t kTagPixelData = 0x7FE00010;

struct LocatedPixels {
  PixelBuffer buffer;                           // segments point into the dataset's own memory
  std::vector<std::uint32_t> elementTags;       // protected elements, 0xGGGGEEEE
  std::vector<std::uint32_t> elementLengths;    // bytes protected per element
  std::vector<std::uint32_t> fragmentLengths;   // encapsulated only: one per fragment, offset table excluded
};

// Finds the pixel data of `dataset` as encoded in `xfer`, checks it against the pixel module and returns
// views into it. Redundant representations DCMTK may hold (a decoded copy of compressed data, an encoded
// copy of native data) are dropped first so that no clear copy survives next to the ciphertext.
// The views stay valid until the dataset is modified. Throws CryptError.
LocatedPixels locatePixelData(DcmItem& dataset, E_TransferSyntax xfer);

// The pixel module of an object whose native Pixel Data has not arrived yet: `header` holds the elements
// before it. Checked as readPixelLayout checks it. Throws CryptError.
PixelLayout readNativePixelDataLayout(DcmItem& header, E_TransferSyntax xfer);
// Refuses a native Pixel Data length that is odd, empty or shorter than the pixel module needs, as
// locatePixelData does. Throws CryptError(MalformedObject).
void requireNativePixelDataLength(const PixelLayout& layout, std::uint32_t length);

// Native sample bytes are handed to ciphers in little-endian order, which DCMTK gives us in host order
// for OF/OD: refuse to run anywhere else. Throws CryptError(UnsupportedLayout).
void requireLittleEndianHost();

// Transfer syntaxes we can bind to: known to DCMTK and carrying a real UID. Throws CryptError(MalformedObject).
void requireUsableTransferSyntax(E_TransferSyntax xfer);

// The associated data of one native Pixel Data element protected as `ref` records it, for the streaming
// paths. formatVersion and boundAttributes are left to the caller (checked on opening, computed on
// sealing). Throws CryptError(MalformedObject) when the SOP Instance or Class UID is missing.
AadFields nativePixelDataAadFields(DcmItem& header, const KeyReference& ref, const PixelLayout& layout);

}  // namespace pacsgw::codecs::detail
