// Backend "chaos-vpd": the cipher of Kumar et al. 2025 (DCGAN decoy -> SHA-512 -> eight chaotic key streams ->
// VPD / 3-D shuffle / XOR, twice -> planet S-box + key) hardened for DICOM:
//  * per-object keys: HKDF-SHA-256(data key, salt = 32 random bytes) instead of a timestamp and nonce;
//  * a synthetic IV, HMAC over the plaintext, feeds the key schedule, so one changed pixel changes every
//    key stream (plaintext sensitivity) and a repeated nonce only reveals equal plaintexts;
//  * encrypt-then-MAC: HMAC-SHA-256 over params, nonce, AAD and ciphertext, checked before decrypting;
//  * key streams from a map evaluated with basic IEEE operations only (see chaos_map.h).
// No LibTorch here: the decoy generator lives in decoy_generator.cpp.
#include "codecs/chaos/chaos_vpd.h"

#include "codecs/backend_table.h"
#include "codecs/chaos/chaos_vpd_engine.h"
#include "codecs/chaos/decoy_generator.h"
#include "codecs/chaos/vpd_core.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <string>

namespace pacsgw::codecs {
namespace chaos {
namespace {

constexpr std::uint8_t kFormatVersion = 1;
constexpr std::uint8_t kRounds = 2;
constexpr std::uint8_t kChebyshevDegree = 4;
constexpr std::uint8_t kBlockLog2 = 20;
static_assert(kBlockWords == (std::size_t{1} << kBlockLog2));
constexpr std::size_t kLatentSecretBytes = kLatentBytes + 32;  // generator latent + schedule secret

constexpr const char* kInfoMac = "pacsgw chaos-vpd v1 mac";
constexpr const char* kInfoSiv = "pacsgw chaos-vpd v1 siv";
constexpr const char* kInfoSchedule = "pacsgw chaos-vpd v1 schedule";
constexpr const char* kLabelSiv = "pacsgw chaos-vpd v1 synthetic iv";
constexpr const char* kLabelTag = "pacsgw chaos-vpd v1 tag";
constexpr const char* kLabelKeys = "pacsgw chaos-vpd v1 keys";

using Clock = std::chrono::steady_clock;
double msSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

thread_local CallTimings tlsTimings;

[[noreturn]] void fail(const std::string& what) {
  ERR_clear_error();
  throw CipherError("chaos-vpd: " + what);
}

// ---- OpenSSL primitives -------------------------------------------------------------------------

EVP_MAC* hmacAlgorithm() {
  static EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (mac == nullptr) fail("HMAC is not available");
  return mac;
}

EVP_KDF* hkdfAlgorithm() {
  static EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  if (kdf == nullptr) fail("HKDF is not available");
  return kdf;
}

class Hmac {
 public:
  Hmac(const std::uint8_t* key, std::size_t keySize) : ctx_(EVP_MAC_CTX_new(hmacAlgorithm())) {
    if (!ctx_) fail("cannot allocate an HMAC context");
    char digest[] = "SHA256";
    const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                                 OSSL_PARAM_construct_end()};
    if (EVP_MAC_init(ctx_.get(), key, keySize, params) != 1) fail("HMAC initialisation failed");
  }

  void update(const void* data, std::size_t size) {
    if (size > 0 && EVP_MAC_update(ctx_.get(), static_cast<const unsigned char*>(data), size) != 1)
      fail("HMAC failed");
  }
  void updateLength(std::uint64_t v) {
    std::uint8_t be[8];
    for (int i = 7; i >= 0; --i, v >>= 8) be[i] = static_cast<std::uint8_t>(v);
    update(be, sizeof be);
  }
  // Length-prefixed field, so that field boundaries are unambiguous.
  void field(const void* data, std::size_t size) {
    updateLength(size);
    update(data, size);
  }
  void field(const std::string& s) { field(s.data(), s.size()); }
  void field(const std::vector<std::uint8_t>& v) { field(v.data(), v.size()); }
  std::array<std::uint8_t, 32> finish() {
    std::array<std::uint8_t, 32> out{};
    std::size_t len = 0;
    if (EVP_MAC_final(ctx_.get(), out.data(), &len, out.size()) != 1 || len != out.size()) fail("HMAC failed");
    return out;
  }

