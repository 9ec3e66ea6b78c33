// Model lookup and hashing for neural backends.
#include "codecs/neural/model_store.h"

#include "codecs/pixel_cipher.h"

#include <openssl/evp.h>

#include <filesystem>
#include <fstream>

#ifndef PACSGW_MODEL_INSTALL_DIR
#define PACSGW_MODEL_INSTALL_DIR "/usr/local/share/pacsgw/models"
#endif
#ifndef PACSGW_MODEL_SOURCE_DIR
#define PACSGW_MODEL_SOURCE_DIR ""
#endif

namespace pacsgw::codecs::neural {

std::vector<std::string> shippedModelCandidates(const std::string& backendId) {
  std::vector<std::string> out{std::string(PACSGW_MODEL_INSTALL_DIR) + "/" + backendId + ".pt"};
  const std::string source = PACSGW_MODEL_SOURCE_DIR;
  if (!source.empty()) out.push_back(source + "/" + backendId + ".pt");
  return out;
}

std::string resolveModelPath(const std::string& backendId, const std::string& configured) {
  if (!configured.empty()) return configured;
  std::string looked;
  for (const std::string& candidate : shippedModelCandidates(backendId)) {
    std::error_code ec;
    if (std::filesystem::is_regular_file(candidate, ec)) return candidate;
    looked += (looked.empty() ? "" : ", ") + candidate;
  }
  throw CipherError("backend " + backendId + ": no model found (looked at " + looked +
                    "); install pacsgw's models or set cipher.model");
}

std::size_t modelFileBytes(const std::string& backendId, const std::string& configured) {
  return readModelFile(resolveModelPath(backendId, configured)).bytes.size();
}

ModelFile readModelFile(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) throw CipherError("model " + path + ": " + ec.message());
  if (size == 0 || size > kMaxModelBytes)
    throw CipherError("model " + path + ": " + std::to_string(size) + " bytes, expected 1 to " +
                      std::to_string(kMaxModelBytes));
  ModelFile m;
  m.path = path;
  m.bytes.resize(static_cast<std::size_t>(size));
  std::ifstream in(path, std::ios::binary);
  if (!in.read(reinterpret_cast<char*>(m.bytes.data()), static_cast<std::streamsize>(m.bytes.size())))
    throw CipherError("model " + path + ": cannot be read");
  unsigned int len = 0;
  if (EVP_Digest(m.bytes.data(), m.bytes.size(), m.sha256.data(), &len, EVP_sha256(), nullptr) != 1 ||
      len != m.sha256.size())
    throw CipherError("model " + path + ": SHA-256 failed");
  return m;
}

std::string hex(const ModelDigest& digest) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (std::uint8_t b : digest) s += {digits[b >> 4], digits[b & 15]};
  return s;
}

}  // namespace pacsgw::codecs::neural
