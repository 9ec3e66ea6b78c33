// Backend "aes-256-gcm": every segment of a PixelBuffer is one GCM message (one nonce, one tag), processed
// in place with OpenSSL EVP. GCM is a stream mode, so lengths are preserved and fragments stay fragments.
#include "codecs/aes_gcm.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <climits>
#include <string>

namespace pacsgw::codecs::detail {
namespace {

// EVP takes int lengths; large segments are fed in 1 GiB steps (GCM keeps its state across calls).
constexpr std::size_t kChunkBytes = std::size_t{1} << 30;
// NIST SP 800-38D: at most 2^39 - 256 bits of plaintext per invocation.
constexpr std::uint64_t kMaxMessageBytes = (std::uint64_t{1} << 36) - 32;

struct CtxDeleter {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CtxDeleter>;

const EVP_CIPHER* gcmCipher() {
  // Fetched once and kept for the process lifetime; EVP_aes_256_gcm() would re-fetch per message.
  static EVP_CIPHER* fetched = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  return fetched != nullptr ? fetched : EVP_aes_256_gcm();
}

[[noreturn]] void fail(const std::string& what) {
  ERR_clear_error();  // do not leave OpenSSL's queue for an unrelated caller to find
  throw CipherError("aes-256-gcm: " + what);
}

void checkKey(const SecretBytes& key) {
  if (key.size() != kAesGcmKeyBytes || key.data() == nullptr)
    throw CipherError("aes-256-gcm: the data key must be 32 bytes");
}

void checkSegments(const PixelBuffer& pixels) {
  std::uint64_t total = 0;
  for (const auto& s : pixels.segments) {
    if (s.size > 0 && s.data == nullptr) throw CipherError("aes-256-gcm: segment without data");
    total += s.size;
    if (total > kMaxMessageBytes) throw CipherError("aes-256-gcm: pixel data exceeds the GCM message limit");
  }
}

CtxPtr newContext(const SecretBytes& key, const std::vector<std::uint8_t>& nonce, bool encrypt) {
  CtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx) fail("cannot allocate a cipher context");
  // The GCM default IV length is 96 bits, which is what we use.
  const int ok = encrypt ? EVP_EncryptInit_ex2(ctx.get(), gcmCipher(), key.data(), nonce.data(), nullptr)
                         : EVP_DecryptInit_ex2(ctx.get(), gcmCipher(), key.data(), nonce.data(), nullptr);
  if (ok != 1) fail("cipher initialisation failed");
  return ctx;
}

void addAad(EVP_CIPHER_CTX* ctx, const std::vector<std::uint8_t>& aad, bool encrypt) {
  if (aad.empty()) return;
  if (aad.size() > static_cast<std::size_t>(INT_MAX)) fail("associated data too large");
  int outl = 0;
  const int n = static_cast<int>(aad.size());
  const int ok = encrypt ? EVP_EncryptUpdate(ctx, nullptr, &outl, aad.data(), n)
                         : EVP_DecryptUpdate(ctx, nullptr, &outl, aad.data(), n);
  if (ok != 1) fail("associated data could not be processed");
}

// Transforms up to `limit` bytes of the segments in place, in order. Returns the number of bytes
// transformed; less than requested only if OpenSSL failed.
std::size_t transform(EVP_CIPHER_CTX* ctx, PixelBuffer& pixels, bool encrypt, std::size_t limit) {
  std::size_t done = 0;
  for (auto& seg : pixels.segments) {
    std::size_t offset = 0;
    while (offset < seg.size && done < limit) {
      const std::size_t n = std::min({kChunkBytes, seg.size - offset, limit - done});
      std::uint8_t* p = seg.data + offset;
      int outl = 0;
      const int ok = encrypt ? EVP_EncryptUpdate(ctx, p, &outl, p, static_cast<int>(n))
                             : EVP_DecryptUpdate(ctx, p, &outl, p, static_cast<int>(n));
      // GCM never buffers: anything but a full-length output is a failure.
      if (ok != 1 || outl != static_cast<int>(n)) return done;
      offset += n;
      done += n;
    }
  }
  return done;
}

// GCM encryption and decryption XOR the same keystream, so re-applying it to the first `bytes` bytes
// undoes a partial or unverified transform. If even that fails, the bytes are wiped.
void restore(PixelBuffer& pixels, const SecretBytes& key, const std::vector<std::uint8_t>& nonce,
             std::size_t bytes) {
  if (bytes == 0) return;
  bool ok = false;
  if (EVP_CIPHER_CTX* raw = EVP_CIPHER_CTX_new()) {
    CtxPtr ctx(raw);
    ok = EVP_EncryptInit_ex2(ctx.get(), gcmCipher(), key.data(), nonce.data(), nullptr) == 1 &&
         transform(ctx.get(), pixels, true, bytes) == bytes;
  }
  if (!ok) {
    std::size_t left = bytes;
    for (auto& seg : pixels.segments) {
      const std::size_t n = std::min(left, seg.size);
      if (n > 0) OPENSSL_cleanse(seg.data, n);
      left -= n;
    }
  }
  ERR_clear_error();
}

BackendInfo aesGcmInfo() {
  BackendInfo i;
  i.id = kAesGcmId;
  i.version = kAesGcmVersion;
  i.lossless = true;
  i.authenticated = true;
  i.supportsEncapsulated = true;
  i.supportsFloat = true;
  i.layouts = "any: native integer pixel data of every bit depth, signedness, sample count and "
              "frame count; Float and Double Float Pixel Data; encapsulated fragments as opaque bytes";
  i.summary = "AES-256-GCM (OpenSSL), one random 96-bit nonce and 128-bit tag per object, "
              "bit-exact and authenticated";
  return i;
}

class AesGcmCipher final : public PixelCipher {
 public:
  const BackendInfo& info() const override { return aesGcmBackend().info; }

