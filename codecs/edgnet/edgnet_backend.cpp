// Backend "edgnet": the generator pair of EDG-Net (Ding et al.) made fit for DICOM.
//  * Each frame is windowed (codecs/neural/frames.h) and turned into an 8-bit cipher image by the
//    encrypting generator G_enc (tile by tile, edgnet_model.h).
//  * The paper's key is the network weights. Here the weights are public (a shipped model file), so the
//    cipher image is masked with an AES-256-CTR key stream under a subkey of the backend key
//    ("pacsgw edgnet v1 cipher image") and a fresh 96-bit nonce, and the masked bytes become Pixel Data
//    (one byte per sample, the most significant one of 16-bit samples). Without the key the decrypting generator sees noise.
//  * The frames' windows (lo, hi) are the backend payload, sealed with AES-256-GCM under a second subkey
//    ("pacsgw edgnet v1 payload"); GCM's associated data binds the codecs layer's associated data, the
//    parameters (format, model shape, model SHA-256) and the SHA-256 of Pixel Data: any change to pixels,
//    payload, parameters, object or key is an AuthenticationError, checked before anything is decoded.
// Lossy: decryption returns G_dec's reconstruction; the codecs layer's exact-retrieval envelope makes
// retrieval exact (codecs/exact_retrieval.h). No LibTorch here.
#include "codecs/edgnet/edgnet_backend.h"

#include "codecs/aes_gcm.h"
#include "codecs/backend_key.h"
#include "codecs/edgnet/edgnet_model.h"
#include "codecs/neural/autoencoder.h"
#include "codecs/neural/frames.h"
#include "codecs/neural/learned_backend.h"
#include "codecs/neural/model_store.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>
#include <memory>

