// The exact-retrieval envelope of lossy backends: the original samples (format 2) or the residual to the
// reconstruction (format 1, read only), zlib, AES-256-GCM (see exact_retrieval.h).
#include "codecs/exact_retrieval.h"

#include "codecs/aes_gcm.h"
#include "codecs/backend_key.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <zlib.h>

#include <array>
#include <cstring>
#include <string>

namespace pacsgw::codecs {
namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr const char* kEnvelopeLabel = "pacsgw exact-retrieval envelope v1";
constexpr const char* kExactMarker = "pacsgw retrieval exact";
constexpr const char* kLossyMarker = "pacsgw retrieval lossy";
constexpr std::size_t kHeaderBytes = 2 + detail::kAesGcmNonceBytes + detail::kAesGcmTagBytes;
constexpr std::size_t kDigestBytes = 32;

void appendField(Bytes& out, const std::uint8_t* data, std::size_t size) {
  for (int shift = 0; shift < 64; shift += 8) out.push_back(static_cast<std::uint8_t>(std::uint64_t{size} >> shift));
  if (size > 0) out.insert(out.end(), data, data + size);
}

// Format 1 (earlier releases) did not bind its format byte; format 2 does, so the two cannot be swapped.
Bytes envelopeAad(const Bytes& aad, const CipherRecord& record, std::uint8_t format) {
  Bytes out;
  const std::string label = kEnvelopeLabel;
  appendField(out, reinterpret_cast<const std::uint8_t*>(label.data()), label.size());
  appendField(out, aad.data(), aad.size());
  appendField(out, record.nonce.data(), record.nonce.size());
  appendField(out, record.tag.data(), record.tag.size());
  if (format != kResidualEnvelopeFormat) appendField(out, &format, 1);
  return out;
}

SecretBytes envelopeKey(const SecretBytes& key, const CipherRecord& record) {
  return deriveSubkey(key, kEnvelopeLabel, record.backendId);
}

std::size_t wordBytes(const PixelLayout& layout) {
  return layout.bitsAllocated == 16 && !layout.floatingPoint && !layout.encapsulated ? 2 : 1;
}

std::size_t totalBytes(const PixelBuffer& p) { return p.totalBytes(); }

// Original minus reconstruction per sample (mod 2^bits); 16-bit words as two byte planes, which zlib
// compresses far better than interleaved bytes (the high plane of a small residual is 00 or FF).
SecretBytes residualOf(const std::vector<Bytes>& original, const PixelBuffer& recon) {
  SecretBytes out(totalBytes(recon));
  const std::size_t w = wordBytes(recon.layout);
  std::size_t at = 0;
  for (std::size_t s = 0; s < recon.segments.size(); ++s) {
    const ByteRange& r = recon.segments[s];
    const Bytes& o = original[s];
    if (w == 1) {
      for (std::size_t i = 0; i < r.size; ++i) out.data()[at + i] = static_cast<std::uint8_t>(o[i] - r.data[i]);
    } else {
      const std::size_t n = r.size / 2;
      for (std::size_t i = 0; i < n; ++i) {
        const auto ov = static_cast<std::uint16_t>(o[2 * i] | (o[2 * i + 1] << 8));
        const auto rv = static_cast<std::uint16_t>(r.data[2 * i] | (r.data[2 * i + 1] << 8));
        const auto d = static_cast<std::uint16_t>(ov - rv);
        out.data()[at + i] = static_cast<std::uint8_t>(d);
        out.data()[at + n + i] = static_cast<std::uint8_t>(d >> 8);
      }
    }
    at += r.size;
  }
  return out;
}

void addResidual(PixelBuffer& recon, const std::uint8_t* residual) {
  const std::size_t w = wordBytes(recon.layout);
  std::size_t at = 0;
  for (ByteRange& r : recon.segments) {
    if (w == 1) {
      for (std::size_t i = 0; i < r.size; ++i) r.data[i] = static_cast<std::uint8_t>(r.data[i] + residual[at + i]);
    } else {
      const std::size_t n = r.size / 2;
      for (std::size_t i = 0; i < n; ++i) {
        const auto rv = static_cast<std::uint16_t>(r.data[2 * i] | (r.data[2 * i + 1] << 8));
        const auto d = static_cast<std::uint16_t>(residual[at + i] | (residual[at + n + i] << 8));
        const auto v = static_cast<std::uint16_t>(rv + d);
        r.data[2 * i] = static_cast<std::uint8_t>(v);
        r.data[2 * i + 1] = static_cast<std::uint8_t>(v >> 8);
      }
    }
    at += r.size;
  }
}

std::array<std::uint8_t, kDigestBytes> digestOf(const PixelBuffer& p) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  std::array<std::uint8_t, kDigestBytes> out{};
  unsigned int len = 0;
  bool ok = ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1;
  for (const ByteRange& r : p.segments) ok = ok && (r.size == 0 || EVP_DigestUpdate(ctx, r.data, r.size) == 1);
  ok = ok && EVP_DigestFinal_ex(ctx, out.data(), &len) == 1 && len == out.size();
  EVP_MD_CTX_free(ctx);
  if (!ok) throw CipherError("exact-retrieval envelope: SHA-256 failed");
  return out;
}

