#pragma once
// The reference cipher domain of EdgNet's training: a classical chaotic image cipher, as the paper trains
// its generators towards images encrypted by classical chaos-based ciphers. This one is the textbook
// logistic-map scheme (Fridrich's permutation-diffusion structure):
//   * orbit x_{t+1} = r x_t (1 - x_t) from x_0, the first 1000 iterations discarded;
//   * permutation: pixel positions sorted by the next rows*columns orbit values;
//   * diffusion: c_i = (p_perm(i) + k_i + c_(i-1)) mod 256, k_i = floor(x_t 10^14) mod 256 from the
//     following orbit values, c_(-1) = floor(256 x_0).
// Training only (it produces examples of "what a cipher image looks like"); the gateway never uses it
// to protect anything. No LibTorch here.
#include <cstdint>
#include <vector>

namespace pacsgw::codecs::edgnet {

struct LogisticKey {
  double x0 = 0.3141592653589793;  // in (0, 1)
  double r = 3.99;                 // in [3.57, 4): the chaotic regime
};

// The key of training example `index` of a run with seed `seed` (deterministic).
LogisticKey referenceKey(std::uint64_t seed, std::uint64_t index);

// Encrypts an 8-bit image of `size` pixels (any shape: the scheme is position-agnostic).
std::vector<std::uint8_t> logisticEncrypt(const std::vector<std::uint8_t>& image, const LogisticKey& key);

}  // namespace pacsgw::codecs::edgnet