 private:
  struct Free {
    void operator()(EVP_MAC_CTX* c) const { EVP_MAC_CTX_free(c); }
  };
  std::unique_ptr<EVP_MAC_CTX, Free> ctx_;
};

// RFC 5869 HKDF-SHA-256, extract and expand as separate steps (one PRK, several labelled outputs).
SecretBytes hkdf(int mode, const std::uint8_t* key, std::size_t keySize, const std::uint8_t* saltOrInfo,
                 std::size_t saltOrInfoSize, std::size_t outSize) {
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(hkdfAlgorithm());
  if (ctx == nullptr) fail("cannot allocate an HKDF context");
  char digest[] = "SHA256";
  OSSL_PARAM params[5];
  std::size_t n = 0;
  params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
  params[n++] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
  params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<std::uint8_t*>(key), keySize);
  params[n++] = OSSL_PARAM_construct_octet_string(
      mode == EVP_KDF_HKDF_MODE_EXTRACT_ONLY ? OSSL_KDF_PARAM_SALT : OSSL_KDF_PARAM_INFO,
      const_cast<std::uint8_t*>(saltOrInfo), saltOrInfoSize);
  params[n] = OSSL_PARAM_construct_end();
  SecretBytes out(outSize);
  const int ok = EVP_KDF_derive(ctx, out.data(), out.size(), params);
  EVP_KDF_CTX_free(ctx);
  if (ok != 1) fail("HKDF failed");
  return out;
}

SecretBytes hkdfExpand(const SecretBytes& prk, const std::string& label, const std::uint8_t* extra = nullptr,
                       std::size_t extraSize = 0, std::size_t outSize = 32) {
  std::vector<std::uint8_t> info(label.begin(), label.end());
  if (extra != nullptr) info.insert(info.end(), extra, extra + extraSize);
  return hkdf(EVP_KDF_HKDF_MODE_EXPAND_ONLY, prk.data(), prk.size(), info.data(), info.size(), outSize);
}

template <std::size_t N> std::array<std::uint8_t, N> digest(const EVP_MD* md, const std::vector<std::uint8_t>& data) {
  std::array<std::uint8_t, N> out{};
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &len, md, nullptr) != 1 || len != N) fail("digest failed");
  return out;
}

// ---- Layout --------------------------------------------------------------------------------------

unsigned wordBitsOf(const PixelLayout& layout) { return layout.bitsAllocated; }

void checkLayout(const PixelLayout& layout) {
  if (layout.encapsulated)
    throw UnsupportedLayoutError(
        "chaos-vpd protects native (uncompressed) pixel data only; decompress the object first or use aes-256-gcm");
  if (layout.floatingPoint)
    throw UnsupportedLayoutError("chaos-vpd does not support Float or Double Float Pixel Data; use aes-256-gcm");
  if (layout.bitsAllocated != 8 && layout.bitsAllocated != 16)
    throw UnsupportedLayoutError("chaos-vpd supports 8 or 16 bits allocated, got " +
                                 std::to_string(layout.bitsAllocated));
  if (layout.bitsStored == 0 || layout.bitsStored > layout.bitsAllocated)
    throw UnsupportedLayoutError("chaos-vpd: bits stored must be 1.." + std::to_string(layout.bitsAllocated));
  if (layout.samplesPerPixel != 1 && layout.samplesPerPixel != 3)
    throw UnsupportedLayoutError("chaos-vpd supports 1 or 3 samples per pixel, got " +
                                 std::to_string(layout.samplesPerPixel));
}

