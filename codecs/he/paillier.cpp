// Paillier on OpenSSL BIGNUM: key generation, encryption with fresh randomness, CRT decryption and the
// homomorphic operations. See paillier.h for the equations.
#include "codecs/he/paillier.h"

#include <openssl/rand.h>

namespace pacsgw::codecs::he {
namespace {

std::shared_ptr<BN_MONT_CTX> montFor(const BigNum& modulus, BN_CTX* ctx) {
  std::shared_ptr<BN_MONT_CTX> m(BN_MONT_CTX_new(), MontFree{});
  if (!m) throw HeError("paillier: out of memory");
  bnCheck(BN_MONT_CTX_set(m.get(), modulus.get(), ctx), "BN_MONT_CTX_set");
  return m;
}

// base^exp mod m in constant time with respect to the (secret) base and exponent.
BigNum expConstTime(const BigNum& base, const BigNum& exp, const BigNum& m, BN_MONT_CTX* mont, BN_CTX* ctx) {
  BigNum b = BigNum::secret(), e = BigNum::secret(), out = BigNum::secret();
  bnCheck(BN_nnmod(b.get(), base.get(), m.get(), ctx), "BN_nnmod");
  if (BN_copy(e.get(), exp.get()) == nullptr) throw HeError("paillier: BN_copy failed");
  BN_set_flags(b.get(), BN_FLG_CONSTTIME);
  BN_set_flags(e.get(), BN_FLG_CONSTTIME);
  bnCheck(BN_mod_exp_mont_consttime(out.get(), b.get(), e.get(), m.get(), ctx, mont), "BN_mod_exp_mont_consttime");
  return out;
}

// L_d(x) = (x - 1) / d, exact for the x this code produces (x = 1 mod d).
BigNum functionL(const BigNum& x, const BigNum& d, BN_CTX* ctx) {
  BigNum t = BigNum::secret(), out = BigNum::secret(), rem = BigNum::secret();
  if (BN_copy(t.get(), x.get()) == nullptr) throw HeError("paillier: BN_copy failed");
  bnCheck(BN_sub_word(t.get(), 1), "BN_sub_word");
  bnCheck(BN_div(out.get(), rem.get(), t.get(), d.get(), ctx), "BN_div");
  if (!BN_is_zero(rem.get())) throw HeError("paillier: invalid ciphertext (L function not exact)");
  return out;
}

}  // namespace

// ---- public key --------------------------------------------------------------------------------------

PaillierPublicKey::PaillierPublicKey(const BigNum& n) : n_(n) {
  if (n_.bits() < kMinModulusBits) throw HeError("paillier: modulus below " + std::to_string(kMinModulusBits) + " bits");
  if (!BN_is_odd(n_.get())) throw HeError("paillier: modulus must be odd");
  BnCtx ctx;
  bnCheck(BN_sqr(n2_.get(), n_.get(), ctx.get()), "BN_sqr");
  montN2_ = montFor(n2_, ctx.get());
}

void PaillierPublicKey::checkCiphertext(const BigNum& c) const {
  if (BN_is_zero(c.get()) || BN_is_negative(c.get()) || BN_cmp(c.get(), n2_.get()) >= 0)
    throw HeError("paillier: ciphertext out of range");
  BnCtx ctx;
  BigNum g;
  bnCheck(BN_gcd(g.get(), c.get(), n_.get(), ctx.get()), "BN_gcd");
  if (!BN_is_one(g.get())) throw HeError("paillier: ciphertext not invertible modulo n");
}

BigNum PaillierPublicKey::encrypt(const BigNum& m) const {
  BnCtx ctx;
  BigNum r = BigNum::secret(), g;
  // r uniform in [1, n) with gcd(r, n) = 1 (a failure would have factored n: practically never).
  for (;;) {
    bnCheck(BN_priv_rand_range_ex(r.get(), n_.get(), 0, ctx.get()), "BN_priv_rand_range_ex");
    if (BN_is_zero(r.get())) continue;
    bnCheck(BN_gcd(g.get(), r.get(), n_.get(), ctx.get()), "BN_gcd");
    if (BN_is_one(g.get())) break;
  }
  return encryptWith(m, r);
}

// A separate function so that the caller-chosen entry point (tests only) is not linked into the service
// binary (--gc-sections drops it).
BigNum PaillierPublicKey::encryptWithRandomness(const BigNum& m, const BigNum& r) const { return encryptWith(m, r); }

BigNum PaillierPublicKey::encryptWith(const BigNum& m, const BigNum& r) const {
  if (BN_is_negative(m.get()) || BN_cmp(m.get(), n_.get()) >= 0) throw HeError("paillier: plaintext out of [0, n)");
  if (BN_is_zero(r.get()) || BN_is_negative(r.get()) || BN_cmp(r.get(), n_.get()) >= 0)
    throw HeError("paillier: randomness out of (0, n)");
  BnCtx ctx;
  // r^n mod n^2: r is secret (it would reveal m), n public.
  const BigNum rn = expConstTime(r, n_, n2_, montN2_.get(), ctx.get());
  // g^m = (1 + n)^m = 1 + m n mod n^2: one multiplication instead of an exponentiation.
  BigNum gm = BigNum::secret(), c;
  bnCheck(BN_mul(gm.get(), m.get(), n_.get(), ctx.get()), "BN_mul");
  bnCheck(BN_add_word(gm.get(), 1), "BN_add_word");
  bnCheck(BN_mod_mul(c.get(), gm.get(), rn.get(), n2_.get(), ctx.get()), "BN_mod_mul");
  return c;
}

BigNum PaillierPublicKey::add(const BigNum& a, const BigNum& b) const {
  BnCtx ctx;
  BigNum c;
  bnCheck(BN_mod_mul(c.get(), a.get(), b.get(), n2_.get(), ctx.get()), "BN_mod_mul");
  return c;
}

BigNum PaillierPublicKey::addPlain(const BigNum& a, const BigNum& k) const {
  if (BN_is_negative(k.get()) || BN_cmp(k.get(), n_.get()) >= 0) throw HeError("paillier: plaintext out of [0, n)");
  BnCtx ctx;
  BigNum gk, c;
  bnCheck(BN_mul(gk.get(), k.get(), n_.get(), ctx.get()), "BN_mul");
  bnCheck(BN_add_word(gk.get(), 1), "BN_add_word");
  bnCheck(BN_mod_mul(c.get(), a.get(), gk.get(), n2_.get(), ctx.get()), "BN_mod_mul");
  return c;
}

BigNum PaillierPublicKey::multiplyPlain(const BigNum& a, const BigNum& k) const {
  if (BN_is_negative(k.get()) || BN_cmp(k.get(), n_.get()) >= 0) throw HeError("paillier: scalar out of [0, n)");
  BnCtx ctx;
  BigNum c;
  // Ciphertext and scalar are public: the ordinary (faster) Montgomery exponentiation.
  bnCheck(BN_mod_exp_mont(c.get(), a.get(), k.get(), n2_.get(), ctx.get(), montN2_.get()), "BN_mod_exp_mont");
  return c;
}

// ---- private key -------------------------------------------------------------------------------------

namespace {
BigNum product(const BigNum& p, const BigNum& q) {
  BnCtx ctx;
  BigNum n;
  bnCheck(BN_mul(n.get(), p.get(), q.get(), ctx.get()), "BN_mul");
  return n;
}
}  // namespace

PaillierPrivateKey::PaillierPrivateKey(const BigNum& p, const BigNum& q) : pub_(product(p, q)) {
  BnCtx ctx;
  if (p.bits() != q.bits()) throw HeError("paillier: p and q must have the same bit length");
  if (p == q) throw HeError("paillier: p and q must differ");
  for (const BigNum* prime : {&p, &q})
    if (BN_check_prime(prime->get(), ctx.get(), nullptr) != 1) throw HeError("paillier: p and q must be prime");
  p_ = makeHalf(p, ctx.get());
  q_ = makeHalf(q, ctx.get());
  BN_set_flags(qInvModP_.get(), BN_FLG_CONSTTIME);
  if (BN_mod_inverse(qInvModP_.get(), q.get(), p.get(), ctx.get()) == nullptr) throw HeError("paillier: q not invertible mod p");
  BN_set_flags(qSquaredInvModPSquared_.get(), BN_FLG_CONSTTIME);
  if (BN_mod_inverse(qSquaredInvModPSquared_.get(), q_.square.get(), p_.square.get(), ctx.get()) == nullptr)
    throw HeError("paillier: q^2 not invertible mod p^2");

  // Textbook reference: lambda = lcm(p - 1, q - 1), mu = L(g^lambda mod n^2)^-1 mod n.
  BigNum gcd = BigNum::secret(), prod = BigNum::secret(), rem = BigNum::secret();
  bnCheck(BN_gcd(gcd.get(), p_.primeMinusOne.get(), q_.primeMinusOne.get(), ctx.get()), "BN_gcd");
  bnCheck(BN_mul(prod.get(), p_.primeMinusOne.get(), q_.primeMinusOne.get(), ctx.get()), "BN_mul");
  bnCheck(BN_div(lambda_.get(), rem.get(), prod.get(), gcd.get(), ctx.get()), "BN_div");
  // gcd(n, (p-1)(q-1)) = 1 is what makes g = n + 1 a valid base; equal-size primes guarantee it, check anyway.
  bnCheck(BN_gcd(gcd.get(), pub_.n().get(), prod.get(), ctx.get()), "BN_gcd");
  if (!BN_is_one(gcd.get())) throw HeError("paillier: gcd(n, phi(n)) != 1");
  BigNum g = pub_.n();
  bnCheck(BN_add_word(g.get(), 1), "BN_add_word");
  const BigNum x = expConstTime(g, lambda_, pub_.nSquared(), nullptr, ctx.get());
  const BigNum l = functionL(x, pub_.n(), ctx.get());
  if (BN_mod_inverse(mu_.get(), l.get(), pub_.n().get(), ctx.get()) == nullptr) throw HeError("paillier: mu");
}

PaillierPrivateKey::Half PaillierPrivateKey::makeHalf(const BigNum& prime, BN_CTX* ctx) const {
  Half h;
  if (BN_copy(h.prime.get(), prime.get()) == nullptr || BN_copy(h.primeMinusOne.get(), prime.get()) == nullptr)
    throw HeError("paillier: BN_copy failed");
  for (BIGNUM* b : {h.prime.get(), h.primeMinusOne.get(), h.square.get(), h.h.get()}) BN_set_flags(b, BN_FLG_CONSTTIME);
  bnCheck(BN_sub_word(h.primeMinusOne.get(), 1), "BN_sub_word");
  bnCheck(BN_sqr(h.square.get(), prime.get(), ctx), "BN_sqr");
  h.mont = montFor(h.square, ctx);
  // h = L_p(g^(p-1) mod p^2)^-1 mod p
  BigNum g = pub_.n();
  bnCheck(BN_add_word(g.get(), 1), "BN_add_word");
  const BigNum x = expConstTime(g, h.primeMinusOne, h.square, h.mont.get(), ctx);
  const BigNum l = functionL(x, h.prime, ctx);
  if (BN_mod_inverse(h.h.get(), l.get(), h.prime.get(), ctx) == nullptr) throw HeError("paillier: h_p not invertible");
  return h;
}

BigNum PaillierPrivateKey::halfDecrypt(const Half& half, const BigNum& c, BN_CTX* ctx) const {
  const BigNum x = expConstTime(c, half.primeMinusOne, half.square, half.mont.get(), ctx);
  const BigNum l = functionL(x, half.prime, ctx);
  BigNum m = BigNum::secret();
  bnCheck(BN_mod_mul(m.get(), l.get(), half.h.get(), half.prime.get(), ctx), "BN_mod_mul");
  return m;
}

BigNum PaillierPrivateKey::randomSeed(const Half& half, BN_CTX* ctx) const {
  BigNum s = BigNum::secret();
  do {
    bnCheck(BN_priv_rand_range_ex(s.get(), half.prime.get(), 0, ctx), "BN_priv_rand_range_ex");
  } while (BN_is_zero(s.get()));
  return s;
}

BigNum PaillierPrivateKey::encrypt(const BigNum& m) const {
  BnCtx ctx;
  const BigNum sp = randomSeed(p_, ctx.get());
  const BigNum sq = randomSeed(q_, ctx.get());
  return encryptWith(m, sp, sq);
}

BigNum PaillierPrivateKey::encryptWithResidueSeeds(const BigNum& m, const BigNum& sp, const BigNum& sq) const {
  return encryptWith(m, sp, sq);
}

BigNum PaillierPrivateKey::encryptWith(const BigNum& m, const BigNum& sp, const BigNum& sq) const {
  const BigNum& n = pub_.n();
  if (BN_is_negative(m.get()) || BN_cmp(m.get(), n.get()) >= 0) throw HeError("paillier: plaintext out of [0, n)");
  for (const auto* pair : {&sp, &sq})
    if (BN_is_zero(pair->get()) || BN_is_negative(pair->get())) throw HeError("paillier: residue seed out of range");
  if (BN_cmp(sp.get(), p_.prime.get()) >= 0 || BN_cmp(sq.get(), q_.prime.get()) >= 0)
    throw HeError("paillier: residue seed out of range");
  BnCtx ctx;
  // x_p = s_p^p mod p^2, x_q = s_q^q mod q^2: secret bases, exponents and moduli.
  const BigNum xp = expConstTime(sp, p_.prime, p_.square, p_.mont.get(), ctx.get());
  const BigNum xq = expConstTime(sq, q_.prime, q_.square, q_.mont.get(), ctx.get());
  // x = x_q + q^2 ((x_p - x_q) (q^2)^-1 mod p^2), which is < p^2 q^2 = n^2.
  BigNum t = BigNum::secret(), x = BigNum::secret();
  bnCheck(BN_mod_sub(t.get(), xp.get(), xq.get(), p_.square.get(), ctx.get()), "BN_mod_sub");
  bnCheck(BN_mod_mul(t.get(), t.get(), qSquaredInvModPSquared_.get(), p_.square.get(), ctx.get()), "BN_mod_mul");
  bnCheck(BN_mul(x.get(), t.get(), q_.square.get(), ctx.get()), "BN_mul");
  bnCheck(BN_add(x.get(), x.get(), xq.get()), "BN_add");
  // c = (1 + m n) x mod n^2
  BigNum gm = BigNum::secret(), c;
  bnCheck(BN_mul(gm.get(), m.get(), n.get(), ctx.get()), "BN_mul");
  bnCheck(BN_add_word(gm.get(), 1), "BN_add_word");
  bnCheck(BN_mod_mul(c.get(), gm.get(), x.get(), pub_.nSquared().get(), ctx.get()), "BN_mod_mul");
  return c;
}

BigNum PaillierPrivateKey::decrypt(const BigNum& c) const {
  BnCtx ctx;
  // 0 < c < n^2 and gcd(c, n) = 1, the latter as c mod p != 0 and c mod q != 0: two reductions instead of
  // a (constant-time, slow) gcd with n, which cost as much as a third of a decryption.
  if (BN_is_zero(c.get()) || BN_is_negative(c.get()) || BN_cmp(c.get(), pub_.nSquared().get()) >= 0)
    throw HeError("paillier: ciphertext out of range");
  for (const Half* half : {&p_, &q_}) {
    BigNum r = BigNum::secret();
    bnCheck(BN_mod(r.get(), c.get(), half->prime.get(), ctx.get()), "BN_mod");
    if (BN_is_zero(r.get())) throw HeError("paillier: ciphertext not invertible modulo n");
  }
  const BigNum mp = halfDecrypt(p_, c, ctx.get());
  const BigNum mq = halfDecrypt(q_, c, ctx.get());
  // Garner: m = m_q + q ((m_p - m_q) q^-1 mod p), which is < p q = n.
  BigNum t = BigNum::secret(), m = BigNum::secret();
  bnCheck(BN_mod_sub(t.get(), mp.get(), mq.get(), p_.prime.get(), ctx.get()), "BN_mod_sub");
  bnCheck(BN_mod_mul(t.get(), t.get(), qInvModP_.get(), p_.prime.get(), ctx.get()), "BN_mod_mul");
  bnCheck(BN_mul(m.get(), t.get(), q_.prime.get(), ctx.get()), "BN_mul");
  bnCheck(BN_add(m.get(), m.get(), mq.get()), "BN_add");
  return m;
}

BigNum PaillierPrivateKey::decryptWithoutCrt(const BigNum& c) const {
  pub_.checkCiphertext(c);
  BnCtx ctx;
  const BigNum x = expConstTime(c, lambda_, pub_.nSquared(), nullptr, ctx.get());
  const BigNum l = functionL(x, pub_.n(), ctx.get());
  BigNum m = BigNum::secret();
  bnCheck(BN_mod_mul(m.get(), l.get(), mu_.get(), pub_.n().get(), ctx.get()), "BN_mod_mul");
  return m;
}

// ---- key generation ----------------------------------------------------------------------------------

PaillierPrivateKey generatePaillierKey(int modulusBits) {
  if (modulusBits < kMinModulusBits || modulusBits % 2 != 0)
    throw HeError("paillier: the modulus must have an even number of bits, at least " +
                  std::to_string(kMinModulusBits));
  const int half = modulusBits / 2;
  BnCtx ctx;
  for (int attempt = 0; attempt < 64; ++attempt) {
    BigNum p = BigNum::secret(), q = BigNum::secret(), diff = BigNum::secret();
    // BN_generate_prime_ex2 sets the top two bits, so p q has exactly modulusBits bits.
    bnCheck(BN_generate_prime_ex2(p.get(), half, 0, nullptr, nullptr, nullptr, ctx.get()), "BN_generate_prime_ex2");
    bnCheck(BN_generate_prime_ex2(q.get(), half, 0, nullptr, nullptr, nullptr, ctx.get()), "BN_generate_prime_ex2");
    bnCheck(BN_sub(diff.get(), p.get(), q.get()), "BN_sub");
    if (BN_num_bits(diff.get()) <= half - 100) continue;  // too close: Fermat's method would factor n
    PaillierPrivateKey key(p, q);
    if (key.publicKey().modulusBits() != modulusBits) continue;
    return key;
  }
  throw HeError("paillier: key generation did not converge");
}

}  // namespace pacsgw::codecs::he
