#pragma once
// Slot packing: several small non-negative integers in one Paillier plaintext,
//   m = v_0 + v_1 B + v_2 B^2 + ...,   B = 2^slotBits,
// so one encryption carries `slots` values and one homomorphic addition adds them all slot by slot.
// Sums stay exact while every slot stays below B: the packed ciphertext tracks a public upper bound
// of its slot values through every operation and refuses one that could overflow into the next slot.
#include "codecs/he/paillier.h"

#include <cstdint>
#include <vector>

namespace pacsgw::codecs::he {

// 48-bit slots: 16-bit samples can be summed 2^32 times (a whole 65 536 x 65 536 image) before a slot
// could carry; a 3072-bit modulus holds 63 slots, a 2048-bit one 42.
constexpr unsigned kDefaultSlotBits = 48;

class SlotPacking {
 public:
  SlotPacking(const PaillierPublicKey& key, unsigned slotBits = kDefaultSlotBits);
  unsigned slotBits() const { return slotBits_; }
  std::size_t slots() const { return slots_; }  // floor((bits(n) - 1) / slotBits): m < 2^(bits(n)-1) <= n
  std::uint64_t slotLimit() const { return limit_; }  // largest value a slot may hold: 2^slotBits - 1

  BigNum pack(const std::vector<std::uint64_t>& values) const;  // throws HeError on too many / too large
  std::vector<std::uint64_t> unpack(const BigNum& m, std::size_t count) const;

 private:
  unsigned slotBits_;
  std::size_t slots_;
  std::uint64_t limit_;
};

// A packed ciphertext and the public bound of its slot values.
struct PackedCiphertext {
  BigNum c;
  std::uint64_t slotBound = 0;  // every slot's plaintext is <= slotBound
};

class PackedPaillier {
 public:
  PackedPaillier(const PaillierPublicKey& key, unsigned slotBits = kDefaultSlotBits);
  const SlotPacking& packing() const { return packing_; }
  const PaillierPublicKey& key() const { return key_; }

  // `bound` is the public upper bound of the values (e.g. 65535 for 16-bit samples).
  PackedCiphertext encrypt(const std::vector<std::uint64_t>& values, std::uint64_t bound) const;
  PackedCiphertext add(const PackedCiphertext& a, const PackedCiphertext& b) const;
  PackedCiphertext multiply(const PackedCiphertext& a, std::uint64_t scalar) const;
  std::vector<std::uint64_t> decrypt(const PaillierPrivateKey& priv, const PackedCiphertext& c,
                                     std::size_t count) const;

 private:
  PaillierPublicKey key_;
  SlotPacking packing_;
};

// a + b and a * b with a check against `limit`; throws HeError("slot overflow") when exceeded.
std::uint64_t checkedSlotSum(std::uint64_t a, std::uint64_t b, std::uint64_t limit);
std::uint64_t checkedSlotProduct(std::uint64_t a, std::uint64_t b, std::uint64_t limit);

}  // namespace pacsgw::codecs::he
