// Backend "ae-aes": the autoencoder + AES scheme of Alslman et al. 2022 made fit for DICOM.
//  * Each frame is windowed (codecs/neural/frames.h), encoded by the autoencoder, its latent quantised to
//    8 bits; the window and latents of all frames form the plaintext, sealed with AES-256-GCM under a
//    subkey of the backend key ("pacsgw ae-aes v1 latent") with a fresh 96-bit nonce: the backend payload.
//  * Pixel Data keeps its size and becomes a cipher image: AES-256-CTR key stream under a second subkey
//    ("pacsgw ae-aes v1 cipher image"), so the PACS copy is a valid DICOM object of pure noise.
//  * GCM's associated data binds the codecs layer's associated data, the parameters (format, latent shape,
//    model SHA-256) and the SHA-256 of the cipher image: any change to pixels, payload, parameters, object
//    or key is an AuthenticationError, checked before anything is decoded.
// Lossy: decryption returns the model's reconstruction; the codecs layer's exact-retrieval envelope makes
// retrieval exact (codecs/exact_retrieval.h). No LibTorch here.
#include "codecs/ae_aes/ae_aes.h"

#include "codecs/aes_gcm.h"
#include "codecs/backend_key.h"
#include "codecs/neural/autoencoder.h"
#include "codecs/neural/frames.h"
#include "codecs/neural/learned_backend.h"
#include "codecs/neural/model_store.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>
#include <memory>

