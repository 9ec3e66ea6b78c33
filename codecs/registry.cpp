// The backend registry: which PixelCipher implementations this build offers.
#include "codecs/aes_gcm.h"
#include "codecs/pixel_cipher.h"

#ifdef PACSGW_WITH_TORCH
#include "codecs/chaos/chaos_vpd.h"
#endif

#include <algorithm>
#include <cctype>

namespace pacsgw::codecs {
namespace {

constexpr const char* kChaosVpdId = "chaos-vpd";

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

std::vector<std::string> availableBackends() {
  std::vector<std::string> ids{detail::kAesGcmId};
#ifdef PACSGW_WITH_TORCH
  ids.emplace_back(kChaosVpdId);
#endif
  return ids;
}

std::unique_ptr<PixelCipher> makeCipher(const std::string& id, const CipherOptions& options) {
  const std::string device = lower(options.device);
  if (device != "cpu" && device != "cuda" && device != "auto")
    throw CipherError("unknown device '" + options.device + "' (expected cpu, cuda or auto)");
  // AES runs on the CPU whatever device was asked for; the device only matters to tensor backends.
  if (id == detail::kAesGcmId) return detail::makeAesGcmCipher();
#ifdef PACSGW_WITH_TORCH
  if (id == kChaosVpdId) {
    CipherOptions normalised = options;
    normalised.device = device;
    return makeChaosVpdCipher(normalised);
  }
#endif
  throw CipherError("unknown cipher backend '" + id + "' (available: " + joined(availableBackends()) + ")");
}

Device resolveDevice(const std::string& requested, bool cudaAvailable) {
  const std::string r = lower(requested);
  if (r == "cpu") return Device::Cpu;
  if (r == "auto") return cudaAvailable ? Device::Cuda : Device::Cpu;
  if (r == "cuda") {
    if (!cudaAvailable) throw CipherError("device 'cuda' requested but no CUDA device is available");
    return Device::Cuda;
  }
  throw CipherError("unknown device '" + requested + "' (expected cpu, cuda or auto)");
}

}  // namespace pacsgw::codecs
