#pragma once
// Where a neural backend's model comes from, and which model it is. No LibTorch here.
//
// Lookup, first match wins (docs/ciphers.md, "Neural backends"):
//   1. cipher.model (CipherOptions::model), when set: that file, nothing else;
//   2. <install prefix>/share/pacsgw/models/<backend id>.pt (installed with pacsgw);
//   3. <source tree>/models/<backend id>.pt (a build tree run from its checkout).
// The model's SHA-256 is recorded in every object's backend parameters; decryption refuses to use a model
// with another digest (its reconstruction would differ).
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace pacsgw::codecs::neural {

using ModelDigest = std::array<std::uint8_t, 32>;

struct ModelFile {
  std::string path;
  std::vector<std::uint8_t> bytes;  // the whole file (models are a few MB at most)
  ModelDigest sha256{};
};

// Largest model file read (a forged or wrong path cannot make the gateway read gigabytes).
constexpr std::size_t kMaxModelBytes = std::size_t{256} << 20;

// Places searched for `backendId`'s shipped model, in order (for messages and `pacsgw train`).
std::vector<std::string> shippedModelCandidates(const std::string& backendId);
// The model file to use: `configured` if not empty, else the first shipped candidate that exists.
// Throws CipherError naming every place looked at.
std::string resolveModelPath(const std::string& backendId, const std::string& configured);
// Reads and hashes a model file. Throws CipherError (missing, unreadable, too large).
ModelFile readModelFile(const std::string& path);
// Size of the model file `backendId` uses with `configured` (pacsgw eval's model_size_bytes).
std::size_t modelFileBytes(const std::string& backendId, const std::string& configured);
std::string hex(const ModelDigest& digest);

}  // namespace pacsgw::codecs::neural
