#pragma once
// Real-valued features as Paillier ciphertexts: a fixed-point code for values in a documented range,
// and dense slot packing of the codes (as many slots per ciphertext as the modulus holds).
//
// A slot of w bits holding b-bit codes leaves w - b bits of headroom: 2^(w-b) encrypted vectors can be
// added slot by slot (e.g. to average a feature map over a series) before a slot could carry into the
// next; the public bound carried with every vector enforces it.
#include "codecs/he/paillier.h"

#include <cstdint>
#include <vector>

namespace pacsgw::codecs::he {

// q = round((clamp(v, low, high) - low) / (high - low) * (2^bits - 1)); decode inverts it up to half a
// step, (high - low) / (2^bits - 1) / 2, for values inside [low, high].
struct FixedPointCode {
  float low = 0.0f;
  float high = 1.0f;
  unsigned bits = 8;  // 1..32

  std::uint32_t maxCode() const;
  float step() const;
  std::uint32_t encode(float v) const;
  float decode(std::uint64_t code) const;  // codes above maxCode (sums) decode linearly
  void validate() const;                   // throws HeError on an empty range or bits outside 1..32
};

struct EncryptedVector {
  unsigned slotBits = 0;
  std::uint64_t slotBound = 0;  // public upper bound of every slot's value
  std::size_t count = 0;        // number of values
  std::vector<BigNum> ciphertexts;
};

// Slots per ciphertext for this modulus and slot width (as SlotPacking).
std::size_t slotsPerCiphertext(const PaillierPublicKey& key, unsigned slotBits);

// Encrypts `values` (each <= bound < 2^slotBits) with the key holder's fast encryption, `threads` threads.
EncryptedVector encryptVector(const PaillierPrivateKey& key, const std::vector<std::uint64_t>& values,
                              std::uint64_t bound, unsigned slotBits, unsigned threads = 0);
std::vector<std::uint64_t> decryptVector(const PaillierPrivateKey& key, const EncryptedVector& vector,
                                         unsigned threads = 0);
// Slot-wise sum with the public key only; throws HeError("slot overflow") if a slot could carry.
EncryptedVector addVectors(const PaillierPublicKey& key, const EncryptedVector& a, const EncryptedVector& b);

}  // namespace pacsgw::codecs::he
