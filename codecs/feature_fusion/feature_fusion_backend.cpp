// Backend "feature-fusion" (Long et al., IEEE Access): see docs/ciphers.md, "feature-fusion".
//  * Each frame is windowed (codecs/neural/frames.h), padded by edge replication to the model's size
//    multiple, and encrypted by the network under feature keys from the Logistic map seeded by SHA-256
//    of the frame's stored bytes and the backend key (feature_keys.h). The pixel-shuffle cipher image
//    (16-bit codes) replaces Pixel Data, which keeps its size and stays a valid DICOM object.
//  * The side information (window, frame digest, EP = the fusion coefficients coupled with the key, and
//    the cipher codes that do not fit Pixel Data) is sealed with AES-256-GCM under a subkey of the backend
//    key with a fresh nonce: the backend payload. GCM's associated data binds the codecs layer's AAD, the
//    parameters (format, model SHA-256) and SHA-256 of the cipher image.
//  * Decryption opens the payload (any alteration or a wrong key: AuthenticationError before anything is
//    decoded), rebuilds the feature keys, recovers alpha = EP - G(K) and runs the decoder.
// Lossy: decrypt() returns the model's reconstruction; the codecs layer's exact-retrieval envelope makes
// retrieval exact (codecs/exact_retrieval.h). No LibTorch here (it is in model.cpp).
#include "codecs/feature_fusion/feature_fusion_backend.h"

#include "codecs/aes_gcm.h"
#include "codecs/backend_key.h"
#include "codecs/feature_fusion/image_cipher.h"
#include "codecs/feature_fusion/model.h"
#include "codecs/feature_fusion/side_info.h"
#include "codecs/neural/frames.h"
#include "codecs/neural/learned_backend.h"
#include "codecs/neural/model_store.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>

