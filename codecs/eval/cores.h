#pragma once
// Deterministic "cores" of the backends, for the measurements that need the same key and nonce twice
// (the papers' differential and key-sensitivity tests), decryption without verification (the papers'
// wrong-key, noise and cropping figures) and the raw key streams (NIST tests). The gateway never uses
// these; each core is checked against its backend before its numbers are trusted.
#include "codecs/pixel_cipher.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace pacsgw::eval {

class DeterministicCore {
 public:
  virtual ~DeterministicCore() = default;
  virtual std::string description() const = 0;
  // Nonce bytes for encryptWithNonce (the backend's nonce length).
  virtual std::size_t nonceBytes() const = 0;
  virtual codecs::CipherRecord encryptWithNonce(codecs::PixelBuffer& pixels, const SecretBytes& key,
                                                const std::vector<std::uint8_t>& aad,
                                                const std::vector<std::uint8_t>& nonce) = 0;
  // Inverts the cipher with `key` without checking anything (wrong key or damage gives wrong pixels).
  virtual void decryptUnverified(codecs::PixelBuffer& pixels, const SecretBytes& key,
                                 const std::vector<std::uint8_t>& aad, const codecs::CipherRecord& record) = 0;
  // Named key streams of the object `record` describes, `bits` bits each (MSB first per byte).
  struct Stream {
    std::string name;
    std::vector<std::uint8_t> bytes;
  };
  virtual std::vector<Stream> keyStreams(const SecretBytes& key, const codecs::CipherRecord& record,
                                         std::size_t bits) = 0;
  // The paper's cipher without the product's plaintext-dependent keys, if the backend has such a mode:
  // returns false when not applicable.
  virtual bool encryptLayersOnly(codecs::PixelBuffer&, const SecretBytes&, const std::vector<std::uint8_t>&,
                                 const std::vector<std::uint8_t>&) {
    return false;
  }
  // Milliseconds spent in the per-object decoy generator by the last call on this thread (0 if none).
  virtual double lastGeneratorMs() const { return 0; }
};

// A backend's evaluation core, named on its line of the backend table (codecs/CMakeLists.txt) and defined
// in a research library (e.g. codecs/chaos/research/).
struct EvalCoreEntry {
  std::unique_ptr<DeterministicCore> (*make)(const std::string& device) = nullptr;
  void (*limitThreads)(int threads) = nullptr;  // process-wide tensor threads; nullptr if none
};

// Backends of this build that have an evaluation core.
std::vector<std::string> backendsWithCores();

// nullptr when the backend has no deterministic core here.
std::unique_ptr<DeterministicCore> makeDeterministicCore(const std::string& backendId, const std::string& device);

// Limits the backends' tensor threads (no-op without tensor backends); for single-core measurements.
void limitTensorThreads(int threads);

}  // namespace pacsgw::eval
