#pragma once
// How many bytes an object's pixel data takes once decoded, from the attributes that describe it.
// Decoding allocates what the object claims: callers check this against kMaxDecodedPixelBytes first,
// so one small compressed object cannot claim gigabytes.

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcitem.h>

namespace pacsgw::codecs {

constexpr unsigned long long kMaxDecodedPixelBytes = 1ULL << 30;

inline unsigned long long decodedPixelBytes(DcmItem& dataset) {
  Uint16 rows = 0, columns = 0, samples = 1, bitsAllocated = 0;
  Sint32 frames = 1;
  dataset.findAndGetUint16(DCM_Rows, rows);
  dataset.findAndGetUint16(DCM_Columns, columns);
  dataset.findAndGetUint16(DCM_SamplesPerPixel, samples);
  dataset.findAndGetUint16(DCM_BitsAllocated, bitsAllocated);
  dataset.findAndGetSint32(DCM_NumberOfFrames, frames);
  return static_cast<unsigned long long>(rows) * columns * samples * ((bitsAllocated + 7u) / 8u) *
         static_cast<unsigned long long>(frames < 1 ? 1 : frames);
}

}  // namespace pacsgw::codecs