namespace pacsgw::codecs {
namespace ae_aes {
namespace {

using Bytes = std::vector<std::uint8_t>;
using neural::Autoencoder;

constexpr std::uint8_t kFormat = 1;
constexpr const char* kLabel = "pacsgw ae-aes v1";
constexpr const char* kLatentKeyLabel = "pacsgw ae-aes v1 latent";
constexpr const char* kImageKeyLabel = "pacsgw ae-aes v1 cipher image";
constexpr std::size_t kWindowBytes = 8;  // lo, hi as int32 little-endian

[[noreturn]] void fail(const std::string& what) {
  ERR_clear_error();
  throw CipherError("ae-aes: " + what);
}

std::shared_ptr<const Autoencoder> modelFor(const CipherOptions& options) {
  const neural::ModelFile file = neural::readModelFile(neural::resolveModelPath(kBackendId, options.model));
  return Autoencoder::load(file, resolveDevice(options.device, neural::cudaAvailable()));
}

void appendField(Bytes& out, const std::uint8_t* data, std::size_t size) {
  for (int shift = 0; shift < 64; shift += 8) out.push_back(static_cast<std::uint8_t>(std::uint64_t{size} >> shift));
  if (size > 0) out.insert(out.end(), data, data + size);
}

struct FrameRef {
  std::uint8_t* data;
};

std::vector<FrameRef> framesOf(PixelBuffer& pixels) {
  std::vector<FrameRef> out;
  const std::size_t bytes = neural::frameBytes(pixels.layout);
  for (ByteRange& s : pixels.segments) {
    const std::size_t n = neural::framesIn(s, pixels.layout);
    for (std::size_t f = 0; f < n; ++f) out.push_back({s.data + f * bytes});
  }
  return out;
}

std::size_t plaintextBytes(const neural::AutoencoderShape& shape, const PixelLayout& l, std::size_t frames) {
  const std::size_t n = frames * (kWindowBytes + neural::latentBytes(shape, l.rows, l.columns));
  return n + n % 2;  // DICOM values have even lengths
}

Bytes paramsFor(const Autoencoder& model) {
  Bytes p(kParamsBytes, 0);
  p[0] = kFormat;
  p[1] = static_cast<std::uint8_t>(model.shape().latentChannels);
  p[2] = static_cast<std::uint8_t>(neural::kAutoencoderDownscale);
  std::copy(model.digest().begin(), model.digest().end(), p.begin() + 8);
  return p;
}

// GCM associated data: label, the codecs layer's AAD, parameters, SHA-256 of the cipher image.
Bytes gcmAad(const Bytes& aad, const Bytes& params, const PixelBuffer& pixels) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  std::uint8_t digest[32];
  unsigned int len = 0;
  bool ok = ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1;
  for (const ByteRange& r : pixels.segments) ok = ok && (r.size == 0 || EVP_DigestUpdate(ctx, r.data, r.size) == 1);
  ok = ok && EVP_DigestFinal_ex(ctx, digest, &len) == 1 && len == sizeof digest;
  EVP_MD_CTX_free(ctx);
  if (!ok) fail("SHA-256 failed");
  Bytes out;
  const std::string label = kLabel;
  appendField(out, reinterpret_cast<const std::uint8_t*>(label.data()), label.size());
  appendField(out, aad.data(), aad.size());
  appendField(out, params.data(), params.size());
  appendField(out, digest, sizeof digest);
  return out;
}

// AES-256-CTR key stream over every segment (IV = nonce || 32-bit counter from 0).
void fillCipherImage(PixelBuffer& pixels, const SecretBytes& imageKey, const Bytes& nonce) {
  std::uint8_t iv[16] = {0};
  std::memcpy(iv, nonce.data(), kNonceBytes);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (ctx == nullptr || EVP_EncryptInit_ex(ctx, EVP_aes_256_ctr(), nullptr, imageKey.data(), iv) != 1) {
    EVP_CIPHER_CTX_free(ctx);
    fail("AES-256-CTR initialisation failed");
  }
  for (ByteRange& r : pixels.segments) {
    std::fill(r.data, r.data + r.size, 0);
    for (std::size_t at = 0; at < r.size;) {
      const int chunk = static_cast<int>(std::min<std::size_t>(r.size - at, 1 << 20));
      int out = 0;
      if (EVP_EncryptUpdate(ctx, r.data + at, &out, r.data + at, chunk) != 1 || out != chunk) {
        EVP_CIPHER_CTX_free(ctx);
        fail("AES-256-CTR failed");
      }
      at += static_cast<std::size_t>(chunk);
    }
  }
  EVP_CIPHER_CTX_free(ctx);
}

void putInt32(std::uint8_t* p, std::int32_t v) {
  const auto u = static_cast<std::uint32_t>(v);
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(u >> (8 * i));
}
std::int32_t getInt32(const std::uint8_t* p) {
  std::uint32_t u = 0;
  for (int i = 0; i < 4; ++i) u |= std::uint32_t{p[i]} << (8 * i);
  return static_cast<std::int32_t>(u);
}

SecretBytes encodeFrames(PixelBuffer& pixels, const Autoencoder& model) {
  const auto frames = framesOf(pixels);
  SecretBytes plain(plaintextBytes(model.shape(), pixels.layout, frames.size()));
  std::size_t at = 0;
  for (const FrameRef& f : frames) {
    const neural::UnitFrame unit = neural::readFrame(f.data, pixels.layout);
    const Bytes latent = model.encode(unit);
    putInt32(plain.data() + at, unit.window.lo);
    putInt32(plain.data() + at + 4, unit.window.hi);
    std::memcpy(plain.data() + at + kWindowBytes, latent.data(), latent.size());
    at += kWindowBytes + latent.size();
  }
  return plain;
}

void decodeFrames(PixelBuffer& pixels, const Autoencoder& model, const SecretBytes& plain) {
  const auto frames = framesOf(pixels);
  const std::size_t latent = neural::latentBytes(model.shape(), pixels.layout.rows, pixels.layout.columns);
  std::size_t at = 0;
  for (const FrameRef& f : frames) {
    neural::Window w{getInt32(plain.data() + at), getInt32(plain.data() + at + 4)};
    if (w.hi <= w.lo) fail("the payload holds an invalid window");
    const std::vector<float> y = model.decode(plain.data() + at + kWindowBytes, pixels.layout.rows, pixels.layout.columns);
    neural::writeFrame(f.data, pixels.layout, y, w);
    at += kWindowBytes + latent;
  }
}

void checkKey(const SecretBytes& key) {
  if (key.size() != 32 || key.data() == nullptr) fail("the key must be 32 bytes");
}

// Sizes and parameters a record must have for `model` and `layout`; anything else is an altered record.
void checkRecord(const CipherRecord& r, const Autoencoder& model, PixelBuffer& pixels) {
  if (r.backendId != kBackendId) throw CipherError("ae-aes: the key reference names another backend");
  if (r.backendVersion != kBackendVersion) throw CipherError("ae-aes: unsupported backend version");
  if (r.nonce.size() != kNonceBytes) throw AuthenticationError("ae-aes: the nonce must be 12 bytes");
  if (r.tag.size() != kTagBytes) throw AuthenticationError("ae-aes: the tag must be 16 bytes");
  if (r.params.size() != kParamsBytes) throw AuthenticationError("ae-aes: parameters have the wrong length");
  if (r.params[0] != kFormat) fail("unsupported parameter format " + std::to_string(r.params[0]));
  if (!std::equal(model.digest().begin(), model.digest().end(), r.params.begin() + 8))
    fail("the object was encrypted with another model (SHA-256 " +
         neural::hex([&] {
           neural::ModelDigest d{};
           std::copy(r.params.begin() + 8, r.params.end(), d.begin());
           return d;
         }()) +
         ") than this gateway's (" + neural::hex(model.digest()) + "); configure cipher.model with that model");
  if (r.params != paramsFor(model)) fail("unsupported parameters (latent shape)");
  if (r.payload.size() != plaintextBytes(model.shape(), pixels.layout, framesOf(pixels).size()))
    throw AuthenticationError("ae-aes: the payload has the wrong length");
}

CipherRecord encryptWith(const Autoencoder& model, PixelBuffer& pixels, const SecretBytes& key, const Bytes& aad,
                         const Bytes& nonce) {
  checkKey(key);
  neural::checkMonochromeLayout(pixels.layout, kBackendId);
  if (nonce.size() != kNonceBytes) fail("the nonce must be 12 bytes");
  SecretBytes plain = encodeFrames(pixels, model);
  CipherRecord rec;
  rec.backendId = kBackendId;
  rec.backendVersion = kBackendVersion;
  rec.nonce = nonce;
  rec.params = paramsFor(model);
  fillCipherImage(pixels, deriveSubkey(key, kImageKeyLabel, ""), nonce);
  rec.payload.assign(plain.data(), plain.data() + plain.size());
  PixelBuffer body;
  body.segments.push_back({rec.payload.data(), rec.payload.size()});
  rec.tag = detail::aesGcmSeal(body, deriveSubkey(key, kLatentKeyLabel, ""), nonce, gcmAad(aad, rec.params, pixels));
  return rec;
}

class AeAesCipher final : public PixelCipher {
 public:
  explicit AeAesCipher(const CipherOptions& options) : model_(modelFor(options)) {}

