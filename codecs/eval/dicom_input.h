#pragma once
// Reading evaluation inputs: real DICOM files, decompressed to native little-endian samples.
#include "codecs/pixel_cipher.h"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pacsgw::eval {

struct EvalImage {
  std::string path;
  std::string sopClassUid;
  std::string modality;
  std::string originalTransferSyntax;  // UID as stored
  codecs::PixelLayout layout;          // of the native representation
  std::vector<std::uint8_t> bytes;     // exactly rows * columns * samples * frames * bits / 8 bytes
  // The file's first Window Center / Width (top-level, linear VOI function of PS3.3 C.11.2.1.2.1) as
  // (lo, hi) in stored units, i.e. taken back through Rescale Slope / Intercept; absent when not given.
  std::optional<std::pair<double, double>> dicomWindow;
};

// Registers DCMTK's RLE, JPEG and JPEG-LS decoders for the lifetime of the object.
class DecoderRegistration {
 public:
  DecoderRegistration();
  ~DecoderRegistration();
  DecoderRegistration(const DecoderRegistration&) = delete;
  DecoderRegistration& operator=(const DecoderRegistration&) = delete;
};

// Loads one file; compressed pixel data is decoded to native first. Throws std::runtime_error with a
// message naming the file (unreadable, no pixel data, float data, 32-bit samples, undecodable...).
EvalImage loadDicomImage(const std::string& path);

// Expands the INPUT arguments: files as given, directories recursively (regular files, sorted).
std::vector<std::string> expandInputs(const std::vector<std::string>& inputs);

}  // namespace pacsgw::eval
