// The backend table, filled from the entries registered in codecs/CMakeLists.txt (generated list), and the
// registry functions of pixel_cipher.h on top of it.
#include "codecs/backend_table.h"

#include <algorithm>
#include <cctype>

// Declares every registered entry function, then lists them.
#define PACSGW_CIPHER_BACKEND(entry) \
  namespace pacsgw::codecs {         \
  const BackendEntry& entry();       \
  }
#include "codecs/generated/backend_entries.inc"
#undef PACSGW_CIPHER_BACKEND

namespace pacsgw::codecs {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string joined(const std::vector<std::string>& ids) {
  std::string out;
  for (const auto& id : ids) out += (out.empty() ? "" : ", ") + id;
  return out;
}

}  // namespace

const std::vector<const BackendEntry*>& backendTable() {
  static const std::vector<const BackendEntry*> table = [] {
    std::vector<const BackendEntry*> t{
#define PACSGW_CIPHER_BACKEND(entry) &entry(),
#include "codecs/generated/backend_entries.inc"
#undef PACSGW_CIPHER_BACKEND
    };
    for (std::size_t i = 0; i < t.size(); ++i)
      for (std::size_t j = 0; j < i; ++j)
        if (t[i]->info.id == t[j]->info.id) throw CipherError("backend table: id '" + t[i]->info.id + "' twice");
    return t;
  }();
  return table;
}

const BackendEntry* findBackend(const std::string& id) {
  for (const BackendEntry* e : backendTable())
    if (e->info.id == id) return e;
  return nullptr;
}

std::vector<std::string> availableBackends() {
  std::vector<std::string> ids;
  for (const BackendEntry* e : backendTable()) ids.push_back(e->info.id);
  return ids;
}

std::unique_ptr<PixelCipher> makeCipher(const std::string& id, const CipherOptions& options) {
  const std::string device = lower(options.device);
  if (device != "cpu" && device != "cuda" && device != "auto")
    throw CipherError("unknown device '" + options.device + "' (expected cpu, cuda or auto)");
  const BackendEntry* entry = findBackend(id);
  if (entry == nullptr)
    throw CipherError("unknown cipher backend '" + id + "' (available: " + joined(availableBackends()) + ")");
  CipherOptions normalised = options;
  normalised.device = device;
  return entry->make(normalised);
}

}  // namespace pacsgw::codecs