namespace pacsgw::codecs {
namespace edgnet {
namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr std::uint8_t kFormat = 1;
constexpr const char* kLabel = "pacsgw edgnet v1";
constexpr const char* kPayloadKeyLabel = "pacsgw edgnet v1 payload";
constexpr const char* kImageKeyLabel = "pacsgw edgnet v1 cipher image";
constexpr std::size_t kWindowBytes = 8;  // lo, hi as int32 little-endian

[[noreturn]] void fail(const std::string& what) {
  ERR_clear_error();
  throw CipherError("edgnet: " + what);
}

std::shared_ptr<const EdgNetModel> modelFor(const CipherOptions& options) {
  const neural::ModelFile file = neural::readModelFile(neural::resolveModelPath(kBackendId, options.model));
  return EdgNetModel::load(file, resolveDevice(options.device, neural::cudaAvailable()));
}

void appendField(Bytes& out, const std::uint8_t* data, std::size_t size) {
  for (int shift = 0; shift < 64; shift += 8) out.push_back(static_cast<std::uint8_t>(std::uint64_t{size} >> shift));
  if (size > 0) out.insert(out.end(), data, data + size);
}

std::vector<std::uint8_t*> framesOf(const PixelBuffer& pixels) {
  std::vector<std::uint8_t*> out;
  const std::size_t bytes = neural::frameBytes(pixels.layout);
  for (const ByteRange& s : pixels.segments) {
    const std::size_t n = neural::framesIn(s, pixels.layout);
    for (std::size_t f = 0; f < n; ++f) out.push_back(s.data + f * bytes);
  }
  return out;
}

std::size_t pixelsPerFrame(const PixelLayout& l) { return static_cast<std::size_t>(l.rows) * l.columns; }

Bytes paramsFor(const EdgNetModel& model) {
  Bytes p(kParamsBytes, 0);
  p[0] = kFormat;
  p[1] = static_cast<std::uint8_t>(model.shape().ngf);
  p[2] = static_cast<std::uint8_t>(model.shape().resBlocks);
  p[3] = static_cast<std::uint8_t>(model.shape().tile & 0xFF);
  p[4] = static_cast<std::uint8_t>(model.shape().tile >> 8);
  std::copy(model.digest().begin(), model.digest().end(), p.begin() + 8);
  return p;
}

// GCM associated data: label, the codecs layer's AAD, parameters, SHA-256 of Pixel Data.
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

// XORs `bytes` with the AES-256-CTR key stream of `imageKey` from counter block nonce || 0^32.
void applyMask(std::vector<std::uint8_t>& bytes, const SecretBytes& imageKey, const Bytes& nonce) {
  std::uint8_t iv[16] = {0};
  std::memcpy(iv, nonce.data(), kNonceBytes);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  bool ok = ctx != nullptr && EVP_EncryptInit_ex(ctx, EVP_aes_256_ctr(), nullptr, imageKey.data(), iv) == 1;
  for (std::size_t at = 0; ok && at < bytes.size();) {
    const int chunk = static_cast<int>(std::min<std::size_t>(bytes.size() - at, 1 << 20));
    int out = 0;
    ok = EVP_EncryptUpdate(ctx, bytes.data() + at, &out, bytes.data() + at, chunk) == 1 && out == chunk;
    at += static_cast<std::size_t>(chunk);
  }
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) fail("AES-256-CTR failed");
}

// The masked cipher image as Pixel Data: one byte per sample, the most significant byte of 16-bit samples
// (the low byte 0), so the papers' 8-bit view of the PACS copy is the cipher image itself. As with the
// other backends' cipher images, bits above High Bit may be set; DCMTK and Orthanc store them.
void writeSamples(std::uint8_t* frame, const PixelLayout& l, const std::uint8_t* bytes) {
  const std::size_t n = pixelsPerFrame(l);
  if (l.bitsAllocated == 16) {
    for (std::size_t i = 0; i < n; ++i) {
      frame[2 * i] = 0;
      frame[2 * i + 1] = bytes[i];
    }
  } else {
    std::memcpy(frame, bytes, n);
  }
}

void readSamples(const std::uint8_t* frame, const PixelLayout& l, std::uint8_t* bytes) {
  const std::size_t n = pixelsPerFrame(l);
  if (l.bitsAllocated == 16) {
    for (std::size_t i = 0; i < n; ++i) bytes[i] = frame[2 * i + 1];
  } else {
    std::memcpy(bytes, frame, n);
  }
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

void checkKey(const SecretBytes& key) {
  if (key.size() != 32 || key.data() == nullptr) fail("the key must be 32 bytes");
}

// Decodes the masked Pixel Data with the windows in `plain` (frames x 8 bytes), in place.
void decodeFrames(PixelBuffer& pixels, const EdgNetModel& model, const SecretBytes& key, const Bytes& nonce,
                  const std::uint8_t* plain) {
  const auto frames = framesOf(pixels);
  const std::size_t n = pixelsPerFrame(pixels.layout);
  std::vector<std::uint8_t> cipher(frames.size() * n);
  for (std::size_t f = 0; f < frames.size(); ++f) readSamples(frames[f], pixels.layout, cipher.data() + f * n);
  applyMask(cipher, deriveSubkey(key, kImageKeyLabel, ""), nonce);
  for (std::size_t f = 0; f < frames.size(); ++f) {
    const neural::Window w{getInt32(plain + f * kWindowBytes), getInt32(plain + f * kWindowBytes + 4)};
    if (w.hi <= w.lo) fail("the payload holds an invalid window");
    const std::vector<float> y = model.decrypt(cipher.data() + f * n, pixels.layout.rows, pixels.layout.columns);
    neural::writeFrame(frames[f], pixels.layout, y, w);
  }
}

// Sizes and parameters a record must have for `model` and `pixels`; anything else is an altered record.
void checkRecord(const CipherRecord& r, const EdgNetModel& model, const PixelBuffer& pixels) {
  if (r.backendId != kBackendId) throw CipherError("edgnet: the key reference names another backend");
  if (r.backendVersion != kBackendVersion) throw CipherError("edgnet: unsupported backend version");
  if (r.nonce.size() != kNonceBytes) throw AuthenticationError("edgnet: the nonce must be 12 bytes");
  if (r.tag.size() != kTagBytes) throw AuthenticationError("edgnet: the tag must be 16 bytes");
  if (r.params.size() != kParamsBytes) throw AuthenticationError("edgnet: parameters have the wrong length");
  if (r.params[0] != kFormat) fail("unsupported parameter format " + std::to_string(r.params[0]));
  if (!std::equal(model.digest().begin(), model.digest().end(), r.params.begin() + 8)) {
    neural::ModelDigest d{};
    std::copy(r.params.begin() + 8, r.params.end(), d.begin());
    fail("the object was encrypted with another model (SHA-256 " + neural::hex(d) + ") than this gateway's (" +
         neural::hex(model.digest()) + "); configure cipher.model with that model");
  }
  if (r.params != paramsFor(model)) fail("unsupported parameters (model shape)");
  if (r.payload.size() != framesOf(pixels).size() * kWindowBytes)
    throw AuthenticationError("edgnet: the payload has the wrong length");
}

CipherRecord encryptWith(const EdgNetModel& model, PixelBuffer& pixels, const SecretBytes& key, const Bytes& aad,
                         const Bytes& nonce) {
  checkKey(key);
  neural::checkMonochromeLayout(pixels.layout, kBackendId);
  if (nonce.size() != kNonceBytes) fail("the nonce must be 12 bytes");
  const auto frames = framesOf(pixels);
  const std::size_t n = pixelsPerFrame(pixels.layout);
  SecretBytes windows(frames.size() * kWindowBytes);
  std::vector<std::uint8_t> cipher(frames.size() * n);
  for (std::size_t f = 0; f < frames.size(); ++f) {
    const neural::UnitFrame unit = neural::readFrame(frames[f], pixels.layout);
    const std::vector<std::uint8_t> c = model.encrypt(unit);
    std::copy(c.begin(), c.end(), cipher.begin() + static_cast<std::ptrdiff_t>(f * n));
    putInt32(windows.data() + f * kWindowBytes, unit.window.lo);
    putInt32(windows.data() + f * kWindowBytes + 4, unit.window.hi);
  }
  applyMask(cipher, deriveSubkey(key, kImageKeyLabel, ""), nonce);
  for (std::size_t f = 0; f < frames.size(); ++f) writeSamples(frames[f], pixels.layout, cipher.data() + f * n);
  CipherRecord rec;
  rec.backendId = kBackendId;
  rec.backendVersion = kBackendVersion;
  rec.nonce = nonce;
  rec.params = paramsFor(model);
  rec.payload.assign(windows.data(), windows.data() + windows.size());
  PixelBuffer body;
  body.segments.push_back({rec.payload.data(), rec.payload.size()});
  rec.tag = detail::aesGcmSeal(body, deriveSubkey(key, kPayloadKeyLabel, ""), nonce, gcmAad(aad, rec.params, pixels));
  return rec;
}

class EdgNetCipher final : public PixelCipher {
 public:
  explicit EdgNetCipher(const CipherOptions& options) : model_(modelFor(options)) {}

  const BackendInfo& info() const override { return edgNetBackend().info; }
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
    detail::aesGcmOpen(body, deriveSubkey(key, kPayloadKeyLabel, ""), record.nonce,
                       gcmAad(aad, record.params, pixels), record.tag);
    decodeFrames(pixels, *model_, key, record.nonce, plain.data());
  }

 private:
  std::shared_ptr<const EdgNetModel> model_;
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
  neural::checkMonochromeLayout(pixels.layout, kBackendId);
  if (record.nonce.size() != kNonceBytes) fail("the nonce must be 12 bytes");
  if (record.payload.size() != framesOf(pixels).size() * kWindowBytes) fail("the payload has the wrong length");
  // GCM encrypts with AES-CTR from counter block nonce || 00000002; decrypting the same way skips the tag.
  const SecretBytes payloadKey = deriveSubkey(key, kPayloadKeyLabel, "");
  std::uint8_t iv[16] = {0};
  std::memcpy(iv, record.nonce.data(), kNonceBytes);
  iv[15] = 2;
  SecretBytes plain(record.payload.size());
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int out = 0;
  const bool ok = ctx != nullptr && EVP_DecryptInit_ex(ctx, EVP_aes_256_ctr(), nullptr, payloadKey.data(), iv) == 1 &&
                  EVP_DecryptUpdate(ctx, plain.data(), &out, record.payload.data(), static_cast<int>(plain.size())) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) fail("AES-256-CTR failed");
  // Windows decrypted with a wrong key are random: replace impossible ones so the decoder still runs.
  for (std::size_t at = 0; at + kWindowBytes <= plain.size(); at += kWindowBytes) {
    if (getInt32(plain.data() + at + 4) <= getInt32(plain.data() + at)) {
      putInt32(plain.data() + at, 0);
      putInt32(plain.data() + at + 4, (1 << std::min<int>(pixels.layout.bitsStored, 30)) - 1);
    }
  }
  decodeFrames(pixels, *model, key, record.nonce, plain.data());
}

