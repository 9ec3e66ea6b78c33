// Feature-key schedule (see feature_keys.h). Built with -ffp-contract=off.
#include "codecs/feature_fusion/feature_keys.h"

#include "codecs/backend_key.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <stdexcept>

namespace pacsgw::codecs::feature_fusion {

ImageDigest digestImage(const std::uint8_t* bytes, std::size_t size) {
  ImageDigest d;
  SHA256(bytes, size, d.sha256.data());
  std::uint64_t p = 0;
  for (std::size_t i = 0; i < size; ++i) p += static_cast<std::uint64_t>(bytes[i]) * ((i + 1) & 0xff);
  d.p = static_cast<std::uint8_t>(p & 0xff);
  return d;
}

UserKey userKeyFromSubkey(const SecretBytes& subkey) {
  if (subkey.size() != 32) throw std::invalid_argument("feature-fusion: the subkey must be 32 bytes");
  // Two independent 32-byte outputs of HKDF (labels below), never the subkey itself.
  const SecretBytes bBytes = backendSubkey(subkey, "feature-fusion logistic user values");
  const SecretBytes seed = backendSubkey(subkey, "feature-fusion coupling parameters");
  UserKey key;
  for (std::size_t i = 0; i < kSeeds; ++i) {
    std::uint64_t v = 0;
    for (std::size_t j = 0; j < 8; ++j) v = (v << 8) | bBytes.data()[8 * i + j];
    key.b[i] = v;
  }
  for (std::size_t i = 0; i < 32; ++i) key.couplingSeed[i] = seed.data()[i];
  return key;
}

std::array<double, kSeeds> initialValues(const ImageDigest& digest, const UserKey& key) {
  // Rotate the 256-bit digest left by p bits, then read four big-endian 64-bit words.
  std::array<std::uint8_t, 32> rotated{};
  const unsigned byteShift = digest.p / 8, bitShift = digest.p % 8;
  for (unsigned i = 0; i < 32; ++i) {
    const unsigned hi = digest.sha256[(i + byteShift) % 32];
    const unsigned lo = digest.sha256[(i + byteShift + 1) % 32];
    rotated[i] = static_cast<std::uint8_t>(bitShift == 0 ? hi : ((hi << bitShift) | (lo >> (8 - bitShift))) & 0xff);
  }
  std::array<double, kSeeds> x0{};
  for (std::size_t i = 0; i < kSeeds; ++i) {
    std::uint64_t word = 0;
    for (std::size_t j = 0; j < 8; ++j) word = (word << 8) | rotated[8 * i + j];
    const std::uint64_t sum = word + key.b[i];  // mod 2^64
    // (sum + 1) / (2^64 + 2) with exact integers: 64-bit mantissa long double holds sum + 1 exactly.
    const long double numerator = static_cast<long double>(sum) + 1.0L;
    const long double denominator = 18446744073709551616.0L + 2.0L;
    x0[i] = static_cast<double>(numerator / denominator);
  }
  return x0;
}

std::vector<double> logisticSequence(double x0, std::size_t n) {
  if (!(x0 > 0.0 && x0 < 1.0)) throw std::invalid_argument("feature-fusion: x0 must lie in (0, 1)");
  double x = x0;
  for (std::size_t i = 0; i < kLogisticBurnIn; ++i) x = kLogisticMu * x * (1.0 - x);
  std::vector<double> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    x = kLogisticMu * x * (1.0 - x);
    out[i] = x;
  }
  return out;
}

FeatureKeys featureKeys(const ImageDigest& digest, const UserKey& key, const std::vector<int>& channels,
                        int rows, int columns) {
  const auto x0 = initialValues(digest, key);
  FeatureKeys keys;
  std::size_t couplingCount = 0;
  for (std::size_t g = 0; g < channels.size(); ++g) {
    const int h = rows >> (g + 1), w = columns >> (g + 1);
    if (h <= 0 || w <= 0) throw std::invalid_argument("feature-fusion: image too small for the model");
    const std::size_t n = static_cast<std::size_t>(channels[g]) * h * w;
    // Groups beyond the third reuse a seed at an offset so every group keeps its own stretch of orbit.
    const auto orbit = logisticSequence(x0[g % 3], n + (g / 3) * 4096);
    std::vector<float> values(n);
    for (std::size_t i = 0; i < n; ++i) values[i] = static_cast<float>(2.0 * orbit[i + (g / 3) * 4096] - 1.0);
    keys.groups.push_back(std::move(values));
    couplingCount += static_cast<std::size_t>(channels[g]);
  }
  const auto orbit = logisticSequence(x0[3], couplingCount);
  keys.couplingKey.resize(couplingCount);
  for (std::size_t i = 0; i < couplingCount; ++i) {
    // Orbit values are in (0, 1); the low bits of the mantissa spread uniformly where the arcsine
    // density of the orbit would not (the top bits are biased towards 0 and 1).
    keys.couplingKey[i] = static_cast<std::uint16_t>(static_cast<std::uint64_t>(orbit[i] * 4294967296.0) & 0xffff);
  }
  return keys;
}

}  // namespace pacsgw::codecs::feature_fusion
