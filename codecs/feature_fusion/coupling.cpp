// Additive coupling in 16-bit modular arithmetic (see coupling.h).
#include "codecs/feature_fusion/coupling.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace pacsgw::codecs::feature_fusion {
namespace {

// A deterministic stream of 32-bit words: SHA-256(seed || label || counter), counter big-endian.
class WordStream {
 public:
  WordStream(const std::array<std::uint8_t, 32>& seed, char label) : seed_(seed), label_(label) {}
  std::uint32_t next() {
    if (pos_ == 8) refill();
    return words_[pos_++];
  }

 private:
  void refill() {
    std::uint8_t input[32 + 1 + 8];
    std::copy(seed_.begin(), seed_.end(), input);
    input[32] = static_cast<std::uint8_t>(label_);
    for (int i = 0; i < 8; ++i) input[33 + i] = static_cast<std::uint8_t>(counter_ >> (56 - 8 * i));
    ++counter_;
    std::uint8_t digest[32];
    unsigned int length = 0;
    if (EVP_Digest(input, sizeof input, digest, &length, EVP_sha256(), nullptr) != 1)
      throw std::runtime_error("feature-fusion: SHA-256 failed");
    for (int i = 0; i < 8; ++i)
      words_[i] = (std::uint32_t{digest[4 * i]} << 24) | (std::uint32_t{digest[4 * i + 1]} << 16) |
                  (std::uint32_t{digest[4 * i + 2]} << 8) | digest[4 * i + 3];
    pos_ = 0;
  }
  std::array<std::uint8_t, 32> seed_;
  char label_;
  std::uint64_t counter_ = 0;
  std::uint32_t words_[8]{};
  int pos_ = 8;
};

// A non-linear 16-bit mixing of one accumulator (odd multiply and xor-shift, all mod 2^32).
std::uint16_t mix(std::uint32_t v) {
  v ^= v >> 15;
  v *= 0x2c1b3c6dU;
  v ^= v >> 12;
  v *= 0x297a2d39U;
  v ^= v >> 15;
  return static_cast<std::uint16_t>(v >> 16);
}

}  // namespace

AdditiveCoupling::AdditiveCoupling(const UserKey& key, std::size_t n) : n_(n) {
  if (n == 0) throw std::invalid_argument("feature-fusion: empty coupling");
  WordStream fs(key.couplingSeed, 'F'), gs(key.couplingSeed, 'G');
  for (Dense* layer : {&f_, &g_}) {
    WordStream& s = layer == &f_ ? fs : gs;
    layer->weights.resize(n * n);
    layer->bias.resize(n);
    for (auto& w : layer->weights) w = s.next() | 1U;  // odd: every input reaches every output
    for (auto& b : layer->bias) b = s.next();
  }
}

Codes AdditiveCoupling::apply(const Dense& layer, const Codes& x) const {
  if (x.size() != n_) throw std::invalid_argument("feature-fusion: coupling input of the wrong size");
  Codes out(n_);
  for (std::size_t j = 0; j < n_; ++j) {
    std::uint32_t acc = layer.bias[j];
    const std::uint32_t* w = &layer.weights[j * n_];
    for (std::size_t i = 0; i < n_; ++i) acc += w[i] * (std::uint32_t{x[i]} + 1U);  // mod 2^32
    out[j] = mix(acc);
  }
  return out;
}

static Codes add(const Codes& a, const Codes& b) {
  Codes out(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) out[i] = static_cast<std::uint16_t>(a[i] + b[i]);
  return out;
}
static Codes subtract(const Codes& a, const Codes& b) {
  Codes out(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) out[i] = static_cast<std::uint16_t>(a[i] - b[i]);
  return out;
}

AdditiveCoupling::Halves AdditiveCoupling::forward(const Halves& in) const {
  Halves out;
  out.alpha = add(in.alpha, apply(g_, in.key));  // EP = alpha + G(K)
  out.key = add(in.key, apply(f_, out.alpha));   // EK = K + F(EP)
  return out;
}

AdditiveCoupling::Halves AdditiveCoupling::inverse(const Halves& out) const {
  Halves in;
  in.key = subtract(out.key, apply(f_, out.alpha));   // K = EK - F(EP)
  in.alpha = subtract(out.alpha, apply(g_, in.key));  // alpha = EP - G(K)
  return in;
}

Codes AdditiveCoupling::protect(const Codes& alpha, const Codes& key) const {
  if (alpha.size() != n_) throw std::invalid_argument("feature-fusion: coefficient count mismatch");
  return add(alpha, apply(g_, key));
}

Codes AdditiveCoupling::recover(const Codes& ep, const Codes& key) const {
  if (ep.size() != n_) throw std::invalid_argument("feature-fusion: coefficient count mismatch");
  return subtract(ep, apply(g_, key));
}

std::uint16_t alphaToCode(float alpha, float alphaMin) {
  const float t = (alpha - alphaMin) / (1.0f - alphaMin);
  return static_cast<std::uint16_t>(std::lround(std::clamp(t, 0.0f, 1.0f) * 65535.0f));
}

float codeToAlpha(std::uint16_t code, float alphaMin) {
  return alphaMin + (1.0f - alphaMin) * (static_cast<float>(code) / 65535.0f);
}

}  // namespace pacsgw::codecs::feature_fusion
