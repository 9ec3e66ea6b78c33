// Packing several small integers per Paillier plaintext, with overflow tracking.
#include "codecs/he/slot_packing.h"

#include <string>

namespace pacsgw::codecs::he {

std::uint64_t checkedSlotSum(std::uint64_t a, std::uint64_t b, std::uint64_t limit) {
  if (a > limit || b > limit - a) throw HeError("paillier: slot overflow (a slot sum could exceed its width)");
  return a + b;
}

std::uint64_t checkedSlotProduct(std::uint64_t a, std::uint64_t b, std::uint64_t limit) {
  if (a != 0 && b > limit / a) throw HeError("paillier: slot overflow (a slot product could exceed its width)");
  return a * b;
}

SlotPacking::SlotPacking(const PaillierPublicKey& key, unsigned slotBits) : slotBits_(slotBits) {
  if (slotBits < 8 || slotBits > 63) throw HeError("paillier: slot width must be 8..63 bits");
  slots_ = static_cast<std::size_t>(key.modulusBits() - 1) / slotBits;
  limit_ = (std::uint64_t{1} << slotBits) - 1;
}

BigNum SlotPacking::pack(const std::vector<std::uint64_t>& values) const {
  if (values.size() > slots_)
    throw HeError("paillier: " + std::to_string(values.size()) + " values exceed the " + std::to_string(slots_) +
                  " slots of one plaintext");
  BigNum m;  // zero
  // Horner from the highest slot down: m = ((v_k B + v_(k-1)) B + ...) + v_0.
  for (std::size_t i = values.size(); i-- > 0;) {
    if (values[i] > limit_) throw HeError("paillier: a value does not fit its slot");
    bnCheck(BN_lshift(m.get(), m.get(), static_cast<int>(slotBits_)), "BN_lshift");
    bnCheck(BN_add_word(m.get(), values[i]), "BN_add_word");
  }
  return m;
}

std::vector<std::uint64_t> SlotPacking::unpack(const BigNum& m, std::size_t count) const {
  if (count > slots_) throw HeError("paillier: more values asked for than slots");
  std::vector<std::uint64_t> out(count);
  BigNum rest = m, slot;
  for (std::size_t i = 0; i < count; ++i) {
    if (BN_copy(slot.get(), rest.get()) == nullptr) throw HeError("paillier: BN_copy failed");
    // Returns 0 (and leaves the value alone) when it is already shorter than the mask: both are right.
    (void)BN_mask_bits(slot.get(), static_cast<int>(slotBits_));
    out[i] = BN_get_word(slot.get());
    bnCheck(BN_rshift(rest.get(), rest.get(), static_cast<int>(slotBits_)), "BN_rshift");
  }
  return out;
}

PackedPaillier::PackedPaillier(const PaillierPublicKey& key, unsigned slotBits)
    : key_(key), packing_(key, slotBits) {}

PackedCiphertext PackedPaillier::encrypt(const std::vector<std::uint64_t>& values, std::uint64_t bound) const {
  if (bound > packing_.slotLimit()) throw HeError("paillier: the value bound exceeds the slot width");
  for (std::uint64_t v : values)
    if (v > bound) throw HeError("paillier: a value exceeds its declared bound");
  return PackedCiphertext{key_.encrypt(packing_.pack(values)), bound};
}

PackedCiphertext PackedPaillier::add(const PackedCiphertext& a, const PackedCiphertext& b) const {
  const std::uint64_t bound = checkedSlotSum(a.slotBound, b.slotBound, packing_.slotLimit());
  return PackedCiphertext{key_.add(a.c, b.c), bound};
}

PackedCiphertext PackedPaillier::multiply(const PackedCiphertext& a, std::uint64_t scalar) const {
  const std::uint64_t bound = checkedSlotProduct(a.slotBound, scalar, packing_.slotLimit());
  return PackedCiphertext{key_.multiplyPlain(a.c, BigNum::fromWord(scalar)), bound};
}

std::vector<std::uint64_t> PackedPaillier::decrypt(const PaillierPrivateKey& priv, const PackedCiphertext& c,
                                                   std::size_t count) const {
  return packing_.unpack(priv.decrypt(c.c), count);
}

}  // namespace pacsgw::codecs::he
