#pragma once
// Owning handles for OpenSSL big numbers. Secret values use BigNum::secret(): constant-time flag set
// and the memory wiped when freed.
#include <openssl/bn.h>

#include <memory>
#include <stdexcept>
#include <string>

namespace pacsgw::codecs::he {

class HeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct BnFree {
  void operator()(BIGNUM* b) const { BN_clear_free(b); }  // clears public values too: cheap, and never wrong
};
struct BnCtxFree {
  void operator()(BN_CTX* c) const { BN_CTX_free(c); }
};
struct MontFree {
  void operator()(BN_MONT_CTX* m) const { BN_MONT_CTX_free(m); }
};

class BigNum {
 public:
  BigNum() : p_(BN_new()) { check(); }
  static BigNum secret() {
    BigNum b;
    BN_set_flags(b.get(), BN_FLG_CONSTTIME);
    return b;
  }
  static BigNum fromWord(BN_ULONG w) {
    BigNum b;
    if (BN_set_word(b.get(), w) != 1) throw HeError("BN_set_word failed");
    return b;
  }
  static BigNum fromHex(const std::string& hex) {
    BIGNUM* raw = nullptr;
    if (BN_hex2bn(&raw, hex.c_str()) != static_cast<int>(hex.size())) {
      BN_free(raw);
      throw HeError("not a hexadecimal number");
    }
    BigNum b(raw);
    return b;
  }
  // Copies keep the constant-time marking (BN_dup alone drops it).
  BigNum(const BigNum& o) : p_(BN_dup(o.get())) {
    check();
    if (BN_get_flags(o.get(), BN_FLG_CONSTTIME)) BN_set_flags(p_.get(), BN_FLG_CONSTTIME);
  }
  BigNum& operator=(const BigNum& o) {
    if (this != &o && BN_copy(p_.get(), o.get()) == nullptr) throw HeError("BN_copy failed");
    return *this;
  }
  BigNum(BigNum&&) noexcept = default;
  BigNum& operator=(BigNum&&) noexcept = default;

  BIGNUM* get() { return p_.get(); }
  const BIGNUM* get() const { return p_.get(); }
  std::string hex() const {
    char* s = BN_bn2hex(p_.get());
    if (s == nullptr) throw HeError("BN_bn2hex failed");
    std::string out(s);
    OPENSSL_free(s);
    return out;
  }
  int bits() const { return BN_num_bits(p_.get()); }
  friend bool operator==(const BigNum& a, const BigNum& b) { return BN_cmp(a.get(), b.get()) == 0; }
  friend bool operator!=(const BigNum& a, const BigNum& b) { return !(a == b); }

 private:
  explicit BigNum(BIGNUM* raw) : p_(raw) { check(); }
  void check() const {
    if (!p_) throw HeError("out of memory for a big number");
  }
  std::unique_ptr<BIGNUM, BnFree> p_;
};

// A scratch context for one operation (BN_CTX is not thread-safe; one per call).
class BnCtx {
 public:
  BnCtx() : c_(BN_CTX_secure_new()) {
    if (!c_) throw HeError("out of memory for a BN_CTX");
  }
  BN_CTX* get() const { return c_.get(); }

 private:
  std::unique_ptr<BN_CTX, BnCtxFree> c_;
};

inline void bnCheck(int ok, const char* what) {
  if (ok != 1) throw HeError(std::string("paillier: ") + what + " failed");
}

}  // namespace pacsgw::codecs::he
