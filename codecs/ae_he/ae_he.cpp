// Backend "ae-he": the CNN-feature + homomorphic-encryption scheme of Suvitha & Murugan 2024 made fit
// for DICOM.
//  * Each frame is windowed (codecs/neural/frames.h) and encoded by the autoencoder; the window and the
//    8-bit latent codes of all frames form one vector, densely packed (383 codes per ciphertext) and
//    encrypted with Paillier under the study's key (3072-bit modulus, derived from the backend key).
//  * Beside the learned features, the exact block feature: the sums of the stored samples of every
//    16 x 16 tile, Paillier-encrypted row by row, so that a service holding only the public key can
//    compute a region's mean intensity (codecs/he/encrypted_region.h).
//  * Both go to the backend payload (he_payload.h) with the public modulus. Pixel Data keeps its size
//    and becomes a cipher image (AES-256-CTR key stream under a subkey), a valid DICOM object of noise.
//  * Paillier ciphertexts are malleable by design; the stored object is not: an HMAC-SHA-256 tag over
//    the codecs layer's associated data, the parameters, the nonce, the payload and the SHA-256 of the
//    cipher image is checked before anything is decrypted.
// Lossy: decryption returns the model's reconstruction; the codecs layer's exact-retrieval envelope makes
// retrieval exact (codecs/exact_retrieval.h). No LibTorch here.
#include "codecs/ae_he/ae_he.h"

#include "codecs/backend_key.h"
#include "codecs/he/key_derivation.h"
#include "codecs/he/packed_vector.h"
#include "codecs/he/slot_packing.h"
#include "codecs/neural/autoencoder.h"
#include "codecs/neural/frames.h"
#include "codecs/neural/learned_backend.h"
#include "codecs/neural/model_store.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <thread>

