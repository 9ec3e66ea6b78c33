// RFC 5649 AES key wrap with padding through the OpenSSL EVP interface.
#include "keystore/keystore.h"

#include <openssl/evp.h>
#include <openssl/kdf.h>

#include <memory>
#include <string>

namespace pacsgw::keystore {

namespace {

// Largest key we agree to wrap: far above any real data key, small enough that lengths cannot overflow.
constexpr std::size_t kMaxKeyBytes = 4096;

struct CtxFree {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CtxFree>;

const EVP_CIPHER* wrapCipherFor(std::size_t kekBytes) {
  switch (kekBytes) {
    case 16: return EVP_aes_128_wrap_pad();
    case 24: return EVP_aes_192_wrap_pad();
    case 32: return EVP_aes_256_wrap_pad();
    default: throw KeystoreError("key-encryption key must be 16, 24 or 32 bytes, got " + std::to_string(kekBytes));
  }
}

CtxPtr newWrapContext(const SecretBytes& kek, bool encrypt) {
  const EVP_CIPHER* cipher = wrapCipherFor(kek.size());
  CtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx) throw KeystoreError("out of memory creating a key-wrap context");
  // Wrap modes are refused by EVP unless explicitly allowed on the context.
  EVP_CIPHER_CTX_set_flags(ctx.get(), EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
  if (EVP_CipherInit_ex(ctx.get(), cipher, nullptr, kek.data(), nullptr, encrypt ? 1 : 0) != 1) {
    throw KeystoreError("cannot initialise AES key wrap");
  }
  return ctx;
}

constexpr char kRowWrapSalt[] = "pacsgw data key row wrap v2";

void appendField(std::vector<std::uint8_t>& out, const std::string& field) {
  // Length-prefixed so that no two different rows produce the same info string.
  const auto length = static_cast<std::uint32_t>(field.size());
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(length >> shift));
  out.insert(out.end(), field.begin(), field.end());
}

// HKDF-SHA-256(master key, salt, info = id || scope || scope UID): the per-row key-encryption key.
SecretBytes rowKek(const SecretBytes& kek, const std::string& keyId, KeyScope scope, const std::string& scopeUid) {
  std::vector<std::uint8_t> info;
  appendField(info, keyId);
  appendField(info, toString(scope));
  appendField(info, scopeUid);
  SecretBytes out(32);
  std::unique_ptr<EVP_PKEY_CTX, void (*)(EVP_PKEY_CTX*)> ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nullptr),
                                                             EVP_PKEY_CTX_free);
  std::size_t length = out.size();
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1 || EVP_PKEY_CTX_set_hkdf_md(ctx.get(), EVP_sha256()) != 1 ||
      EVP_PKEY_CTX_set1_hkdf_salt(ctx.get(), reinterpret_cast<const unsigned char*>(kRowWrapSalt),
                                  sizeof kRowWrapSalt - 1) != 1 ||
      EVP_PKEY_CTX_set1_hkdf_key(ctx.get(), kek.data(), static_cast<int>(kek.size())) != 1 ||
      EVP_PKEY_CTX_add1_hkdf_info(ctx.get(), info.data(), static_cast<int>(info.size())) != 1 ||
      EVP_PKEY_derive(ctx.get(), out.data(), &length) != 1 || length != out.size()) {
    throw KeystoreError("cannot derive the row key-encryption key (HKDF-SHA-256)");
  }
  return out;
}

}  // namespace

std::vector<std::uint8_t> wrapKeyForRow(const SecretBytes& kek, const std::string& keyId, KeyScope scope,
                                        const std::string& scopeUid, const SecretBytes& key) {
  return wrapKey(rowKek(kek, keyId, scope, scopeUid), key);
}

SecretBytes unwrapKeyForRow(const SecretBytes& kek, const std::string& keyId, KeyScope scope,
                            const std::string& scopeUid, const std::vector<std::uint8_t>& wrapped) {
  return unwrapKey(rowKek(kek, keyId, scope, scopeUid), wrapped);
}

std::vector<std::uint8_t> wrapKey(const SecretBytes& kek, const SecretBytes& key) {
  if (key.empty() || key.size() > kMaxKeyBytes) {
    throw KeystoreError("key to wrap must be 1.." + std::to_string(kMaxKeyBytes) + " bytes, got " +
                        std::to_string(key.size()));
  }
  CtxPtr ctx = newWrapContext(kek, true);
  // Output: the key padded to a multiple of 8 bytes plus the 8-byte integrity block.
  std::vector<std::uint8_t> out((key.size() + 7) / 8 * 8 + 8);
  int written = 0;
  if (EVP_EncryptUpdate(ctx.get(), out.data(), &written, key.data(), static_cast<int>(key.size())) != 1) {
    throw KeystoreError("AES key wrap failed");
  }
  int tail = 0;
  if (EVP_EncryptFinal_ex(ctx.get(), out.data() + written, &tail) != 1) throw KeystoreError("AES key wrap failed");
  const auto total = static_cast<std::size_t>(written) + static_cast<std::size_t>(tail);
  if (total != out.size()) throw KeystoreError("AES key wrap produced an unexpected length");
  return out;
}

SecretBytes unwrapKey(const SecretBytes& kek, const std::vector<std::uint8_t>& wrapped) {
  // RFC 5649: at least two 64-bit blocks, always a whole number of blocks.
  if (wrapped.size() < 16 || wrapped.size() % 8 != 0 || wrapped.size() > kMaxKeyBytes + 8) {
    throw KeystoreError("wrapped key has an invalid length (" + std::to_string(wrapped.size()) + " bytes)");
  }
  CtxPtr ctx = newWrapContext(kek, false);
  SecretBytes buffer(wrapped.size());  // generous: the plaintext is at most wrapped.size() - 8
  int written = 0;
  if (EVP_DecryptUpdate(ctx.get(), buffer.data(), &written, wrapped.data(), static_cast<int>(wrapped.size())) != 1 ||
      written <= 0) {
    throw KeystoreError("wrapped key failed its integrity check (wrong key-encryption key or corrupted data)");
  }
  int tail = 0;
  if (EVP_DecryptFinal_ex(ctx.get(), buffer.data() + written, &tail) != 1) {
    throw KeystoreError("wrapped key failed its integrity check (wrong key-encryption key or corrupted data)");
  }
  const auto total = static_cast<std::size_t>(written) + static_cast<std::size_t>(tail);
  if (total == 0 || total > wrapped.size() - 8) throw KeystoreError("AES key unwrap produced an unexpected length");
  return SecretBytes(buffer.data(), total);
}

}  // namespace pacsgw::keystore
