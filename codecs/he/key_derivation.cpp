// Deterministic Paillier keys from a secret seed (see key_derivation.h), and the per-process cache.
#include "codecs/he/key_derivation.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <array>
#include <list>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace pacsgw::codecs::he {
namespace {

constexpr const char* kPrimeLabel = "pacsgw paillier prime v1";
constexpr std::uint32_t kMaxCandidates = 1u << 20;  // ~2000 times the expected search length

struct KdfCtxFree {
  void operator()(EVP_KDF_CTX* c) const { EVP_KDF_CTX_free(c); }
};

void appendBe32(std::vector<unsigned char>& out, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<unsigned char>(v >> s));
}

// The i-th candidate for prime `name` as an odd number of exactly `bits` bits with its top two bits set.
BigNum candidate(EVP_KDF* hkdf, const std::uint8_t* seed, std::size_t seedBytes, const char* name, int modulusBits,
                 std::uint32_t index) {
  const std::size_t bytes = static_cast<std::size_t>(modulusBits) / 16;
  std::vector<unsigned char> info(kPrimeLabel, kPrimeLabel + std::char_traits<char>::length(kPrimeLabel));
  info.push_back(0);
  info.insert(info.end(), name, name + std::char_traits<char>::length(name));
  appendBe32(info, static_cast<std::uint32_t>(modulusBits));
  appendBe32(info, index);
  std::unique_ptr<EVP_KDF_CTX, KdfCtxFree> ctx(EVP_KDF_CTX_new(hkdf));
  if (!ctx) throw HeError("paillier: cannot allocate an HKDF context");
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<std::uint8_t*>(seed), seedBytes),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()),
      OSSL_PARAM_construct_end()};
  std::vector<unsigned char> out(bytes);
  if (EVP_KDF_derive(ctx.get(), out.data(), out.size(), params) != 1) {
    ERR_clear_error();
    throw HeError("paillier: HKDF failed");
  }
  BigNum c = BigNum::secret();
  const bool ok = BN_bin2bn(out.data(), static_cast<int>(out.size()), c.get()) != nullptr;
  OPENSSL_cleanse(out.data(), out.size());
  if (!ok) throw HeError("paillier: BN_bin2bn failed");
  const int top = modulusBits / 2 - 1;
  bnCheck(BN_set_bit(c.get(), top), "BN_set_bit");
  bnCheck(BN_set_bit(c.get(), top - 1), "BN_set_bit");
  bnCheck(BN_set_bit(c.get(), 0), "BN_set_bit");
  return c;
}

// First prime at or after candidate `index`; returns it and the index after it.
std::pair<BigNum, std::uint32_t> nextPrime(EVP_KDF* hkdf, const std::uint8_t* seed, std::size_t seedBytes,
                                           const char* name, int modulusBits, std::uint32_t index, BN_CTX* ctx) {
  for (; index < kMaxCandidates; ++index) {
    BigNum c = candidate(hkdf, seed, seedBytes, name, modulusBits, index);
    const int prime = BN_check_prime(c.get(), ctx, nullptr);
    if (prime < 0) throw HeError("paillier: primality test failed");
    if (prime == 1) return {std::move(c), index + 1};
  }
  throw HeError("paillier: no prime found in the candidate stream");
}

}  // namespace

PaillierPrivateKey derivePaillierKey(const std::uint8_t* seed, std::size_t seedBytes, int modulusBits) {
  if (modulusBits < kMinModulusBits || modulusBits % 32 != 0)
    throw HeError("paillier: a derived modulus needs a multiple of 32 bits, at least " +
                  std::to_string(kMinModulusBits));
  if (seed == nullptr || seedBytes < 32) throw HeError("paillier: the key seed must have at least 32 bytes");
  static EVP_KDF* hkdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  if (hkdf == nullptr) throw HeError("paillier: HKDF is not available");
  BnCtx ctx;
  const BigNum p = nextPrime(hkdf, seed, seedBytes, "p", modulusBits, 0, ctx.get()).first;
  std::uint32_t next = 0;
  for (;;) {
    auto [q, after] = nextPrime(hkdf, seed, seedBytes, "q", modulusBits, next, ctx.get());
    next = after;
    BigNum diff = BigNum::secret();
    bnCheck(BN_sub(diff.get(), p.get(), q.get()), "BN_sub");
    if (BN_num_bits(diff.get()) <= modulusBits / 2 - 100) continue;
    try {
      PaillierPrivateKey key(p, q);
      if (key.publicKey().modulusBits() == modulusBits) return key;
    } catch (const HeError&) {
      // p q one bit short, or gcd(n, phi) != 1: take the next q.
    }
  }
}

// ---- cache -------------------------------------------------------------------------------------------

struct PaillierKeyCache::Impl {
  std::mutex mutex;
  // Most recently used first.
  std::list<std::pair<std::array<unsigned char, 32>, std::shared_ptr<const PaillierPrivateKey>>> entries;
};

PaillierKeyCache::PaillierKeyCache(std::size_t capacity) : capacity_(capacity == 0 ? 1 : capacity), impl_(std::make_unique<Impl>()) {}
PaillierKeyCache::~PaillierKeyCache() = default;

std::shared_ptr<const PaillierPrivateKey> PaillierKeyCache::get(const std::uint8_t* seed, std::size_t seedBytes,
                                                                int modulusBits) {
  // The cache key is a hash of the seed and the size, never the seed itself.
  std::array<unsigned char, 32> id{};
  {
    std::vector<unsigned char> input{'p', 'a', 'c', 's', 'g', 'w', ' ', 'p', 'a', 'i', 'l', 'l', 'i', 'e', 'r', 0};
    appendBe32(input, static_cast<std::uint32_t>(modulusBits));
    input.insert(input.end(), seed, seed + seedBytes);
    unsigned int len = 0;
    const bool ok = EVP_Digest(input.data(), input.size(), id.data(), &len, EVP_sha256(), nullptr) == 1;
    OPENSSL_cleanse(input.data(), input.size());
    if (!ok) throw HeError("paillier: SHA-256 failed");
  }
  Impl* state = impl_.get();
  {
    std::lock_guard<std::mutex> lock(state->mutex);
    for (auto it = state->entries.begin(); it != state->entries.end(); ++it)
      if (CRYPTO_memcmp(it->first.data(), id.data(), id.size()) == 0) {
        state->entries.splice(state->entries.begin(), state->entries, it);
        return it->second;
      }
  }
  auto key = std::make_shared<const PaillierPrivateKey>(derivePaillierKey(seed, seedBytes, modulusBits));
  std::lock_guard<std::mutex> lock(state->mutex);
  state->entries.emplace_front(id, key);
  while (state->entries.size() > capacity_) state->entries.pop_back();
  return key;
}

PaillierKeyCache& PaillierKeyCache::shared() {
  static PaillierKeyCache cache;
  return cache;
}

}  // namespace pacsgw::codecs::he
