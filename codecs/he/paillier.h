#pragma once
// Paillier's additively homomorphic public-key scheme (Paillier, EUROCRYPT 1999) on OpenSSL BIGNUM.
//   Public key  n = p q (p, q primes of equal size), g = n + 1, ciphertexts live in Z*_{n^2}.
//   Encryption  c = (1 + m n) r^n mod n^2 with a fresh random r in Z*_n for every call.
//   Decryption  by the Chinese remainder theorem: m_p = L_p(c^(p-1) mod p^2) h_p mod p (same for q),
//               L_p(x) = (x - 1) / p, h_p = L_p(g^(p-1) mod p^2)^-1 mod p, then m from (m_p, m_q).
//   Homomorphy  E(a) E(b) = E(a + b mod n),  E(a)^k = E(k a mod n).
// Every exponentiation with a secret exponent, base or modulus (p - 1, r, p^2) uses
// BN_mod_exp_mont_consttime with BN_FLG_CONSTTIME on the secret operands.
#include "codecs/he/bignum.h"

#include <cstdint>
#include <memory>

namespace pacsgw::codecs::he {

// 3072-bit modulus: about 128-bit security (NIST SP 800-57 for factoring-based keys); 2048 (112-bit)
// is the smallest this code accepts.
constexpr int kDefaultModulusBits = 3072;
constexpr int kMinModulusBits = 2048;

class PaillierPublicKey {
 public:
  explicit PaillierPublicKey(const BigNum& n);
  const BigNum& n() const { return n_; }
  const BigNum& nSquared() const { return n2_; }
  int modulusBits() const { return n_.bits(); }

  // Fresh r for every call. m must satisfy 0 <= m < n.
  BigNum encrypt(const BigNum& m) const;
  // Deterministic: caller-chosen r (known-answer tests only; reusing r reveals plaintext relations).
  BigNum encryptWithRandomness(const BigNum& m, const BigNum& r) const;

  // E(a) * E(b) mod n^2 = E(a + b mod n).
  BigNum add(const BigNum& a, const BigNum& b) const;
  // E(a) * (1 + k n) mod n^2 = E(a + k mod n), for a public plaintext k.
  BigNum addPlain(const BigNum& a, const BigNum& k) const;
  // E(a)^k mod n^2 = E(k a mod n), for a public scalar 0 <= k < n.
  BigNum multiplyPlain(const BigNum& a, const BigNum& k) const;
  // Throws HeError unless 0 < c < n^2 and gcd(c, n) = 1.
  void checkCiphertext(const BigNum& c) const;

 private:
  BigNum encryptWith(const BigNum& m, const BigNum& r) const;  // both entry points; the KAT one is a wrapper
  BigNum n_, n2_;
  std::shared_ptr<BN_MONT_CTX> montN2_;  // read-only after construction: shared by threads
};

class PaillierPrivateKey {
 public:
  // From the two primes (equal bit length, distinct). Throws HeError if they do not make a valid key.
  PaillierPrivateKey(const BigNum& p, const BigNum& q);
  const PaillierPublicKey& publicKey() const { return pub_; }

  // Encryption by the key holder, with exactly the distribution of PaillierPublicKey::encrypt but
  // about three times faster: the random n-th residue r^n mod n^2 is built from its CRT components.
  // Modulo p^2 the n-th residues are the subgroup of order p - 1, and s -> s^p mod p^2 maps Z*_p onto it
  // one to one (s^p mod p^2 depends on s mod p only; gcd(q, p - 1) = 1 makes raising to q a bijection
  // there). So for uniform s_p in Z*_p and s_q in Z*_q, x = CRT(s_p^p mod p^2, s_q^q mod q^2) is a
  // uniform n-th residue: two exponentiations with half-size exponent and modulus instead of one with
  // a full-size exponent modulo n^2. Same security as textbook Paillier (no extra assumption).
  BigNum encrypt(const BigNum& m) const;
  // Deterministic (known-answer tests only): caller-chosen s_p in [1, p), s_q in [1, q). With
  // s_p = r^q mod p and s_q = r^p mod q it equals PaillierPublicKey::encryptWithRandomness(m, r).
  BigNum encryptWithResidueSeeds(const BigNum& m, const BigNum& sp, const BigNum& sq) const;

  // CRT decryption (two half-size exponentiations). Throws HeError on an invalid ciphertext.
  BigNum decrypt(const BigNum& c) const;
  // Textbook decryption m = L(c^lambda mod n^2) mu mod n, kept as the reference the CRT path is tested
  // and benchmarked against.
  BigNum decryptWithoutCrt(const BigNum& c) const;

 private:
  struct Half {  // one prime's share of the CRT decryption
    BigNum prime = BigNum::secret(), primeMinusOne = BigNum::secret(), square = BigNum::secret(),
           h = BigNum::secret();
    std::shared_ptr<BN_MONT_CTX> mont;  // Montgomery context of prime^2
  };
  Half makeHalf(const BigNum& prime, BN_CTX* ctx) const;
  BigNum halfDecrypt(const Half& half, const BigNum& c, BN_CTX* ctx) const;
  BigNum randomSeed(const Half& half, BN_CTX* ctx) const;
  BigNum encryptWith(const BigNum& m, const BigNum& sp, const BigNum& sq) const;

  PaillierPublicKey pub_;
  Half p_, q_;
  BigNum qInvModP_ = BigNum::secret();
  BigNum qSquaredInvModPSquared_ = BigNum::secret();  // CRT recombination of the n-th residue
  BigNum lambda_ = BigNum::secret(), mu_ = BigNum::secret();  // textbook path only
};

// Two random primes of modulusBits / 2 bits each (top two bits set, so n has exactly modulusBits bits),
// distinct in their top 100 bits (no Fermat factoring). modulusBits: even, >= kMinModulusBits.
PaillierPrivateKey generatePaillierKey(int modulusBits = kDefaultModulusBits);

}  // namespace pacsgw::codecs::he