void checkSegments(const PixelBuffer& pixels) {
  const std::size_t wordBytes = wordBitsOf(pixels.layout) / 8;
  for (const auto& s : pixels.segments) {
    if (s.size > 0 && s.data == nullptr) fail("segment without data");
    if (s.size % wordBytes != 0) fail("segment length is not a whole number of samples");
  }
}

// ---- Parameters ----------------------------------------------------------------------------------

std::vector<std::uint8_t> paramsHeader(unsigned wordBits) {
  return {kFormatVersion, kRounds, kChebyshevDegree, static_cast<std::uint8_t>(wordBits),
          static_cast<std::uint8_t>(kTransient >> 8), static_cast<std::uint8_t>(kTransient & 0xFF), kBlockLog2,
          0};
}

using Siv = std::array<std::uint8_t, kSivBytes>;

// ---- Keys ----------------------------------------------------------------------------------------

struct ObjectKeys {
  SecretBytes prk;     // HKDF-Extract(salt = nonce, IKM = data key)
  SecretBytes macKey;  // tag
  SecretBytes sivKey;  // synthetic IV
};

ObjectKeys deriveObjectKeys(const SecretBytes& dataKey, const std::vector<std::uint8_t>& nonce) {
  if (dataKey.size() != 32 || dataKey.data() == nullptr) fail("the data key must be 32 bytes");
  ObjectKeys k;
  k.prk = hkdf(EVP_KDF_HKDF_MODE_EXTRACT_ONLY, dataKey.data(), dataKey.size(), nonce.data(), nonce.size(), 32);
  k.macKey = hkdfExpand(k.prk, kInfoMac);
  k.sivKey = hkdfExpand(k.prk, kInfoSiv);
  return k;
}

Siv computeSiv(const ObjectKeys& keys, const std::vector<std::uint8_t>& header, const std::vector<std::uint8_t>& aad,
               const PixelBuffer& pixels) {
  Hmac h(keys.sivKey.data(), keys.sivKey.size());
  h.field(std::string(kLabelSiv));
  h.field(header);
  h.field(aad);
  h.updateLength(pixels.segments.size());
  for (const auto& s : pixels.segments) h.field(s.data, s.size);
  return h.finish();
}

std::array<std::uint8_t, kTagBytes> computeTag(const ObjectKeys& keys, const std::vector<std::uint8_t>& params,
                                               const std::vector<std::uint8_t>& nonce,
                                               const std::vector<std::uint8_t>& aad, const PixelBuffer& pixels) {
  Hmac h(keys.macKey.data(), keys.macKey.size());
  h.field(std::string(kLabelTag));
  h.field(params);
  h.field(nonce);
  h.field(aad);
  h.updateLength(pixels.segments.size());
  for (const auto& s : pixels.segments) h.field(s.data, s.size);
  return h.finish();
}

// Paper Steps 1-3 of the key generation: decoy image -> channel sums -> SHA-512 -> eight initial values.
struct Schedule {
  std::vector<std::uint8_t> decoy;
  std::string sums;                     // "S_R+1,S_G+1,S_B+1"
  std::array<std::uint8_t, 32> decoyDigest{};
  SecretBytes secret;                   // replaces the paper's timestamp and nonce

  Schedule() = default;
  Schedule(const Schedule&) = default;
  Schedule& operator=(const Schedule&) = default;
  // The decoy and its summaries are derived from key material: wipe them too.
  ~Schedule() {
    if (!decoy.empty()) OPENSSL_cleanse(decoy.data(), decoy.size());
    if (!sums.empty()) OPENSSL_cleanse(sums.data(), sums.size());
    OPENSSL_cleanse(decoyDigest.data(), decoyDigest.size());
  }
};

