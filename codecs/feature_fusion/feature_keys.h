#pragma once
// The feature-key schedule of feature-fusion (Long et al.): Logistic-map sequences seeded from
// SHA-256 of the image and the user key, reshaped into one key tensor per feature group, plus the
// per-channel key codes the fusion-coefficient coupling (coupling.h) consumes. Plain C++, no LibTorch.
//
// The paper's user values b1..b4 are derived here from the backend subkey, so the only secret is the
// data key. The image digest (SHA-256 and the position p) is not secret by itself, but the product
// never transmits it in clear: it travels inside the AES-GCM-sealed side information (side_info.h).
// Every step is exact integer arithmetic or basic IEEE-754 operations; this file is compiled with
// -ffp-contract=off so the orbits are bit-identical on every conforming machine.
#include "keystore/secret_bytes.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace pacsgw::codecs::feature_fusion {

constexpr double kLogisticMu = 3.99;            // inside [3.5699, 4]; outside the period-3 window
constexpr std::size_t kLogisticBurnIn = 1000;   // iterations discarded before the first output
constexpr std::size_t kSeeds = 4;               // the paper's x0^1..x0^4

// SHA-256 of the image and p = (sum over i of im(i) * i) mod 256, i counted from 1 over the bytes.
struct ImageDigest {
  std::array<std::uint8_t, 32> sha256{};
  std::uint8_t p = 0;
};
ImageDigest digestImage(const std::uint8_t* bytes, std::size_t size);

// The user key: b1..b4 (64-bit) of the paper, derived from the 32-byte backend subkey with HKDF.
struct UserKey {
  std::array<std::uint64_t, kSeeds> b{};
  std::array<std::uint8_t, 32> couplingSeed{};  // seeds the coupling's F and G parameters
};
UserKey userKeyFromSubkey(const SecretBytes& subkey);

// x0^i = (((word_i + b_i) mod 2^64) + 1) / (2^64 + 2), word_i the i-th big-endian 64-bit word of the
// digest rotated left by p bits (the paper's h(p : p+64) read cyclically). Computed from exact integers.
std::array<double, kSeeds> initialValues(const ImageDigest& digest, const UserKey& key);

// n outputs of x <- mu x (1 - x) after kLogisticBurnIn discarded iterations.
std::vector<double> logisticSequence(double x0, std::size_t n);

// The keys of one image for a model with the given group channel counts (group i works at
// rows / 2^(i+1) x columns / 2^(i+1)). groups[i] holds C_i * h_i * w_i values in [-1, 1] (2x - 1 of the
// orbit seeded by x0^(i mod 3 + 1)); couplingKey holds sum(C_i) 16-bit codes from the orbit of x0^4.
struct FeatureKeys {
  std::vector<std::vector<float>> groups;
  std::vector<std::uint16_t> couplingKey;
};
FeatureKeys featureKeys(const ImageDigest& digest, const UserKey& key, const std::vector<int>& channels,
                        int rows, int columns);

}  // namespace pacsgw::codecs::feature_fusion
