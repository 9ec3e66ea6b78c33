// Per-backend subkeys of a data key (HKDF-SHA-256, backend id in the info string).
#include "codecs/backend_key.h"

#include "codecs/pixel_cipher.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <memory>
#include <string>
#include <vector>

namespace pacsgw::codecs {
namespace {

constexpr const char* kSubkeyLabel = "pacsgw backend subkey v1";
constexpr std::size_t kKeyBytes = 32;

struct KdfCtxFree {
  void operator()(EVP_KDF_CTX* c) const { EVP_KDF_CTX_free(c); }
};

[[noreturn]] void fail(const std::string& what) {
  ERR_clear_error();
  throw CipherError("backend subkey: " + what);
}

}  // namespace

SecretBytes backendSubkey(const SecretBytes& dataKey, const std::string& backendId) {
  if (backendId.empty()) fail("the backend id is empty");
  return deriveSubkey(dataKey, kSubkeyLabel, backendId);
}

SecretBytes deriveSubkey(const SecretBytes& dataKey, const std::string& label, const std::string& context) {
  if (dataKey.size() != kKeyBytes || dataKey.data() == nullptr) fail("the data key must be 32 bytes");
  static EVP_KDF* hkdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  if (hkdf == nullptr) fail("HKDF is not available");
  std::unique_ptr<EVP_KDF_CTX, KdfCtxFree> ctx(EVP_KDF_CTX_new(hkdf));
  if (!ctx) fail("cannot allocate an HKDF context");

  // The 0x00 separator keeps "label" and "id" apart, whatever characters a future id contains.
  std::vector<unsigned char> info(label.begin(), label.end());
  info.push_back(0);
  info.insert(info.end(), context.begin(), context.end());
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<std::uint8_t*>(dataKey.data()), dataKey.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()),
      OSSL_PARAM_construct_end()};
  SecretBytes out(kKeyBytes);
  if (EVP_KDF_derive(ctx.get(), out.data(), out.size(), params) != 1) fail("HKDF failed");
  return out;
}

}  // namespace pacsgw::codecs