Schedule makeSchedule(const ObjectKeys& keys, const Siv& siv, Device device) {
  const auto t0 = Clock::now();
  const SecretBytes material = hkdfExpand(keys.prk, kInfoSchedule, siv.data(), siv.size(), kLatentSecretBytes);
  tlsTimings.scheduleMs += msSince(t0);

  const auto t1 = Clock::now();
  const DecoyImage decoy = DecoyGenerator::shared(device).generate(material.data());
  tlsTimings.generatorMs += msSince(t1);

  Schedule s;
  s.decoy.assign(decoy.begin(), decoy.end());
  const std::size_t plane = static_cast<std::size_t>(kDecoySide) * kDecoySide;
  for (int c = 0; c < kDecoyChannels; ++c) {
    std::uint64_t sum = 1;  // the paper's "+1", kept so an all-zero decoy still contributes
    for (std::size_t i = 0; i < plane; ++i) sum += decoy[c * plane + i];
    s.sums += (c ? "," : "") + std::to_string(sum);
  }
  s.decoyDigest = digest<32>(EVP_sha256(), s.decoy);
  s.secret = SecretBytes(material.data() + kLatentBytes, 32);
  return s;
}

std::array<LaneSeed, kLanes> laneSeeds(const Schedule& s, std::size_t segment, std::size_t block) {
  std::vector<std::uint8_t> input(kLabelKeys, kLabelKeys + std::strlen(kLabelKeys));
  input.insert(input.end(), s.sums.begin(), s.sums.end());
  input.push_back(0);
  input.insert(input.end(), s.decoyDigest.begin(), s.decoyDigest.end());
  input.insert(input.end(), s.secret.data(), s.secret.data() + s.secret.size());
  for (std::uint32_t v : {static_cast<std::uint32_t>(segment), static_cast<std::uint32_t>(block)})
    for (int shift = 24; shift >= 0; shift -= 8) input.push_back(static_cast<std::uint8_t>(v >> shift));
  auto h = digest<64>(EVP_sha512(), input);
  OPENSSL_cleanse(input.data(), input.size());
  std::array<LaneSeed, kLanes> seeds{};
  for (std::size_t l = 0; l < kLanes; ++l) {
    std::uint64_t part = 0;
    for (std::size_t b = 0; b < 8; ++b) part = (part << 8) | h[8 * l + b];
    seeds[l] = laneSeedFromDigestPart(part);
  }
  OPENSSL_cleanse(h.data(), h.size());
  return seeds;
}

// ---- Pixel transform ----------------------------------------------------------------------------

bool littleEndianHost() {
  const std::uint16_t probe = 1;
  std::uint8_t first = 0;
  std::memcpy(&first, &probe, 1);
  return first == 1;
}

enum class Direction { Encrypt, Decrypt };

// Samples per image row; the shuffle grid uses it as its width (a fixed fallback for odd layouts).
std::size_t samplesPerRow(const PixelLayout& layout) {
  const std::size_t spr = static_cast<std::size_t>(layout.columns) * layout.samplesPerPixel;
  return spr > 0 ? spr : 1024;
}

// Blocks are whole image rows, at most kBlockWords samples (more if one row alone is longer).
std::size_t blockWords(std::size_t rowSamples) {
  return rowSamples >= kBlockWords ? rowSamples : (kBlockWords / rowSamples) * rowSamples;
}

template <typename Word>
void transformWords(Word* w, std::size_t n, std::size_t rowSamples, const Schedule& s, std::size_t segment,
                    Direction dir, LaneStreams& streams, std::vector<Word>& scratch) {
  const std::size_t step = blockWords(rowSamples);
  for (std::size_t block = 0, start = 0; start < n; ++block, start += step) {
    const std::size_t len = std::min(step, n - start);
    const BlockGeometry grid = blockGeometry(len, rowSamples);
    auto t0 = Clock::now();
    const auto seeds = laneSeeds(s, segment, block);
    for (std::size_t lane = 0; lane < kLanes; ++lane)
      KeyStream(seeds[lane]).generate(laneOutputsNeeded(lane, len, grid, sizeof(Word) * 8), streams[lane]);
    tlsTimings.scheduleMs += msSince(t0);
    t0 = Clock::now();
    if (dir == Direction::Encrypt)
      encryptBlock(w + start, len, grid, streams, scratch);
    else
      decryptBlock(w + start, len, grid, streams, scratch);
    tlsTimings.pixelsMs += msSince(t0);
  }
}