  // Opaque bytes in, same bytes out: every layout is protected losslessly.
  void checkSupported(const PixelLayout&) const override {}

  CipherRecord encrypt(PixelBuffer& pixels, const SecretBytes& dataKey,
                       const std::vector<std::uint8_t>& aad) override {
    CipherRecord record;
    record.backendId = kAesGcmId;
    record.backendVersion = kAesGcmVersion;
    record.nonce.resize(kAesGcmNonceBytes);
    // A fresh random nonce per object; keys are per study/series/instance, far below the 2^32
    // invocations per key that SP 800-38D allows for random nonces.
    if (RAND_bytes(record.nonce.data(), static_cast<int>(record.nonce.size())) != 1)
      fail("the random generator failed");
    record.tag = aesGcmSeal(pixels, dataKey, record.nonce, aad);
    return record;
  }

  void decrypt(PixelBuffer& pixels, const SecretBytes& dataKey, const std::vector<std::uint8_t>& aad,
               const CipherRecord& record) override {
    if (record.backendId != kAesGcmId)
      throw CipherError("aes-256-gcm: the key reference names another backend");
    if (record.backendVersion != kAesGcmVersion)
      throw CipherError("aes-256-gcm: unsupported backend version");
    // This backend writes no parameters; any are an alteration of the key reference.
    if (!record.params.empty())
      throw AuthenticationError("aes-256-gcm: unexpected backend parameters");
    aesGcmOpen(pixels, dataKey, record.nonce, aad, record.tag);
  }
};

}  // namespace


std::vector<std::uint8_t> aesGcmSeal(PixelBuffer& pixels, const SecretBytes& key,
                                     const std::vector<std::uint8_t>& nonce,
                                     const std::vector<std::uint8_t>& aad) {
  checkKey(key);
  if (nonce.size() != kAesGcmNonceBytes) throw CipherError("aes-256-gcm: the nonce must be 12 bytes");
  checkSegments(pixels);
  const std::size_t total = pixels.totalBytes();

  CtxPtr ctx = newContext(key, nonce, true);
  addAad(ctx.get(), aad, true);
  const std::size_t done = transform(ctx.get(), pixels, true, total);
  std::vector<std::uint8_t> tag(kAesGcmTagBytes);
  int outl = 0;
  std::uint8_t unused[16];
  if (done != total || EVP_EncryptFinal_ex(ctx.get(), unused, &outl) != 1 || outl != 0 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_GET_TAG, static_cast<int>(tag.size()), tag.data()) != 1) {
    restore(pixels, key, nonce, done);  // leave the caller's plaintext as it was
    fail("encryption failed");
  }
  return tag;
}

void aesGcmOpen(PixelBuffer& pixels, const SecretBytes& key, const std::vector<std::uint8_t>& nonce,
                const std::vector<std::uint8_t>& aad, const std::vector<std::uint8_t>& tag) {
  checkKey(key);
  // A nonce or tag of another size cannot come from this backend: treat it as an altered record.
  if (nonce.size() != kAesGcmNonceBytes) throw AuthenticationError("aes-256-gcm: the nonce must be 12 bytes");
  if (tag.size() != kAesGcmTagBytes) throw AuthenticationError("aes-256-gcm: the tag must be 16 bytes");
  checkSegments(pixels);
  const std::size_t total = pixels.totalBytes();

  CtxPtr ctx = newContext(key, nonce, false);
  addAad(ctx.get(), aad, false);
  const std::size_t done = transform(ctx.get(), pixels, false, total);
  if (done != total) {
    restore(pixels, key, nonce, done);
    fail("decryption failed");
  }
  std::vector<std::uint8_t> expected(tag);  // EVP wants a mutable pointer
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_SET_TAG, static_cast<int>(expected.size()),
                          expected.data()) != 1) {
    restore(pixels, key, nonce, total);
    fail("the tag could not be set");
  }
  int outl = 0;
  std::uint8_t unused[16];
  // EVP_DecryptFinal_ex compares the tag in constant time.
  if (EVP_DecryptFinal_ex(ctx.get(), unused, &outl) != 1) {
    restore(pixels, key, nonce, total);
    ERR_clear_error();
    throw AuthenticationError(
        "aes-256-gcm: authentication failed (pixel data, key reference, bound attributes or key do not match)");
  }
}