PixelBuffer viewOf(std::vector<Bytes>& segments, const PixelLayout& layout) {
  PixelBuffer p;
  p.layout = layout;
  for (Bytes& s : segments) p.segments.push_back({s.data(), s.size()});
  return p;
}

void wipe(std::vector<Bytes>& segments) {
  for (Bytes& s : segments)
    if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
}

}  // namespace

std::vector<std::uint8_t> backendAad(const BackendInfo& info, const std::vector<std::uint8_t>& aad, Retrieval retrieval) {
  if (info.lossless) return aad;
  Bytes out = aad;
  const std::string marker = retrieval == Retrieval::Exact ? kExactMarker : kLossyMarker;
  appendField(out, reinterpret_cast<const std::uint8_t*>(marker.data()), marker.size());
  return out;
}

namespace {

void checkSameShape(const std::vector<Bytes>& original, const PixelBuffer& pixels) {
  if (original.size() != pixels.segments.size())
    throw CipherError("exact-retrieval envelope: segment count differs from the pixel data");
  for (std::size_t s = 0; s < original.size(); ++s)
    if (original[s].size() != pixels.segments[s].size)
      throw CipherError("exact-retrieval envelope: segment length differs from the pixel data");
}

// digest | zlib(planes), sealed; `planes` is the original (format 2) or the residual (format 1).
Bytes sealPlanes(std::uint8_t format, const SecretBytes& planes, const std::vector<Bytes>& original,
                 const PixelLayout& layout, const SecretBytes& key, const Bytes& aad, const CipherRecord& record) {
  uLongf bound = compressBound(static_cast<uLong>(planes.size()));
  SecretBytes plain(kDigestBytes + bound);
  std::vector<Bytes> originalCopy = original;  // digest over the original, through the same view code
  const auto digest = digestOf(viewOf(originalCopy, layout));
  wipe(originalCopy);
  std::memcpy(plain.data(), digest.data(), kDigestBytes);
  if (compress2(plain.data() + kDigestBytes, &bound, planes.data(), static_cast<uLong>(planes.size()), 6) != Z_OK)
    throw CipherError("exact-retrieval envelope: compression failed");
  const std::size_t plainSize = kDigestBytes + bound;

  Bytes nonce(detail::kAesGcmNonceBytes);
  if (RAND_bytes(nonce.data(), static_cast<int>(nonce.size())) != 1)
    throw CipherError("exact-retrieval envelope: the random generator failed");
  const std::uint8_t pad = plainSize % 2;  // DICOM values have even lengths
  Bytes out(kHeaderBytes + plainSize + pad, 0);
  out[0] = format;
  out[1] = pad;
  std::memcpy(out.data() + 2, nonce.data(), nonce.size());
  std::memcpy(out.data() + kHeaderBytes, plain.data(), plainSize);
  PixelBuffer body;
  body.segments.push_back({out.data() + kHeaderBytes, plainSize});
  const Bytes tag = detail::aesGcmSeal(body, envelopeKey(key, record), nonce, envelopeAad(aad, record, format));
  std::memcpy(out.data() + 2 + nonce.size(), tag.data(), tag.size());
  return out;
}

}  // namespace

std::vector<std::uint8_t> sealEnvelope(const std::vector<std::vector<std::uint8_t>>& original, const PixelLayout& layout,
                                       const SecretBytes& key, const std::vector<std::uint8_t>& aad,
                                       const CipherRecord& record) {
  // The original as a "residual" against all-zero samples: the same byte planes, the same zlib.
  std::vector<Bytes> zeros;
  for (const Bytes& segment : original) zeros.emplace_back(segment.size(), 0);
  const PixelBuffer zero = viewOf(zeros, layout);
  const SecretBytes planes = residualOf(original, zero);
  return sealPlanes(kEnvelopeFormat, planes, original, layout, key, aad, record);
}

std::vector<std::uint8_t> sealResidualEnvelope(const std::vector<std::vector<std::uint8_t>>& original,
                                               const PixelBuffer& reconstruction, const SecretBytes& key,
                                               const std::vector<std::uint8_t>& aad, const CipherRecord& record) {
  checkSameShape(original, reconstruction);
  const SecretBytes residual = residualOf(original, reconstruction);
  return sealPlanes(kResidualEnvelopeFormat, residual, original, reconstruction.layout, key, aad, record);
}