void transform(PixelBuffer& pixels, const Schedule& s, Direction dir) {
  LaneStreams streams;
  std::vector<std::uint8_t> scratch8;
  std::vector<std::uint16_t> scratch16;
  std::vector<std::uint16_t> words;
  const std::size_t rowSamples = samplesPerRow(pixels.layout);
  const bool le = littleEndianHost();
  for (std::size_t seg = 0; seg < pixels.segments.size(); ++seg) {
    ByteRange& r = pixels.segments[seg];
    if (r.size == 0) continue;
    if (wordBitsOf(pixels.layout) == 8) {
      transformWords(r.data, r.size, rowSamples, s, seg, dir, streams, scratch8);
      continue;
    }
    // 16-bit samples arrive little-endian; work on host-order words.
    const std::size_t n = r.size / 2;
    words.resize(n);
    if (le) {
      std::memcpy(words.data(), r.data, r.size);
    } else {
      for (std::size_t i = 0; i < n; ++i)
        words[i] = static_cast<std::uint16_t>(r.data[2 * i] | (r.data[2 * i + 1] << 8));
    }
    transformWords(words.data(), n, rowSamples, s, seg, dir, streams, scratch16);
    if (le) {
      std::memcpy(r.data, words.data(), r.size);
    } else {
      for (std::size_t i = 0; i < n; ++i) {
        r.data[2 * i] = static_cast<std::uint8_t>(words[i]);
        r.data[2 * i + 1] = static_cast<std::uint8_t>(words[i] >> 8);
      }
    }
    OPENSSL_cleanse(words.data(), words.size() * sizeof(std::uint16_t));
  }
  // The scratch buffers held intermediate pixel states.
  if (!scratch8.empty()) OPENSSL_cleanse(scratch8.data(), scratch8.size());
  if (!scratch16.empty()) OPENSSL_cleanse(scratch16.data(), scratch16.size() * sizeof(std::uint16_t));
  // Key streams are key material: wipe them before the memory is released.
  for (auto& lane : streams)
    if (!lane.empty()) OPENSSL_cleanse(lane.data(), lane.size() * sizeof(std::uint32_t));
}

// ---- Record handling -----------------------------------------------------------------------------

struct ParsedParams {
  unsigned wordBits = 0;
  Siv siv{};
};

ParsedParams parseParams(const std::vector<std::uint8_t>& params, const PixelLayout& layout) {
  if (params.size() != kParamsBytes) throw AuthenticationError("chaos-vpd: parameters have the wrong length");
  if (params[0] != kFormatVersion) fail("unsupported parameter format " + std::to_string(params[0]));
  const std::vector<std::uint8_t> expected = paramsHeader(params[3]);
  if (!std::equal(expected.begin(), expected.end(), params.begin()))
    fail("unsupported parameters (rounds, map degree, transient or block size)");
  ParsedParams p;
  p.wordBits = params[3];
  if (p.wordBits != wordBitsOf(layout))
    fail("the object's bits allocated do not match the encrypted word size");
  std::copy(params.begin() + 8, params.end(), p.siv.begin());
  return p;
}

void checkRecordShape(const CipherRecord& record) {
  if (record.backendId != kBackendId) throw CipherError("chaos-vpd: the key reference names another backend");
  if (record.backendVersion != kBackendVersion) throw CipherError("chaos-vpd: unsupported backend version");
  // Sizes are fixed by the format: anything else is an altered key reference.
  if (record.nonce.size() != kNonceBytes) throw AuthenticationError("chaos-vpd: the nonce must be 32 bytes");
  if (record.tag.size() != kTagBytes) throw AuthenticationError("chaos-vpd: the tag must be 32 bytes");
  if (record.params.size() != kParamsBytes) throw AuthenticationError("chaos-vpd: parameters have the wrong length");
}

