#pragma once
// The PixelCipher contract every cipher backend implements, and the backend registry.
// No DICOM parsing and no LibTorch here: backends see byte ranges plus a pixel description.
#include "keystore/secret_bytes.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace pacsgw::codecs {

struct PixelLayout {
  std::uint16_t rows = 0;
  std::uint16_t columns = 0;
  std::uint16_t bitsAllocated = 0;
  std::uint16_t bitsStored = 0;
  std::uint16_t highBit = 0;
  std::uint16_t pixelRepresentation = 0;  // 0 unsigned, 1 two's complement
  std::uint16_t samplesPerPixel = 1;
  std::uint16_t planarConfiguration = 0;
  std::uint32_t numberOfFrames = 1;
  std::string photometricInterpretation;  // MONOCHROME1, MONOCHROME2, RGB, ...
  bool encapsulated = false;  // true: segments are compressed fragments, opaque bytes
  bool floatingPoint = false; // true: Float / Double Float Pixel Data
};

// A run of bytes transformed in place; a cipher never changes its length.
struct ByteRange {
  std::uint8_t* data = nullptr;
  std::size_t size = 0;
};

// Native pixel data: one segment per protected element holding all frames, sample values in
// little-endian byte order. Encapsulated pixel data: one segment per fragment (offset table excluded).
struct PixelBuffer {
  PixelLayout layout;
  std::vector<ByteRange> segments;
  std::size_t totalBytes() const {
    std::size_t n = 0;
    for (const auto& s : segments) n += s.size;
    return n;
  }
};

// Everything public a backend needs to decrypt, carried in the key-reference tags.
struct CipherRecord {
  std::string backendId;
  std::string backendVersion;
  std::vector<std::uint8_t> nonce;   // aes-256-gcm: 12 random bytes
  std::vector<std::uint8_t> tag;     // authentication tag; aes-256-gcm: 16 bytes
  std::vector<std::uint8_t> params;  // backend-specific public parameters, may be empty
  // Backend payload: what a backend whose output is not a same-size transform of the pixels carries
  // besides its cipher image (a neural backend's encrypted latent, say). Stored in (0077,xx0E); even
  // length; the backend authenticates it (tampering -> AuthenticationError). Empty for most backends.
  std::vector<std::uint8_t> payload;
};

enum class Device { Cpu, Cuda };

struct BackendInfo {
  std::string id;
  std::string version;
  bool lossless = true;
  // Declared loss: the largest difference between an original and a decrypted sample value (0 when lossless).
  // A lossy backend's decrypt() returns its reconstruction; the codecs layer adds the exact-retrieval
  // envelope (codecs/exact_retrieval.h) so that authorised retrieval is still bit-exact.
  std::uint32_t maxSampleError = 0;
  bool authenticated = true;
  bool supportsEncapsulated = false;  // can protect compressed fragments as opaque bytes
  bool supportsFloat = false;         // Float / Double Float Pixel Data
  std::string layouts;                // human-readable list of supported pixel layouts
  std::string summary;                // one line for `pacsgw` help and logs
  // Lossy backends: Lossy Image Compression Method (0028,2114) written on an object decrypted without
  // its envelope (CS: upper case, digits, '_', at most 16 characters).
  std::string lossyMethod;
};

struct CipherOptions {
  std::string device = "cpu";  // cpu | cuda | auto
  // Neural backends: the model file to use instead of the shipped one (codecs/neural/model_store.h).
  std::string model;
};

class CipherError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// The ciphertext, its tag or its AAD was altered, or the key is wrong. Pixels are then unspecified.
class AuthenticationError : public CipherError {
 public:
  using CipherError::CipherError;
};
class UnsupportedLayoutError : public CipherError {
 public:
  using CipherError::CipherError;
};

class PixelCipher {
 public:
  virtual ~PixelCipher() = default;
  virtual const BackendInfo& info() const = 0;
  virtual Device device() const { return Device::Cpu; }
  // Throws UnsupportedLayoutError if this backend cannot protect `layout` losslessly.
  virtual void checkSupported(const PixelLayout& layout) const = 0;
  // Encrypts every segment in place under the 32-byte data key, binding `aad`; returns what
  // decryption needs. Must use fresh randomness per call (never reuse a nonce under one key).
  virtual CipherRecord encrypt(PixelBuffer& pixels, const SecretBytes& dataKey,
                               const std::vector<std::uint8_t>& aad) = 0;
  // Verifies and decrypts in place. Throws AuthenticationError on any mismatch.
  virtual void decrypt(PixelBuffer& pixels, const SecretBytes& dataKey,
                       const std::vector<std::uint8_t>& aad, const CipherRecord& record) = 0;
};

using CipherFactory = std::function<std::unique_ptr<PixelCipher>(const CipherOptions&)>;

// Backends known to this build, from the backend table (codecs/backend_table.h): "aes-256-gcm" always,
// the research backends when their dependencies were built.
std::vector<std::string> availableBackends();
// Throws CipherError naming the available backends if `id` is unknown.
std::unique_ptr<PixelCipher> makeCipher(const std::string& id, const CipherOptions& options = {});
// Resolves the requested device string ("auto" picks cuda when available) for tensor backends.
Device resolveDevice(const std::string& requested, bool cudaAvailable);

}  // namespace pacsgw::codecs
