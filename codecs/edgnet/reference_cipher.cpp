// The logistic-map permutation-diffusion cipher of EdgNet's reference domain (reference_cipher.h).
#include "codecs/edgnet/reference_cipher.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace pacsgw::codecs::edgnet {

LogisticKey referenceKey(std::uint64_t seed, std::uint64_t index) {
  // splitmix64 of (seed, index): well-spread keys without a cryptographic generator (training data only).
  std::uint64_t z = seed * 0x9E3779B97F4A7C15ULL + index + 0x632BE59BD9B4E019ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  LogisticKey k;
  k.x0 = 0.01 + 0.98 * static_cast<double>(z >> 11) / 9007199254740992.0;
  k.r = 3.99 + 0.0099 * static_cast<double>(z & 0x3FF) / 1024.0;
  return k;
}

std::vector<std::uint8_t> logisticEncrypt(const std::vector<std::uint8_t>& image, const LogisticKey& key) {
  const std::size_t n = image.size();
  double x = key.x0;
  auto next = [&] {
    x = key.r * x * (1.0 - x);
    if (x <= 0.0 || x >= 1.0) x = 0.5 + 1e-9;  // never stick at a fixed point
    return x;
  };
  for (int i = 0; i < 1000; ++i) next();
  std::vector<double> orbit(n);
  for (double& v : orbit) v = next();
  std::vector<std::size_t> perm(n);
  std::iota(perm.begin(), perm.end(), std::size_t{0});
  std::stable_sort(perm.begin(), perm.end(), [&](std::size_t a, std::size_t b) { return orbit[a] < orbit[b]; });
  std::vector<std::uint8_t> out(n);
  unsigned previous = static_cast<unsigned>(key.x0 * 256.0) & 0xFF;
  for (std::size_t i = 0; i < n; ++i) {
    const auto k = static_cast<unsigned>(std::fmod(std::floor(next() * 1e14), 256.0));
    previous = (image[perm[i]] + k + previous) & 0xFF;
    out[i] = static_cast<std::uint8_t>(previous);
  }
  return out;
}

}  // namespace pacsgw::codecs::edgnet
