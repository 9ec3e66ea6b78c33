// Fixed-point codes and densely packed encrypted vectors (see packed_vector.h).
#include "codecs/he/packed_vector.h"

#include "codecs/he/batch.h"
#include "codecs/he/slot_packing.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace pacsgw::codecs::he {

void FixedPointCode::validate() const {
  if (bits < 1 || bits > 32) throw HeError("fixed point: 1..32 bits");
  if (!(high > low) || !std::isfinite(low) || !std::isfinite(high)) throw HeError("fixed point: empty range");
}

std::uint32_t FixedPointCode::maxCode() const {
  return bits >= 32 ? 0xffffffffu : static_cast<std::uint32_t>((std::uint64_t{1} << bits) - 1);
}

float FixedPointCode::step() const { return (high - low) / static_cast<float>(maxCode()); }

std::uint32_t FixedPointCode::encode(float v) const {
  if (std::isnan(v)) v = low;
  const double clamped = std::min<double>(std::max<double>(v, low), high);
  const double scaled = std::nearbyint((clamped - low) / (static_cast<double>(high) - low) * maxCode());
  return static_cast<std::uint32_t>(std::min<double>(scaled, maxCode()));
}

float FixedPointCode::decode(std::uint64_t code) const {
  return static_cast<float>(low + static_cast<double>(code) * (static_cast<double>(high) - low) / maxCode());
}

std::size_t slotsPerCiphertext(const PaillierPublicKey& key, unsigned slotBits) {
  return SlotPacking(key, slotBits).slots();
}

EncryptedVector encryptVector(const PaillierPrivateKey& key, const std::vector<std::uint64_t>& values,
                              std::uint64_t bound, unsigned slotBits, unsigned threads) {
  const SlotPacking packing(key.publicKey(), slotBits);
  if (bound > packing.slotLimit()) throw HeError("paillier: the value bound exceeds the slot width");
  for (std::uint64_t v : values)
    if (v > bound) throw HeError("paillier: a value exceeds its declared bound");
  const std::size_t perCt = packing.slots();
  std::vector<BigNum> plaintexts;
  plaintexts.reserve((values.size() + perCt - 1) / perCt);
  std::vector<std::uint64_t> chunk;
  for (std::size_t first = 0; first < values.size(); first += perCt) {
    const std::size_t last = std::min(values.size(), first + perCt);
    chunk.assign(values.begin() + static_cast<std::ptrdiff_t>(first), values.begin() + static_cast<std::ptrdiff_t>(last));
    plaintexts.push_back(packing.pack(chunk));
  }
  EncryptedVector out;
  out.slotBits = slotBits;
  out.slotBound = bound;
  out.count = values.size();
  out.ciphertexts = encryptAll(key, plaintexts, threads);
  return out;
}

std::vector<std::uint64_t> decryptVector(const PaillierPrivateKey& key, const EncryptedVector& vector,
                                         unsigned threads) {
  const SlotPacking packing(key.publicKey(), vector.slotBits);
  const std::size_t perCt = packing.slots();
  if (vector.ciphertexts.size() != (vector.count + perCt - 1) / perCt)
    throw HeError("paillier: ciphertext count does not match the vector length");
  const std::vector<BigNum> plaintexts = decryptAll(key, vector.ciphertexts, threads);
  std::vector<std::uint64_t> out;
  out.reserve(vector.count);
  for (std::size_t i = 0; i < plaintexts.size(); ++i) {
    const std::size_t n = std::min(perCt, vector.count - i * perCt);
    // Bits above the last slot would mean a carry or a forged ciphertext: refuse rather than truncate.
    if (BN_num_bits(plaintexts[i].get()) > static_cast<int>(n * vector.slotBits))
      throw HeError("paillier: a decrypted plaintext does not fit its slots");
    const auto values = packing.unpack(plaintexts[i], n);
    out.insert(out.end(), values.begin(), values.end());
  }
  return out;
}

EncryptedVector addVectors(const PaillierPublicKey& key, const EncryptedVector& a, const EncryptedVector& b) {
  if (a.slotBits != b.slotBits || a.count != b.count || a.ciphertexts.size() != b.ciphertexts.size())
    throw HeError("paillier: vectors of different shapes");
  const SlotPacking packing(key, a.slotBits);
  EncryptedVector out;
  out.slotBits = a.slotBits;
  out.count = a.count;
  out.slotBound = checkedSlotSum(a.slotBound, b.slotBound, packing.slotLimit());
  out.ciphertexts.reserve(a.ciphertexts.size());
  for (std::size_t i = 0; i < a.ciphertexts.size(); ++i) out.ciphertexts.push_back(key.add(a.ciphertexts[i], b.ciphertexts[i]));
  return out;
}

}  // namespace pacsgw::codecs::he