CipherRecord encryptImpl(PixelBuffer& pixels, const SecretBytes& dataKey, const std::vector<std::uint8_t>& aad,
                         const std::vector<std::uint8_t>& nonce, const Siv* forcedSiv, Device device) {
  tlsTimings = {};
  checkLayout(pixels.layout);
  checkSegments(pixels);
  if (nonce.size() != kNonceBytes) fail("the nonce must be 32 bytes");
  const unsigned wordBits = wordBitsOf(pixels.layout);
  const ObjectKeys keys = deriveObjectKeys(dataKey, nonce);
  const std::vector<std::uint8_t> header = paramsHeader(wordBits);

  auto t0 = Clock::now();
  const Siv siv = forcedSiv ? *forcedSiv : computeSiv(keys, header, aad, pixels);
  tlsTimings.macMs += msSince(t0);

  const Schedule schedule = makeSchedule(keys, siv, device);
  transform(pixels, schedule, Direction::Encrypt);

  CipherRecord record;
  record.backendId = kBackendId;
  record.backendVersion = kBackendVersion;
  record.nonce = nonce;
  record.params = header;
  record.params.insert(record.params.end(), siv.begin(), siv.end());
  t0 = Clock::now();
  const auto tag = computeTag(keys, record.params, record.nonce, aad, pixels);
  tlsTimings.macMs += msSince(t0);
  record.tag.assign(tag.begin(), tag.end());
  return record;
}

class ChaosVpdCipher final : public PixelCipher {
 public:
  explicit ChaosVpdCipher(Device device) : device_(device) {
    DecoyGenerator::shared(device_);  // build the generator now, so a broken LibTorch fails at start-up
  }

  const BackendInfo& info() const override { return chaosVpdBackend().info; }

  Device device() const override { return device_; }

  void checkSupported(const PixelLayout& layout) const override { checkLayout(layout); }

  CipherRecord encrypt(PixelBuffer& pixels, const SecretBytes& dataKey,
                       const std::vector<std::uint8_t>& aad) override {
    std::vector<std::uint8_t> nonce(kNonceBytes);
    if (RAND_bytes(nonce.data(), static_cast<int>(nonce.size())) != 1) fail("the random generator failed");
    return encryptImpl(pixels, dataKey, aad, nonce, nullptr, device_);
  }

  void decrypt(PixelBuffer& pixels, const SecretBytes& dataKey, const std::vector<std::uint8_t>& aad,
               const CipherRecord& record) override {
    tlsTimings = {};
    checkRecordShape(record);
    checkLayout(pixels.layout);
    checkSegments(pixels);
    const ObjectKeys keys = deriveObjectKeys(dataKey, record.nonce);

    // Encrypt-then-MAC: nothing is decrypted unless the tag verifies.
    auto t0 = Clock::now();
    const auto tag = computeTag(keys, record.params, record.nonce, aad, pixels);
    tlsTimings.macMs += msSince(t0);
    if (CRYPTO_memcmp(tag.data(), record.tag.data(), kTagBytes) != 0)
      throw AuthenticationError("chaos-vpd: authentication failed (wrong key, or altered pixels, AAD or parameters)");

    const ParsedParams p = parseParams(record.params, pixels.layout);
    const Schedule schedule = makeSchedule(keys, p.siv, device_);
    transform(pixels, schedule, Direction::Decrypt);

    // The synthetic IV re-derived from the result must match: a mismatch after a valid tag means this
    // machine computed a different key schedule than the encrypting one (which must never happen).
    // Restore the ciphertext rather than hand out wrong pixels.
    t0 = Clock::now();
    const Siv check = computeSiv(keys, std::vector<std::uint8_t>(record.params.begin(), record.params.begin() + 8),
                                 aad, pixels);
    tlsTimings.macMs += msSince(t0);
    if (CRYPTO_memcmp(check.data(), p.siv.data(), kSivBytes) != 0) {
      transform(pixels, schedule, Direction::Encrypt);
      fail("decryption produced pixels inconsistent with the synthetic IV (key schedule diverged)");
    }
  }