namespace pacsgw::codecs {
namespace feature_fusion {
namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr std::uint8_t kFormat = 1;
constexpr const char* kLabel = "pacsgw feature-fusion v1";
constexpr const char* kSideInfoKeyLabel = "pacsgw feature-fusion v1 side information";
constexpr const char* kFeatureKeyLabel = "pacsgw feature-fusion v1 feature keys";

[[noreturn]] void fail(const std::string& what) {
  ERR_clear_error();
  throw CipherError("feature-fusion: " + what);
}

struct LoadedModel {
  FeatureFusionModel model;
  neural::ModelDigest digest{};
  std::size_t fileBytes = 0;
};

// cipher.device as this machine can honour it (cuda only with a CUDA LibTorch and a device).
Device deviceFor(const CipherOptions& options) {
  try {
    return resolveDevice(options.device, FeatureFusionModel::cudaAvailable());
  } catch (const CipherError& e) {
    fail(std::string("cipher.device: ") + e.what());
  }
}

// One read-only instance per model digest and device per process.
std::shared_ptr<const LoadedModel> modelFor(const CipherOptions& options) {
  const Device device = deviceFor(options);
  const neural::ModelFile file = neural::readModelFile(neural::resolveModelPath(kBackendId, options.model));
  static std::mutex mutex;
  static std::map<std::pair<neural::ModelDigest, Device>, std::weak_ptr<const LoadedModel>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = cache[{file.sha256, device}];
  if (auto hit = slot.lock()) return hit;
  std::shared_ptr<const LoadedModel> loaded;
  try {
    loaded = std::make_shared<const LoadedModel>(
        LoadedModel{FeatureFusionModel::load(file.path, device), file.sha256, file.bytes.size()});
  } catch (const std::exception& e) {
    fail(e.what());
  }
  slot = loaded;
  return loaded;
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

int padded(int side, int multiple) { return (side + multiple - 1) / multiple * multiple; }

// Cipher codes that do not fit Pixel Data: the padding, and the low byte of each code for 8-bit data.
std::size_t overflowBytes(const PixelLayout& l, int multiple) {
  const std::size_t all = static_cast<std::size_t>(padded(l.rows, multiple)) * padded(l.columns, multiple);
  const std::size_t inside = static_cast<std::size_t>(l.rows) * l.columns;
  return 2 * (all - inside) + (l.bitsAllocated == 8 ? inside : 0);
}

std::size_t payloadBytes(const FeatureFusionModel& m, const PixelLayout& l, std::size_t frames) {
  const std::size_t n = frames * frameSideInfoBytes(m.coefficientCount(), overflowBytes(l, m.sizeMultiple()));
  return n + n % 2;  // DICOM values have even lengths
}

Bytes paramsFor(const LoadedModel& m) {
  Bytes p(kParamsBytes, 0);
  p[0] = kFormat;
  p[1] = static_cast<std::uint8_t>(m.model.config().channels.size());
  p[2] = static_cast<std::uint8_t>(m.model.config().cipherBits);
  std::copy(m.digest.begin(), m.digest.end(), p.begin() + 8);
  return p;
}

void appendField(Bytes& out, const std::uint8_t* data, std::size_t size) {
  for (int shift = 0; shift < 64; shift += 8) out.push_back(static_cast<std::uint8_t>(std::uint64_t{size} >> shift));
  if (size > 0) out.insert(out.end(), data, data + size);
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

// The frame's values padded by edge replication to rows x columns.
std::vector<float> padFrame(const neural::UnitFrame& f, int rows, int columns) {
  std::vector<float> out(static_cast<std::size_t>(rows) * columns);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < columns; ++c)
      out[static_cast<std::size_t>(r) * columns + c] =
          f.values[static_cast<std::size_t>(std::min(r, f.rows - 1)) * f.columns + std::min(c, f.columns - 1)];
  return out;
}

// Encrypts every frame in place; returns the side information of each.
std::vector<FrameSideInfo> encryptFrames(PixelBuffer& pixels, const FeatureFusionModel& model, const SecretBytes& key) {
  const PixelLayout& l = pixels.layout;
  const int m = model.sizeMultiple(), rows = padded(l.rows, m), columns = padded(l.columns, m);
  const std::size_t frameBytes = neural::frameBytes(l);
  std::vector<FrameSideInfo> out;
  for (const FrameRef& f : framesOf(pixels)) {
    const neural::UnitFrame unit = neural::readFrame(f.data, l);
    const ImageDigest digest = digestImage(f.data, frameBytes);
    const ProtectedImage image = protectImage(model, padFrame(unit, rows, columns), rows, columns, digest, key);
    FrameSideInfo side;
    side.lo = unit.window.lo;
    side.hi = unit.window.hi;
    side.digest = digest;
    side.ep = image.ep;
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < columns; ++c) {
        const std::uint16_t code = image.cipher[static_cast<std::size_t>(r) * columns + c];
        if (r < l.rows && c < l.columns) {
          std::uint8_t* at = f.data + (static_cast<std::size_t>(r) * l.columns + c) * (l.bitsAllocated / 8);
          if (l.bitsAllocated == 16) {
            at[0] = static_cast<std::uint8_t>(code), at[1] = static_cast<std::uint8_t>(code >> 8);
          } else {
            at[0] = static_cast<std::uint8_t>(code >> 8);
            side.overflow.push_back(static_cast<std::uint8_t>(code));
          }
        } else {
          side.overflow.push_back(static_cast<std::uint8_t>(code));
          side.overflow.push_back(static_cast<std::uint8_t>(code >> 8));
        }
      }
    out.push_back(std::move(side));
  }
  return out;
}

// Decodes every frame in place from its cipher image and side information under `key`.
void decryptFrames(PixelBuffer& pixels, const FeatureFusionModel& model, const std::vector<FrameSideInfo>& sides,
                   const SecretBytes& key) {
  const PixelLayout& l = pixels.layout;
  const int m = model.sizeMultiple(), rows = padded(l.rows, m), columns = padded(l.columns, m);
  const auto frames = framesOf(pixels);
  for (std::size_t i = 0; i < frames.size(); ++i) {
    const FrameSideInfo& side = sides[i];
    ProtectedImage image;
    image.rows = rows;
    image.columns = columns;
    image.digest = side.digest;
    image.ep = side.ep;
    image.cipher.resize(static_cast<std::size_t>(rows) * columns);
    std::size_t o = 0;
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < columns; ++c) {
        std::uint16_t code;
        if (r < l.rows && c < l.columns) {
          const std::uint8_t* at = frames[i].data + (static_cast<std::size_t>(r) * l.columns + c) * (l.bitsAllocated / 8);
          code = l.bitsAllocated == 16 ? static_cast<std::uint16_t>(at[0] | (at[1] << 8))
                                       : static_cast<std::uint16_t>((at[0] << 8) | side.overflow[o++]);
        } else {
          code = static_cast<std::uint16_t>(side.overflow[o] | (side.overflow[o + 1] << 8));
          o += 2;
        }
        image.cipher[static_cast<std::size_t>(r) * columns + c] = code;
      }
    const std::vector<float> y = recoverImage(model, image, key);
    std::vector<float> cropped(static_cast<std::size_t>(l.rows) * l.columns);
    for (int r = 0; r < l.rows; ++r)
      std::copy_n(&y[static_cast<std::size_t>(r) * columns], l.columns, &cropped[static_cast<std::size_t>(r) * l.columns]);
    neural::writeFrame(frames[i].data, l, cropped, neural::Window{side.lo, side.hi});
  }
}

// The key of the feature-key schedule for one object: the paper's cipher is deterministic (same image and
// key, same cipher image); binding the object's nonce makes every encryption use fresh feature keys.
SecretBytes objectKey(const SecretBytes& key, const Bytes& nonce) {
  return deriveSubkey(key, kFeatureKeyLabel, std::string(nonce.begin(), nonce.end()));
}

void checkKey(const SecretBytes& key) {
  if (key.size() != 32 || key.data() == nullptr) fail("the key must be 32 bytes");
}

void checkRecord(const CipherRecord& r, const LoadedModel& m, PixelBuffer& pixels) {
  if (r.backendId != kBackendId) throw CipherError("feature-fusion: the key reference names another backend");
  if (r.backendVersion != kBackendVersion) throw CipherError("feature-fusion: unsupported backend version");
  if (r.nonce.size() != kNonceBytes) throw AuthenticationError("feature-fusion: the nonce must be 12 bytes");
  if (r.tag.size() != kTagBytes) throw AuthenticationError("feature-fusion: the tag must be 16 bytes");
  if (r.params.size() != kParamsBytes) throw AuthenticationError("feature-fusion: parameters have the wrong length");
  if (r.params[0] != kFormat) fail("unsupported parameter format " + std::to_string(r.params[0]));
  if (!std::equal(m.digest.begin(), m.digest.end(), r.params.begin() + 8)) {
    neural::ModelDigest d{};
    std::copy(r.params.begin() + 8, r.params.end(), d.begin());
    fail("the object was encrypted with another model (SHA-256 " + neural::hex(d) + ") than this gateway's (" +
         neural::hex(m.digest) + "); configure cipher.model with that model");
  }
  if (r.params != paramsFor(m)) fail("unsupported parameters");
  if (r.payload.size() != payloadBytes(m.model, pixels.layout, framesOf(pixels).size()))
    throw AuthenticationError("feature-fusion: the payload has the wrong length");
}

std::vector<FrameSideInfo> parseSideInfo(const Bytes& plain, const FeatureFusionModel& model, PixelBuffer& pixels) {
  const std::size_t frames = framesOf(pixels).size();
  Bytes body(plain.begin(), plain.begin() + static_cast<long>(frames * frameSideInfoBytes(model.coefficientCount(),
                                                                 overflowBytes(pixels.layout, model.sizeMultiple()))));
  return decodeSideInfo(body, frames, model.coefficientCount(), overflowBytes(pixels.layout, model.sizeMultiple()));
}

CipherRecord encryptWith(const LoadedModel& m, PixelBuffer& pixels, const SecretBytes& key, const Bytes& aad,
                         const Bytes& nonce) {
  checkKey(key);
  neural::checkMonochromeLayout(pixels.layout, kBackendId);
  if (nonce.size() != kNonceBytes) fail("the nonce must be 12 bytes");
  Bytes plain = encodeSideInfo(encryptFrames(pixels, m.model, objectKey(key, nonce)));
  plain.resize(payloadBytes(m.model, pixels.layout, framesOf(pixels).size()), 0);
  CipherRecord rec;
  rec.backendId = kBackendId;
  rec.backendVersion = kBackendVersion;
  rec.nonce = nonce;
  rec.params = paramsFor(m);
  rec.payload = std::move(plain);
  PixelBuffer body;
  body.segments.push_back({rec.payload.data(), rec.payload.size()});
  rec.tag = detail::aesGcmSeal(body, deriveSubkey(key, kSideInfoKeyLabel, ""), nonce, gcmAad(aad, rec.params, pixels));
  return rec;
}

// GCM encrypts with AES-CTR from counter block nonce || 00000002; decrypting the same way skips the tag.
Bytes openUnverified(const CipherRecord& record, const SecretBytes& key) {
  if (record.nonce.size() != kNonceBytes) fail("the nonce must be 12 bytes");
  const SecretBytes sideKey = deriveSubkey(key, kSideInfoKeyLabel, "");
  std::uint8_t iv[16] = {0};
  std::memcpy(iv, record.nonce.data(), kNonceBytes);
  iv[15] = 2;
  Bytes plain(record.payload.size());
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int out = 0;
  const bool ok = ctx != nullptr && EVP_DecryptInit_ex(ctx, EVP_aes_256_ctr(), nullptr, sideKey.data(), iv) == 1 &&
                  EVP_DecryptUpdate(ctx, plain.data(), &out, record.payload.data(), static_cast<int>(plain.size())) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) fail("AES-256-CTR failed");
  return plain;
}