struct AesGcmSealStream::Context {
  CtxPtr ctx;
};

AesGcmSealStream::AesGcmSealStream(const SecretBytes& key, const std::vector<std::uint8_t>& nonce,
                                   const std::vector<std::uint8_t>& aad)
    : context_(std::make_unique<Context>()) {
  checkKey(key);
  if (nonce.size() != kAesGcmNonceBytes) throw CipherError("aes-256-gcm: the nonce must be 12 bytes");
  context_->ctx = newContext(key, nonce, true);
  addAad(context_->ctx.get(), aad, true);
}

AesGcmSealStream::~AesGcmSealStream() = default;

void AesGcmSealStream::update(const std::uint8_t* plaintext, std::size_t size, std::uint8_t* ciphertext) {
  if (finished_) fail("data after the end of the message");
  if (size > kMaxMessageBytes - bytes_) fail("pixel data exceeds the GCM message limit");
  for (std::size_t done = 0; done < size;) {
    const std::size_t n = std::min(kChunkBytes, size - done);
    int outl = 0;
    if (EVP_EncryptUpdate(context_->ctx.get(), ciphertext + done, &outl, plaintext + done, static_cast<int>(n)) != 1 ||
        outl != static_cast<int>(n))
      fail("encryption failed");
    done += n;
  }
  bytes_ += size;
}

std::vector<std::uint8_t> AesGcmSealStream::finish() {
  if (finished_) fail("the message was already finished");
  finished_ = true;
  std::vector<std::uint8_t> tag(kAesGcmTagBytes);
  int outl = 0;
  std::uint8_t unused[16];
  if (EVP_EncryptFinal_ex(context_->ctx.get(), unused, &outl) != 1 || outl != 0 ||
      EVP_CIPHER_CTX_ctrl(context_->ctx.get(), EVP_CTRL_AEAD_GET_TAG, static_cast<int>(tag.size()), tag.data()) != 1)
    fail("encryption failed");
  return tag;
}

struct AesGcmOpenStream::Context {
  CtxPtr ctx;
};

AesGcmOpenStream::AesGcmOpenStream(const SecretBytes& key, const std::vector<std::uint8_t>& nonce,
                                   const std::vector<std::uint8_t>& aad)
    : context_(std::make_unique<Context>()) {
  checkKey(key);
  if (nonce.size() != kAesGcmNonceBytes) throw AuthenticationError("aes-256-gcm: the nonce must be 12 bytes");
  context_->ctx = newContext(key, nonce, false);
  addAad(context_->ctx.get(), aad, false);
}

AesGcmOpenStream::~AesGcmOpenStream() = default;

void AesGcmOpenStream::update(const std::uint8_t* ciphertext, std::size_t size, std::uint8_t* plaintext) {
  if (finished_) fail("data after the end of the message");
  if (size > kMaxMessageBytes - bytes_) fail("pixel data exceeds the GCM message limit");
  for (std::size_t done = 0; done < size;) {
    const std::size_t n = std::min(kChunkBytes, size - done);
    int outl = 0;
    if (EVP_DecryptUpdate(context_->ctx.get(), plaintext + done, &outl, ciphertext + done, static_cast<int>(n)) != 1 ||
        outl != static_cast<int>(n))
      fail("decryption failed");
    done += n;
  }
  bytes_ += size;
}

void AesGcmOpenStream::verify(const std::vector<std::uint8_t>& tag) {
  if (finished_) fail("the message was already finished");
  finished_ = true;
  if (tag.size() != kAesGcmTagBytes) throw AuthenticationError("aes-256-gcm: the tag must be 16 bytes");
  std::vector<std::uint8_t> expected(tag);  // EVP wants a mutable pointer
  if (EVP_CIPHER_CTX_ctrl(context_->ctx.get(), EVP_CTRL_AEAD_SET_TAG, static_cast<int>(expected.size()),
                          expected.data()) != 1)
    fail("the tag could not be set");
  int outl = 0;
  std::uint8_t unused[16];
  // EVP_DecryptFinal_ex compares the tag in constant time.
  if (EVP_DecryptFinal_ex(context_->ctx.get(), unused, &outl) != 1) {
    ERR_clear_error();
    throw AuthenticationError(
        "aes-256-gcm: authentication failed (pixel data, key reference, bound attributes or key do not match)");
  }
}

}  // namespace pacsgw::codecs::detail

namespace pacsgw::codecs {

const BackendEntry& aesGcmBackend() {
  static const BackendEntry entry{detail::aesGcmInfo(), [](const CipherOptions&) -> std::unique_ptr<PixelCipher> {
                                    // AES runs on the CPU whatever device was asked for.
                                    return std::make_unique<detail::AesGcmCipher>();
                                  }};
  return entry;
}

}  // namespace pacsgw::codecs
