// Device selection for tensor backends.
#include "codecs/pixel_cipher.h"

#include <algorithm>
#include <cctype>

namespace pacsgw::codecs {

Device resolveDevice(const std::string& requested, bool cudaAvailable) {
  std::string r = requested;
  std::transform(r.begin(), r.end(), r.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (r == "cpu") return Device::Cpu;
  if (r == "auto") return cudaAvailable ? Device::Cuda : Device::Cpu;
  if (r == "cuda") {
    if (!cudaAvailable) throw CipherError("device 'cuda' requested but no CUDA device is available");
    return Device::Cuda;
  }
  throw CipherError("unknown device '" + requested + "' (expected cpu, cuda or auto)");
}

}  // namespace pacsgw::codecs