  const BackendInfo& info() const override { return aeAesBackend().info; }
  Device device() const override { return model_->device(); }
  void checkSupported(const PixelLayout& layout) const override { neural::checkMonochromeLayout(layout, kBackendId); }

  CipherRecord encrypt(PixelBuffer& pixels, const SecretBytes& key, const Bytes& aad) override {
    Bytes nonce(kNonceBytes);
    if (RAND_bytes(nonce.data(), static_cast<int>(nonce.size())) != 1) fail("the random generator failed");
    return encryptWith(*model_, pixels, key, aad, nonce);
  }

  void decrypt(PixelBuffer& pixels, const SecretBytes& key, const Bytes& aad, const CipherRecord& record) override {
    checkKey(key);
    neural::checkMonochromeLayout(pixels.layout, kBackendId);
    checkRecord(record, *model_, pixels);
    SecretBytes plain(record.payload.data(), record.payload.size());
    PixelBuffer body;
    body.segments.push_back({plain.data(), plain.size()});
    // Verified before anything is decoded; the pixels still hold the cipher image on failure.
    detail::aesGcmOpen(body, deriveSubkey(key, kLatentKeyLabel, ""), record.nonce, gcmAad(aad, record.params, pixels),
                       record.tag);
    decodeFrames(pixels, *model_, plain);
  }