namespace pacsgw::codecs {
namespace ae_he {
namespace {

using Bytes = std::vector<std::uint8_t>;
using neural::Autoencoder;

constexpr std::uint8_t kFormat = 1;
constexpr const char* kLabel = "pacsgw ae-he v1";
constexpr const char* kPaillierLabel = "pacsgw ae-he v1 paillier";
constexpr const char* kTagKeyLabel = "pacsgw ae-he v1 tag";
constexpr const char* kImageKeyLabel = "pacsgw ae-he v1 cipher image";
constexpr std::size_t kWindowBytes = 8;  // lo, hi as int32 little-endian, as the first codes of a frame

[[noreturn]] void fail(const std::string& what) {
  ERR_clear_error();
  throw CipherError("ae-he: " + what);
}

std::shared_ptr<const Autoencoder> modelFor(const CipherOptions& options) {
  const neural::ModelFile file = neural::readModelFile(neural::resolveModelPath(kBackendId, options.model));
  return Autoencoder::load(file, resolveDevice(options.device, neural::cudaAvailable()));
}

std::vector<std::uint8_t*> framesOf(PixelBuffer& pixels) {
  std::vector<std::uint8_t*> out;
  const std::size_t bytes = neural::frameBytes(pixels.layout);
  for (ByteRange& s : pixels.segments) {
    const std::size_t n = neural::framesIn(s, pixels.layout);
    for (std::size_t f = 0; f < n; ++f) out.push_back(s.data + f * bytes);
  }
  return out;
}

std::size_t codesPerFrame(const Autoencoder& model, const PixelLayout& l) {
  return kWindowBytes + neural::latentBytes(model.shape(), l.rows, l.columns);
}

Bytes paramsFor(const Autoencoder& model) {
  Bytes p(kParamsBytes, 0);
  p[0] = kFormat;
  p[1] = static_cast<std::uint8_t>(model.shape().latentChannels);
  p[2] = static_cast<std::uint8_t>(neural::kAutoencoderDownscale);
  p[3] = static_cast<std::uint8_t>(kTile);
  p[4] = static_cast<std::uint8_t>(kModulusBits >> 8);
  p[5] = static_cast<std::uint8_t>(kModulusBits & 0xff);
  std::copy(model.digest().begin(), model.digest().end(), p.begin() + 8);
  return p;
}

unsigned paillierThreads() { return std::max(1u, std::min(8u, std::thread::hardware_concurrency())); }

// Stored sample value shifted to be non-negative: [0, 2^bitsStored).
struct SampleRange {
  std::int64_t offset = 0;
  std::uint32_t maxShifted = 0;
};
SampleRange rangeOf(const PixelLayout& l) {
  SampleRange r;
  r.offset = l.pixelRepresentation == 1 ? (std::int64_t{1} << (l.bitsStored - 1)) : 0;
  r.maxShifted = static_cast<std::uint32_t>((std::uint64_t{1} << l.bitsStored) - 1);
  return r;
}
std::vector<std::int32_t> storedSamples(const std::uint8_t* frame, const PixelLayout& l) {
  const std::size_t n = static_cast<std::size_t>(l.rows) * l.columns;
  std::vector<std::int32_t> out(n);
  const std::uint32_t mask = l.bitsStored >= 32 ? 0xFFFFFFFFu : ((1u << l.bitsStored) - 1u);
  for (std::size_t i = 0; i < n; ++i) {
    std::uint32_t w = l.bitsAllocated == 16 ? static_cast<std::uint32_t>(frame[2 * i] | (frame[2 * i + 1] << 8)) : frame[i];
    w &= mask;
    std::int32_t v = static_cast<std::int32_t>(w);
    if (l.pixelRepresentation == 1 && ((w >> (l.bitsStored - 1)) & 1u)) v -= static_cast<std::int32_t>(mask) + 1;
    out[i] = v;
  }
  return out;
}

void putInt32(std::uint64_t* p, std::int32_t v) {
  const auto u = static_cast<std::uint32_t>(v);
  for (int i = 0; i < 4; ++i) p[i] = (u >> (8 * i)) & 0xff;
}
std::int32_t getInt32(const std::uint64_t* p) {
  std::uint32_t u = 0;
  for (int i = 0; i < 4; ++i) u |= static_cast<std::uint32_t>(p[i] & 0xff) << (8 * i);
  return static_cast<std::int32_t>(u);
}

// ---- keys, tag, cipher image ---------------------------------------------------------------------

void checkKey(const SecretBytes& key) {
  if (key.size() != 32 || key.data() == nullptr) fail("the key must be 32 bytes");
}

void macField(EVP_MAC_CTX* ctx, const std::uint8_t* data, std::size_t size, bool& ok) {
  std::uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<std::uint8_t>(std::uint64_t{size} >> (56 - 8 * i));
  ok = ok && EVP_MAC_update(ctx, len, sizeof len) == 1 && (size == 0 || EVP_MAC_update(ctx, data, size) == 1);
}

Bytes computeTag(const SecretBytes& key, const Bytes& aad, const CipherRecord& rec, const PixelBuffer& pixels) {
  // SHA-256 of the cipher image first (all segments), then HMAC over length-prefixed fields.
  std::uint8_t imageDigest[32];
  {
    EVP_MD_CTX* md = EVP_MD_CTX_new();
    unsigned int len = 0;
    bool ok = md != nullptr && EVP_DigestInit_ex(md, EVP_sha256(), nullptr) == 1;
    for (const ByteRange& r : pixels.segments) ok = ok && (r.size == 0 || EVP_DigestUpdate(md, r.data, r.size) == 1);
    ok = ok && EVP_DigestFinal_ex(md, imageDigest, &len) == 1 && len == sizeof imageDigest;
    EVP_MD_CTX_free(md);
    if (!ok) fail("SHA-256 failed");
  }
  static EVP_MAC* hmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (hmac == nullptr) fail("HMAC is not available");
  const SecretBytes tagKey = deriveSubkey(key, kTagKeyLabel, "");
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(hmac);
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_construct_end()};
  bool ok = ctx != nullptr && EVP_MAC_init(ctx, tagKey.data(), tagKey.size(), params) == 1;
  const std::string label = kLabel;
  macField(ctx, reinterpret_cast<const std::uint8_t*>(label.data()), label.size(), ok);
  macField(ctx, aad.data(), aad.size(), ok);
  macField(ctx, rec.params.data(), rec.params.size(), ok);
  macField(ctx, rec.nonce.data(), rec.nonce.size(), ok);
  macField(ctx, rec.payload.data(), rec.payload.size(), ok);
  macField(ctx, imageDigest, sizeof imageDigest, ok);
  Bytes tag(kTagBytes);
  std::size_t outLen = 0;
  ok = ok && EVP_MAC_final(ctx, tag.data(), &outLen, tag.size()) == 1 && outLen == kTagBytes;
  EVP_MAC_CTX_free(ctx);
  if (!ok) fail("HMAC-SHA-256 failed");
  return tag;
}

// AES-256-CTR key stream over every segment (IV = the 16-byte nonce).
void fillCipherImage(PixelBuffer& pixels, const SecretBytes& key, const Bytes& nonce) {
  const SecretBytes imageKey = deriveSubkey(key, kImageKeyLabel, "");
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (ctx == nullptr || EVP_EncryptInit_ex(ctx, EVP_aes_256_ctr(), nullptr, imageKey.data(), nonce.data()) != 1) {
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

// ---- features --------------------------------------------------------------------------------------

HePayload encryptFeatures(PixelBuffer& pixels, const Autoencoder& model, const he::PaillierPrivateKey& key) {
  const PixelLayout& l = pixels.layout;
  const auto frames = framesOf(pixels);
  const std::size_t perFrame = codesPerFrame(model, l);
  const SampleRange range = rangeOf(l);
  const he::PackedPaillier gridHe(key.publicKey(), kGridSlotBits);
  HePayload p;
  p.modulusBits = key.publicKey().modulusBits();
  p.n = key.publicKey().n();
  p.frames = static_cast<std::uint32_t>(frames.size());
  p.codesPerFrame = static_cast<std::uint32_t>(perFrame);
  p.codeSlotBits = 8;
  p.imageRows = l.rows;
  p.imageColumns = l.columns;
  p.tile = kTile;
  p.offset = static_cast<std::int32_t>(range.offset);
  p.maxSample = range.maxShifted;
  std::vector<std::uint64_t> codes(frames.size() * perFrame);
  for (std::size_t f = 0; f < frames.size(); ++f) {
    const neural::UnitFrame unit = neural::readFrame(frames[f], l);
    const Bytes latent = model.encode(unit);
    std::uint64_t* c = codes.data() + f * perFrame;
    putInt32(c, unit.window.lo);
    putInt32(c + 4, unit.window.hi);
    std::copy(latent.begin(), latent.end(), c + kWindowBytes);
    const he::BlockGrid grid = he::blockSums(storedSamples(frames[f], l), l.rows, l.columns, kTile, range.offset,
                                             range.maxShifted);
    he::EncryptedImage enc =
        he::encryptGrid(key, gridHe, grid.sums, grid.rows, grid.columns, grid.bound(), paillierThreads());
    p.gridRows = static_cast<std::uint16_t>(grid.rows);
    p.gridColumns = static_cast<std::uint16_t>(grid.columns);
    p.gridCiphertextsPerFrame = static_cast<std::uint32_t>(enc.chunks.size());
    for (auto& chunk : enc.chunks) p.grid.push_back(std::move(chunk.c));
  }
  he::EncryptedVector v = he::encryptVector(key, codes, 255, p.codeSlotBits, paillierThreads());
  OPENSSL_cleanse(codes.data(), codes.size() * sizeof(std::uint64_t));
  p.latent = std::move(v.ciphertexts);
  return p;
}

// The codes of every frame. `strict`: refuse plaintexts that do not fit their slots (the verified path);
// otherwise keep the low bits of each slot (decryption with a wrong key, for the evaluation).
std::vector<std::uint64_t> decryptCodes(const HePayload& p, const he::PaillierPrivateKey& key, bool strict) {
  he::EncryptedVector v;
  v.slotBits = p.codeSlotBits;
  v.slotBound = 255;
  v.count = std::size_t{p.frames} * p.codesPerFrame;
  v.ciphertexts = p.latent;
  if (strict) return he::decryptVector(key, v, paillierThreads());
  const he::SlotPacking packing(key.publicKey(), p.codeSlotBits);
  std::vector<std::uint64_t> out;
  for (const he::BigNum& c : p.latent) {
    he::BigNum m;
    try {
      m = key.decrypt(c);
    } catch (const he::HeError&) {
    }
    const std::size_t n = std::min(packing.slots(), v.count - out.size());
    const auto part = packing.unpack(m, n);
    out.insert(out.end(), part.begin(), part.end());
  }
  return out;
}

void decodeFrames(PixelBuffer& pixels, const Autoencoder& model, const std::vector<std::uint64_t>& codes, bool strict) {
  const auto frames = framesOf(pixels);
  const std::size_t perFrame = codesPerFrame(model, pixels.layout);
  if (codes.size() != frames.size() * perFrame) fail("the payload does not match the image");
  Bytes latent(perFrame - kWindowBytes);
  for (std::size_t f = 0; f < frames.size(); ++f) {
    const std::uint64_t* c = codes.data() + f * perFrame;
    neural::Window w{getInt32(c), getInt32(c + 4)};
    if (w.hi <= w.lo) {
      if (strict) fail("the payload holds an invalid window");
      w = {0, (1 << std::min<int>(pixels.layout.bitsStored, 30)) - 1};
    }
    for (std::size_t i = 0; i < latent.size(); ++i) latent[i] = static_cast<std::uint8_t>(c[kWindowBytes + i] & 0xff);
    const std::vector<float> y = model.decode(latent.data(), pixels.layout.rows, pixels.layout.columns);
    neural::writeFrame(frames[f], pixels.layout, y, w);
  }
  OPENSSL_cleanse(latent.data(), latent.size());
}

// Sizes and parameters a record must have for `model`; anything else is an altered record.
void checkRecord(const CipherRecord& r, const Autoencoder& model) {
  if (r.backendId != kBackendId) throw CipherError("ae-he: the key reference names another backend");
  if (r.backendVersion != kBackendVersion) throw CipherError("ae-he: unsupported backend version");
  if (r.nonce.size() != kNonceBytes) throw AuthenticationError("ae-he: the nonce must be 16 bytes");
  if (r.tag.size() != kTagBytes) throw AuthenticationError("ae-he: the tag must be 32 bytes");
  if (r.params.size() != kParamsBytes) throw AuthenticationError("ae-he: parameters have the wrong length");
  if (r.params[0] != kFormat) fail("unsupported parameter format " + std::to_string(r.params[0]));
  if (!std::equal(model.digest().begin(), model.digest().end(), r.params.begin() + 8)) {
    neural::ModelDigest d{};
    std::copy(r.params.begin() + 8, r.params.end(), d.begin());
    fail("the object was encrypted with another model (SHA-256 " + neural::hex(d) + ") than this gateway's (" +
         neural::hex(model.digest()) + "); configure cipher.model with that model");
  }
  if (r.params != paramsFor(model)) fail("unsupported parameters (latent shape, tile or modulus size)");
}

HePayload parseOrRefuse(const Bytes& payload) {
  try {
    return parsePayload(payload);
  } catch (const he::HeError& e) {
    throw AuthenticationError(std::string("ae-he: ") + e.what());
  }
}

CipherRecord encryptWith(const Autoencoder& model, PixelBuffer& pixels, const SecretBytes& key, const Bytes& aad,
                         const Bytes& nonce) {
  checkKey(key);
  neural::checkMonochromeLayout(pixels.layout, kBackendId);
  if (nonce.size() != kNonceBytes) fail("the nonce must be 16 bytes");
  const auto paillier = paillierKeyFor(key);
  CipherRecord rec;
  rec.backendId = kBackendId;
  rec.backendVersion = kBackendVersion;
  rec.nonce = nonce;
  rec.params = paramsFor(model);
  try {
    rec.payload = serialisePayload(encryptFeatures(pixels, model, *paillier));
  } catch (const he::HeError& e) {
    fail(e.what());
  }
  fillCipherImage(pixels, key, nonce);
  rec.tag = computeTag(key, aad, rec, pixels);
  return rec;
}

class AeHeCipher final : public PixelCipher {
 public:
  explicit AeHeCipher(const CipherOptions& options) : model_(modelFor(options)) {}

  const BackendInfo& info() const override { return aeHeBackend().info; }
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
    checkRecord(record, *model_);
    // Verified before anything is decrypted; the pixels still hold the cipher image on failure.
    const Bytes expected = computeTag(key, aad, record, pixels);
    if (CRYPTO_memcmp(expected.data(), record.tag.data(), kTagBytes) != 0)
      throw AuthenticationError("ae-he: authentication failed (altered object, payload or wrong key)");
    const HePayload p = parseOrRefuse(record.payload);
    const auto paillier = paillierKeyFor(key);
    // A valid tag with another modulus can only mean a different key derivation on this machine.
    if (p.n != paillier->publicKey().n()) fail("the object's Paillier modulus is not the one derived from its key");
    if (p.imageRows != pixels.layout.rows || p.imageColumns != pixels.layout.columns)
      fail("the payload does not match the image");
    std::vector<std::uint64_t> codes;
    try {
      codes = decryptCodes(p, *paillier, true);
    } catch (const he::HeError& e) {
      fail(e.what());
    }
    decodeFrames(pixels, *model_, codes, true);
    OPENSSL_cleanse(codes.data(), codes.size() * sizeof(std::uint64_t));
  }

 private:
  std::shared_ptr<const Autoencoder> model_;
};

}  // namespace

std::shared_ptr<const he::PaillierPrivateKey> paillierKeyFor(const SecretBytes& key) {
  checkKey(key);
  const SecretBytes seed = deriveSubkey(key, kPaillierLabel, "");
  try {
    return he::PaillierKeyCache::shared().get(seed.data(), seed.size(), kModulusBits);
  } catch (const he::HeError& e) {
    fail(e.what());
  }
}

namespace engine {

CipherRecord encrypt(PixelBuffer& pixels, const SecretBytes& key, const std::vector<std::uint8_t>& aad,
                     const std::vector<std::uint8_t>& nonce, const CipherOptions& options) {
  return encryptWith(*modelFor(options), pixels, key, aad, nonce);
}

void decryptUnverified(PixelBuffer& pixels, const SecretBytes& key, const std::vector<std::uint8_t>&,
                       const CipherRecord& record, const CipherOptions& options) {
  const auto model = modelFor(options);
  checkKey(key);
  const HePayload p = parseOrRefuse(record.payload);
  decodeFrames(pixels, *model, decryptCodes(p, *paillierKeyFor(key), false), false);
}

void reconstruct(PixelBuffer& pixels, const CipherOptions& options) {
  const auto model = modelFor(options);
  neural::checkMonochromeLayout(pixels.layout, kBackendId);
  for (std::uint8_t* frame : framesOf(pixels)) {
    const neural::UnitFrame unit = neural::readFrame(frame, pixels.layout);
    const Bytes latent = model->encode(unit);
    neural::writeFrame(frame, pixels.layout, model->decode(latent.data(), pixels.layout.rows, pixels.layout.columns),
                       unit.window);
  }
}

std::size_t modelParameters(const CipherOptions& options) { return modelFor(options)->parameterCount(); }

std::size_t modelFileBytes(const CipherOptions& options) { return neural::modelFileBytes(kBackendId, options.model); }

}  // namespace engine
}  // namespace ae_he

namespace {

BackendInfo aeHeInfo() {
  return neural::learnedBackendInfo(
      ae_he::kBackendId, ae_he::kBackendVersion, "PACSGW_AE_HE",
      neural::kNativeMonochromeLayouts,
      "research backend after Suvitha & Murugan 2024 (autoencoder features encrypted with 3072-bit "
          "Paillier, region means computable on ciphertext); lossy model, exact retrieval through the "
          "envelope; slow; not a standard cipher");
}

}  // namespace

const BackendEntry& aeHeBackend() { return neural::learnedBackendEntry<ae_he::AeHeCipher>(aeHeInfo); }

}  // namespace pacsgw::codecs
