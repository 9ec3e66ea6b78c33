#pragma once
// Where the ae-he Paillier keys come from: derived deterministically from the backend's 32-byte subkey
// of the study data key, so the private key is always recoverable from the keystore and never stored;
// the public modulus travels with each object. Every object of a study shares one Paillier key, which
// is what lets ciphertexts of different objects be added together.
//
// Derivation (format version 1, pinned by a known-answer test): for the prime named L ("p", then "q")
// and i = 0, 1, 2, ... the candidate is
//   HKDF-SHA-256(IKM = seed, no salt, info = "pacsgw paillier prime v1" || 0x00 || L || be32(bits) || be32(i),
//                length = bits / 16 bytes)
// read big-endian, with its two top bits and its lowest bit set; the first candidate that passes
// OpenSSL's primality test (trial division, then Miller-Rabin, error below 2^-128) is the prime. q is
// searched on until |p - q| >= 2^(bits/2 - 100) (no Fermat factoring) and the pair makes a valid key.
#include "codecs/he/paillier.h"

#include <cstddef>
#include <cstdint>
#include <memory>

namespace pacsgw::codecs::he {

PaillierPrivateKey derivePaillierKey(const std::uint8_t* seed, std::size_t seedBytes, int modulusBits);

// Derived keys of this process, so that a study's key is derived once (about a second of CPU at 3072
// bits) and not per object. Bounded (least recently used entries are dropped); keyed by a hash of the
// seed, thread-safe. Two threads asking for the same new key may both derive it; the result is equal.
class PaillierKeyCache {
 public:
  explicit PaillierKeyCache(std::size_t capacity = 32);
  std::shared_ptr<const PaillierPrivateKey> get(const std::uint8_t* seed, std::size_t seedBytes, int modulusBits);
  ~PaillierKeyCache();
  static PaillierKeyCache& shared();

 private:
  struct Impl;
  std::size_t capacity_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pacsgw::codecs::he