 private:
  std::shared_ptr<const Autoencoder> model_;
};

}  // namespace

namespace engine {

CipherRecord encrypt(PixelBuffer& pixels, const SecretBytes& key, const std::vector<std::uint8_t>& aad,
                     const std::vector<std::uint8_t>& nonce, const CipherOptions& options) {
  return encryptWith(*modelFor(options), pixels, key, aad, nonce);
}

void decryptUnverified(PixelBuffer& pixels, const SecretBytes& key, const std::vector<std::uint8_t>&,
                       const CipherRecord& record, const CipherOptions& options) {
  const auto model = modelFor(options);
  checkKey(key);
  if (record.nonce.size() != kNonceBytes) fail("the nonce must be 12 bytes");
  // GCM encrypts with AES-CTR from counter block nonce || 00000002; decrypting the same way skips the tag.
  const SecretBytes latentKey = deriveSubkey(key, kLatentKeyLabel, "");
  std::uint8_t iv[16] = {0};
  std::memcpy(iv, record.nonce.data(), kNonceBytes);
  iv[15] = 2;
  SecretBytes plain(record.payload.size());
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int out = 0;
  const bool ok = ctx != nullptr && EVP_DecryptInit_ex(ctx, EVP_aes_256_ctr(), nullptr, latentKey.data(), iv) == 1 &&
                  EVP_DecryptUpdate(ctx, plain.data(), &out, record.payload.data(), static_cast<int>(plain.size())) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) fail("AES-256-CTR failed");
  // Windows decrypted with a wrong key are random: replace impossible ones so the decoder still runs.
  const std::size_t latent = neural::latentBytes(model->shape(), pixels.layout.rows, pixels.layout.columns);
  for (std::size_t at = 0; at + kWindowBytes + latent <= plain.size(); at += kWindowBytes + latent) {
    if (getInt32(plain.data() + at + 4) <= getInt32(plain.data() + at)) {
      putInt32(plain.data() + at, 0);
      putInt32(plain.data() + at + 4, (1 << std::min<int>(pixels.layout.bitsStored, 30)) - 1);
    }
  }
  if (plain.size() != plaintextBytes(model->shape(), pixels.layout, framesOf(pixels).size()))
    fail("the payload has the wrong length");
  decodeFrames(pixels, *model, plain);
}

void reconstruct(PixelBuffer& pixels, const CipherOptions& options) {
  const auto model = modelFor(options);
  neural::checkMonochromeLayout(pixels.layout, kBackendId);
  const SecretBytes plain = encodeFrames(pixels, *model);
  decodeFrames(pixels, *model, plain);
}

std::size_t modelParameters(const CipherOptions& options) { return modelFor(options)->parameterCount(); }

std::size_t modelFileBytes(const CipherOptions& options) { return neural::modelFileBytes(kBackendId, options.model); }

}  // namespace engine
}  // namespace ae_aes

namespace {

BackendInfo aeAesInfo() {
  return neural::learnedBackendInfo(
      ae_aes::kBackendId, ae_aes::kBackendVersion, "PACSGW_AE_AES",
      neural::kNativeMonochromeLayouts,
      "research backend after Alslman et al. 2022 (convolutional autoencoder, latent sealed with "
          "AES-256-GCM); lossy model, exact retrieval through the envelope; not a standard cipher");
}

}  // namespace

const BackendEntry& aeAesBackend() { return neural::learnedBackendEntry<ae_aes::AeAesCipher>(aeAesInfo); }

}  // namespace pacsgw::codecs