void reconstruct(PixelBuffer& pixels, const CipherOptions& options) {
  const auto model = modelFor(options);
  neural::checkMonochromeLayout(pixels.layout, kBackendId);
  for (std::uint8_t* frame : framesOf(pixels)) {
    const neural::UnitFrame unit = neural::readFrame(frame, pixels.layout);
    const std::vector<std::uint8_t> c = model->encrypt(unit);
    neural::writeFrame(frame, pixels.layout, model->decrypt(c.data(), unit.rows, unit.columns), unit.window);
  }
}

std::vector<std::uint8_t> networkCipherImage(const PixelBuffer& pixels, const CipherOptions& options) {
  const auto model = modelFor(options);
  neural::checkMonochromeLayout(pixels.layout, kBackendId);
  std::vector<std::uint8_t> out;
  for (const std::uint8_t* frame : framesOf(pixels)) {
    const std::vector<std::uint8_t> c = model->encrypt(neural::readFrame(frame, pixels.layout));
    out.insert(out.end(), c.begin(), c.end());
  }
  return out;
}

std::size_t modelParameters(const CipherOptions& options) { return modelFor(options)->parameterCount(); }

std::size_t modelFileBytes(const CipherOptions& options) { return neural::modelFileBytes(kBackendId, options.model); }

}  // namespace engine
}  // namespace edgnet

namespace {

BackendInfo edgNetInfo() {
  return neural::learnedBackendInfo(
      edgnet::kBackendId, edgnet::kBackendVersion, "PACSGW_EDGNET",
      neural::kNativeMonochromeLayouts,
      "research backend after Ding et al. (EDG-Net: GAN generators with attention and adaptive "
          "instance-layer normalisation; the cipher image masked with AES-256-CTR, windows sealed with "
          "AES-256-GCM); lossy model, exact retrieval through the envelope; not a standard cipher");
}

}  // namespace

const BackendEntry& edgNetBackend() { return neural::learnedBackendEntry<edgnet::EdgNetCipher>(edgNetInfo); }

}  // namespace pacsgw::codecs
