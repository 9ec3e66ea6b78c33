// The evaluation core of aes-256-gcm: GCM with a caller-chosen nonce and CTR-only (unverified) decryption.
#include "codecs/eval/cores.h"

#include <openssl/err.h>
#include <openssl/evp.h>

#include <algorithm>
#include <stdexcept>

namespace pacsgw::eval {
namespace {

// AES-256-GCM exactly as the backend applies it: all segments in order as one message, the AAD as GCM
// associated data, a 96-bit nonce and a 128-bit tag.
class AesGcmCore final : public DeterministicCore {
 public:
  std::string description() const override { return "AES-256-GCM (OpenSSL EVP) with a chosen 96-bit nonce"; }
  std::size_t nonceBytes() const override { return 12; }

  codecs::CipherRecord encryptWithNonce(codecs::PixelBuffer& pixels, const SecretBytes& key,
                                        const std::vector<std::uint8_t>& aad,
                                        const std::vector<std::uint8_t>& nonce) override {
    codecs::CipherRecord rec;
    rec.backendId = "aes-256-gcm";
    rec.backendVersion = "1";
    rec.nonce = nonce;
    rec.tag.resize(16);
    Ctx ctx;
    if (EVP_EncryptInit_ex2(ctx.get(), EVP_aes_256_gcm(), key.data(), nonce.data(), nullptr) != 1)
      fail("init");
    int outl = 0;
    if (!aad.empty() && EVP_EncryptUpdate(ctx.get(), nullptr, &outl, aad.data(), static_cast<int>(aad.size())) != 1)
      fail("aad");
    for (auto& s : pixels.segments) update(ctx.get(), s, true);
    unsigned char last[16];
    if (EVP_EncryptFinal_ex(ctx.get(), last, &outl) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_GET_TAG, 16, rec.tag.data()) != 1)
      fail("final");
    return rec;
  }

  void decryptUnverified(codecs::PixelBuffer& pixels, const SecretBytes& key, const std::vector<std::uint8_t>&,
                         const codecs::CipherRecord& record) override {
    // GCM's confidentiality part is CTR mode: decryption without the final tag check.
    Ctx ctx;
    if (EVP_DecryptInit_ex2(ctx.get(), EVP_aes_256_gcm(), key.data(), record.nonce.data(), nullptr) != 1)
      fail("init");
    for (auto& s : pixels.segments) update(ctx.get(), s, false);
  }

  std::vector<Stream> keyStreams(const SecretBytes& key, const codecs::CipherRecord& record,
                                 std::size_t bits) override {
    // The GCM key stream for this nonce is the encryption of zeros.
    std::vector<std::uint8_t> zeros((bits + 7) / 8, 0);
    codecs::PixelBuffer buf;
    buf.segments.push_back({zeros.data(), zeros.size()});
    Ctx ctx;
    if (EVP_EncryptInit_ex2(ctx.get(), EVP_aes_256_gcm(), key.data(), record.nonce.data(), nullptr) != 1)
      fail("init");
    update(ctx.get(), buf.segments[0], true);
    return {Stream{"keystream", std::move(zeros)}};
  }

 private:
  struct Ctx {
    EVP_CIPHER_CTX* p = EVP_CIPHER_CTX_new();
    ~Ctx() { EVP_CIPHER_CTX_free(p); }
    EVP_CIPHER_CTX* get() const { return p; }
  };
  [[noreturn]] static void fail(const char* what) {
    ERR_clear_error();
    throw codecs::CipherError(std::string("eval aes-256-gcm core: ") + what + " failed");
  }
  static void update(EVP_CIPHER_CTX* ctx, codecs::ByteRange& s, bool encrypt) {
    std::size_t off = 0;
    while (off < s.size) {
      const int n = static_cast<int>(std::min<std::size_t>(s.size - off, std::size_t{1} << 30));
      int outl = 0;
      const int ok = encrypt ? EVP_EncryptUpdate(ctx, s.data + off, &outl, s.data + off, n)
                             : EVP_DecryptUpdate(ctx, s.data + off, &outl, s.data + off, n);
      if (ok != 1 || outl != n) fail("update");
      off += static_cast<std::size_t>(n);
    }
  }
};

}  // namespace

const EvalCoreEntry& aesGcmEvalCore() {
  static const EvalCoreEntry entry{[](const std::string&) -> std::unique_ptr<DeterministicCore> {
                                     return std::make_unique<AesGcmCore>();
                                   },
                                   nullptr};
  return entry;
}

}  // namespace pacsgw::eval
