#pragma once
// The reversible additive-coupling block that protects the fusion coefficients (the paper's FFEM,
// Eq. 4), in exact 16-bit modular arithmetic. Plain C++, no LibTorch.
//
// The paper couples (K, alpha) as EK = K + F(alpha), EP = alpha + G(EK) and transmits EK and EP. With
// public weights anyone then inverts the block without the key: alpha = EP - G(EK), K = EK - F(alpha),
// so the key is recovered from the side information and decryption needs no key at all. This block
// updates the halves in the other order,
//     EP = alpha + G(K)        EK = K + F(EP)          (all mod 2^16, element-wise)
// and the product transmits EP only. EK = K + F(EP) would hand out K, so it is never stored. Inverting
// needs K, which only the key holder can rebuild (feature_keys.h): alpha = EP - G(K).
// F and G are dense integer layers whose parameters are derived from the key (UserKey::couplingSeed),
// not trained; they are exact on every machine, so the inverse is exact.
#include "codecs/feature_fusion/feature_keys.h"

#include <cstdint>
#include <vector>

namespace pacsgw::codecs::feature_fusion {

using Codes = std::vector<std::uint16_t>;

class AdditiveCoupling {
 public:
  // n: the number of coefficients (sum of the model's group channel counts).
  AdditiveCoupling(const UserKey& key, std::size_t n);

  struct Halves {
    Codes key;    // K (or EK)
    Codes alpha;  // alpha (or EP)
  };
  Halves forward(const Halves& in) const;  // (K, alpha) -> (EK, EP)
  Halves inverse(const Halves& out) const; // (EK, EP) -> (K, alpha)

  // What the product uses: EP from alpha and K, and alpha back from EP and K.
  Codes protect(const Codes& alpha, const Codes& key) const;
  Codes recover(const Codes& ep, const Codes& key) const;

  std::size_t size() const { return n_; }

 private:
  struct Dense {
    std::vector<std::uint32_t> weights;  // n x n
    std::vector<std::uint32_t> bias;     // n
  };
  Codes apply(const Dense& layer, const Codes& x) const;
  std::size_t n_;
  Dense f_, g_;
};

// The fusion coefficient alpha in [alphaMin, 1] as a 16-bit code and back.
std::uint16_t alphaToCode(float alpha, float alphaMin);
float codeToAlpha(std::uint16_t code, float alphaMin);

}  // namespace pacsgw::codecs::feature_fusion