 private:
  Device device_;
};

}  // namespace

namespace engine {

CallTimings lastCallTimings() { return tlsTimings; }

CipherRecord encrypt(PixelBuffer& pixels, const SecretBytes& dataKey, const std::vector<std::uint8_t>& aad,
                     const std::vector<std::uint8_t>& nonce, const std::array<std::uint8_t, kSivBytes>* forcedSiv,
                     Device device) {
  return encryptImpl(pixels, dataKey, aad, nonce, forcedSiv, device);
}

void invertLayers(PixelBuffer& pixels, const SecretBytes& dataKey, const CipherRecord& record, Device device) {
  tlsTimings = {};
  checkRecordShape(record);
  checkLayout(pixels.layout);
  checkSegments(pixels);
  const ObjectKeys keys = deriveObjectKeys(dataKey, record.nonce);
  const ParsedParams p = parseParams(record.params, pixels.layout);
  transform(pixels, makeSchedule(keys, p.siv, device), Direction::Decrypt);
}

LaneStreams keyStreams(const SecretBytes& dataKey, const CipherRecord& record, std::size_t outputsPerLane,
                       Device device) {
  checkRecordShape(record);
  const ObjectKeys keys = deriveObjectKeys(dataKey, record.nonce);
  Siv siv{};
  std::copy(record.params.begin() + 8, record.params.end(), siv.begin());
  const auto seeds = laneSeeds(makeSchedule(keys, siv, device), 0, 0);
  LaneStreams out;
  for (std::size_t lane = 0; lane < kLanes; ++lane) {
    KeyStream(seeds[lane]).generate(outputsPerLane, out[lane]);
    out[lane].resize(outputsPerLane);
  }
  return out;
}

DecoySummary decoyFor(const SecretBytes& dataKey, const CipherRecord& record, Device device) {
  checkRecordShape(record);
  const ObjectKeys keys = deriveObjectKeys(dataKey, record.nonce);
  Siv siv{};
  std::copy(record.params.begin() + 8, record.params.end(), siv.begin());
  const Schedule s = makeSchedule(keys, siv, device);
  return DecoySummary{s.decoy, s.sums};
}

}  // namespace engine

}  // namespace chaos

namespace {

BackendInfo chaosVpdInfo() {
  using namespace chaos;
  BackendInfo i;
  i.id = kBackendId;
  i.version = kBackendVersion;
  i.lossless = true;
  i.authenticated = true;
  i.supportsEncapsulated = false;
  i.supportsFloat = false;
  i.layouts = "native integer pixel data, 8 or 16 bits allocated (any bits stored, e.g. 12 of 16), signed "
              "or unsigned, 1 sample (MONOCHROME1/2, PALETTE COLOR) or 3 samples (RGB, YBR_FULL) in either "
              "planar configuration, single- or multi-frame";
  i.summary = "research backend after Kumar et al. 2025 (DCGAN decoy, chaotic key streams, virtual planet "
              "domain), HKDF per-object keys and HMAC-SHA-256 tag; bit-exact; not a standard cipher";
  return i;
}

std::unique_ptr<PixelCipher> makeChaosVpd(const CipherOptions& options) {
  return std::make_unique<chaos::ChaosVpdCipher>(resolveDevice(options.device, chaos::DecoyGenerator::cudaAvailable()));
}

}  // namespace

const BackendEntry& chaosVpdBackend() {
  static const BackendEntry entry{chaosVpdInfo(), makeChaosVpd};
  return entry;
}

}  // namespace pacsgw::codecs