class FeatureFusionCipher final : public PixelCipher {
 public:
  explicit FeatureFusionCipher(const CipherOptions& options) : model_(modelFor(options)) {}

  const BackendInfo& info() const override { return featureFusionBackend().info; }
  Device device() const override { return model_->model.device(); }
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
    Bytes plain = record.payload;
    PixelBuffer body;
    body.segments.push_back({plain.data(), plain.size()});
    // Verified before anything is decoded; the pixels still hold the cipher image on failure.
    detail::aesGcmOpen(body, deriveSubkey(key, kSideInfoKeyLabel, ""), record.nonce,
                       gcmAad(aad, record.params, pixels), record.tag);
    const auto sides = parseSideInfo(plain, model_->model, pixels);
    OPENSSL_cleanse(plain.data(), plain.size());
    decryptFrames(pixels, model_->model, sides, objectKey(key, record.nonce));
  }

 private:
  std::shared_ptr<const LoadedModel> model_;
};

}  // namespace

namespace engine {

CipherRecord encrypt(PixelBuffer& pixels, const SecretBytes& key, const std::vector<std::uint8_t>& aad,
                     const std::vector<std::uint8_t>& nonce, const CipherOptions& options) {
  return encryptWith(*modelFor(options), pixels, key, aad, nonce);
}

void decryptUnverified(PixelBuffer& pixels, const SecretBytes& key, const std::vector<std::uint8_t>&,
                       const CipherRecord& record, const CipherOptions& options) {
  const auto m = modelFor(options);
  checkKey(key);
  Bytes plain = openUnverified(record, key);
  if (plain.size() != payloadBytes(m->model, pixels.layout, framesOf(pixels).size())) fail("the payload has the wrong length");
  // Windows decrypted with a wrong key are random: replace impossible ones so the decoder still runs.
  const std::size_t each = frameSideInfoBytes(m->model.coefficientCount(), overflowBytes(pixels.layout, m->model.sizeMultiple()));
  for (std::size_t at = 0; at + each <= plain.size(); at += each) {
    std::int32_t lo, hi;
    std::memcpy(&lo, &plain[at], 4);
    std::memcpy(&hi, &plain[at + 4], 4);
    if (hi <= lo) {
      const std::int32_t top = (1 << std::min<int>(pixels.layout.bitsStored, 30)) - 1;
      std::memset(&plain[at], 0, 4);
      for (int i = 0; i < 4; ++i) plain[at + 4 + i] = static_cast<std::uint8_t>(top >> (8 * i));
    }
  }
  decryptFrames(pixels, m->model, parseSideInfo(plain, m->model, pixels), objectKey(key, record.nonce));
}

void reconstruct(PixelBuffer& pixels, const SecretBytes& key, const CipherOptions& options) {
  const auto m = modelFor(options);
  neural::checkMonochromeLayout(pixels.layout, kBackendId);
  const SecretBytes k = objectKey(key, Bytes(kNonceBytes, 0));
  const auto sides = encryptFrames(pixels, m->model, k);
  decryptFrames(pixels, m->model, sides, k);
}

std::vector<std::uint8_t> keyStreamBytes(const SecretBytes& key, const CipherRecord& record, std::size_t bytes,
                                         const CipherOptions& options) {
  const auto m = modelFor(options);
  const Bytes plain = openUnverified(record, key);
  if (plain.size() < 41) fail("the payload is too short");
  ImageDigest digest;
  std::memcpy(digest.sha256.data(), &plain[8], 32);
  digest.p = plain[40];
  const auto x0 = initialValues(digest, userKeyFromSubkey(objectKey(key, record.nonce)));
  const auto orbit = logisticSequence(x0[0], bytes);
  std::vector<std::uint8_t> out(bytes);
  for (std::size_t i = 0; i < bytes; ++i) out[i] = static_cast<std::uint8_t>(static_cast<std::uint64_t>(orbit[i] * 4294967296.0));
  return out;
}

std::size_t modelParameters(const CipherOptions& options) { return modelFor(options)->model.parameterCount(); }
std::size_t modelFileBytes(const CipherOptions& options) { return modelFor(options)->fileBytes; }

}  // namespace engine
}  // namespace feature_fusion

namespace {

BackendInfo featureFusionInfo() {
  return neural::learnedBackendInfo(
      feature_fusion::kBackendId, feature_fusion::kBackendVersion, "PACSGW_FFUSION",
      "native integer pixel data, 8 or 16 bits allocated (any bits stored), signed or unsigned, one "
          "sample per pixel (CT, MR, ...), any size (padded to a multiple of 8 inside), single- or multi-frame",
      "research backend after Long et al. (deep feature encoding with logistic-map feature keys, "
          "side information sealed with AES-256-GCM); lossy model, exact retrieval through the envelope; "
          "not a standard cipher");
}

}  // namespace

const BackendEntry& featureFusionBackend() {
  return neural::learnedBackendEntry<feature_fusion::FeatureFusionCipher>(featureFusionInfo);
}

}  // namespace pacsgw::codecs