OpenedEnvelope openEnvelope(const std::vector<std::uint8_t>& envelope, const SecretBytes& key,
                            const std::vector<std::uint8_t>& aad, const CipherRecord& record) {
  if (envelope.size() < kHeaderBytes + kDigestBytes + 1 ||
      (envelope[0] != kEnvelopeFormat && envelope[0] != kResidualEnvelopeFormat) || envelope[1] > 1 ||
      (envelope[1] == 1 && envelope.back() != 0))
    throw AuthenticationError("exact-retrieval envelope: malformed or altered");
  const std::uint8_t format = envelope[0];
  const std::size_t plainSize = envelope.size() - kHeaderBytes - envelope[1];
  const Bytes nonce(envelope.begin() + 2, envelope.begin() + 2 + detail::kAesGcmNonceBytes);
  const Bytes tag(envelope.begin() + 2 + detail::kAesGcmNonceBytes, envelope.begin() + kHeaderBytes);
  OpenedEnvelope opened{format, SecretBytes(envelope.data() + kHeaderBytes, plainSize)};
  PixelBuffer body;
  body.segments.push_back({opened.plain.data(), opened.plain.size()});
  detail::aesGcmOpen(body, envelopeKey(key, record), nonce, envelopeAad(aad, record, format), tag);  // AuthenticationError
  return opened;
}

void applyEnvelope(PixelBuffer& pixels, const OpenedEnvelope& opened) {
  if (opened.plain.size() < kDigestBytes) throw CipherError("exact-retrieval envelope: too short");
  const std::size_t n = totalBytes(pixels);
  SecretBytes planes(n);
  uLongf size = static_cast<uLongf>(n);
  const int rc = uncompress(planes.data(), &size, opened.plain.data() + kDigestBytes,
                            static_cast<uLong>(opened.plain.size() - kDigestBytes));
  if (rc != Z_OK || size != n)
    throw CipherError("exact-retrieval envelope: its samples do not match the pixel data's size");
  if (opened.format == kEnvelopeFormat) {  // the original itself: independent of the model's output
    for (ByteRange& r : pixels.segments)
      if (r.size > 0) std::memset(r.data, 0, r.size);
  }
  addResidual(pixels, planes.data());
  const auto digest = digestOf(pixels);
  if (CRYPTO_memcmp(digest.data(), opened.plain.data(), kDigestBytes) != 0)
    throw CipherError(
        "exact-retrieval envelope: the restored pixels differ from the original (format 1 envelope: this "
        "machine's model output differs from the encrypting machine's)");
}

ProtectedPixels protectPixels(PixelCipher& cipher, PixelBuffer& pixels, const SecretBytes& key,
                              const std::vector<std::uint8_t>& aad, Retrieval retrieval) {
  const BackendInfo& info = cipher.info();
  ProtectedPixels out;
  if (info.lossless) {
    out.record = cipher.encrypt(pixels, key, aad);
    return out;
  }
  std::vector<Bytes> original;
  if (retrieval == Retrieval::Exact)
    for (const ByteRange& r : pixels.segments) original.emplace_back(r.data, r.data + r.size);
  try {
    const PixelLayout layout = pixels.layout;
    out.record = cipher.encrypt(pixels, key, backendAad(info, aad, retrieval));
    if (retrieval == Retrieval::Exact) out.envelope = sealEnvelope(original, layout, key, aad, out.record);
  } catch (...) {
    wipe(original);
    throw;
  }
  wipe(original);
  return out;
}

Retrieval recoverPixels(PixelCipher& cipher, PixelBuffer& pixels, const SecretBytes& key,
                        const std::vector<std::uint8_t>& aad, const CipherRecord& record,
                        const std::vector<std::uint8_t>& envelope) {
  const BackendInfo& info = cipher.info();
  if (info.lossless) {
    if (!envelope.empty()) throw CipherError("backend " + info.id + " is lossless: an exact-retrieval envelope is unexpected");
    cipher.decrypt(pixels, key, aad, record);
    return Retrieval::Exact;
  }
  const Retrieval mode = envelope.empty() ? Retrieval::Lossy : Retrieval::Exact;
  OpenedEnvelope opened;
  if (mode == Retrieval::Exact) opened = openEnvelope(envelope, key, aad, record);  // verified before any pixel
  // The backend's own decryption runs even when the envelope carries the original: it authenticates
  // the payload and the cipher image, so an altered object is refused rather than silently replaced.
  cipher.decrypt(pixels, key, backendAad(info, aad, mode), record);
  if (mode == Retrieval::Exact) applyEnvelope(pixels, opened);
  return mode;
}

}  // namespace pacsgw::codecs
