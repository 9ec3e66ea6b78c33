#pragma once
// Exact retrieval for lossy backends. A neural backend decrypts to its model's reconstruction, not to the
// original samples. The codecs layer therefore carries, with every object a lossy backend encrypts, an
// "exact-retrieval envelope": the residual between the original samples and the reconstruction,
// zlib-compressed and sealed with AES-256-GCM under a key of its own. Authorised retrieval decrypts the
// backend's payload, reconstructs, adds the residual and checks the SHA-256 of the result: the exact
// original pixels or an error, never something in between. Only when the operator explicitly allows
// lossy retrieval (cipher.allow_lossy) is the envelope left out.
//
// Whether an envelope was written is bound into the backend's associated data, so stripping the
// envelope from an object (to downgrade it to lossy) is an authentication failure, not a lossy image.
// No DCMTK and no LibTorch here; the DICOM layer stores the envelope in (0077,xx0F).
#include "codecs/pixel_cipher.h"

#include <cstdint>
#include <vector>

namespace pacsgw::codecs {

enum class Retrieval { Exact, Lossy };

struct ProtectedPixels {
  CipherRecord record;
  std::vector<std::uint8_t> envelope;  // empty for lossless backends and for Retrieval::Lossy
};

// The associated data the backend itself sees: `aad` unchanged for lossless backends, `aad` followed by
// a retrieval marker ("pacsgw retrieval exact" / "pacsgw retrieval lossy") for lossy ones.
std::vector<std::uint8_t> backendAad(const BackendInfo& info, const std::vector<std::uint8_t>& aad, Retrieval retrieval);

// Encrypts `pixels` in place with `cipher` under `key` (the backend's subkey) and, for a lossy backend
// with Retrieval::Exact, seals the original samples into the envelope. Throws what the backend throws, or
// CipherError. `retrieval` is ignored for lossless backends.
ProtectedPixels protectPixels(PixelCipher& cipher, PixelBuffer& pixels, const SecretBytes& key,
                              const std::vector<std::uint8_t>& aad, Retrieval retrieval);

// Verifies and decrypts in place. With an envelope the result is the exact original (AuthenticationError
// if the envelope, the payload or anything bound was altered; CipherError, for a format 1 envelope, if
// this machine's reconstruction differs from the encrypting one's). Without one, a lossy backend's reconstruction:
// returns Retrieval::Lossy so the caller marks the object. A lossless backend always returns Exact and
// refuses an envelope (CipherError).
Retrieval recoverPixels(PixelCipher& cipher, PixelBuffer& pixels, const SecretBytes& key,
                        const std::vector<std::uint8_t>& aad, const CipherRecord& record,
                        const std::vector<std::uint8_t>& envelope);

// Envelope format (docs/conformance.md, section 4c), exposed for the tests:
//   format | pad (0 or 1) | nonce (12) | GCM tag (16) | ciphertext | pad zero byte if pad = 1
//   plaintext = SHA-256(original sample bytes) (32) | zlib(samples)
//   format 2 (written): samples = the original; format 1 (read only): samples = original - reconstruction
//   per sample modulo 2^bits allocated. 16-bit samples as a low-byte plane followed by a high-byte plane
//   (8 bits and others: bytes as they are). Key: deriveSubkey(backend key, "pacsgw exact-retrieval
//   envelope v1", backend id). GCM AAD: length-prefixed "pacsgw exact-retrieval envelope v1", aad, record
//   nonce, record tag, and for format 2 the format byte.
constexpr std::uint8_t kEnvelopeFormat = 2;
constexpr std::uint8_t kResidualEnvelopeFormat = 1;

struct OpenedEnvelope {
  std::uint8_t format = 0;
  SecretBytes plain;
};

std::vector<std::uint8_t> sealEnvelope(const std::vector<std::vector<std::uint8_t>>& original, const PixelLayout& layout,
                                       const SecretBytes& key, const std::vector<std::uint8_t>& aad,
                                       const CipherRecord& record);
// Format 1, as earlier releases wrote it; kept so that reading their objects stays tested.
std::vector<std::uint8_t> sealResidualEnvelope(const std::vector<std::vector<std::uint8_t>>& original,
                                               const PixelBuffer& reconstruction, const SecretBytes& key,
                                               const std::vector<std::uint8_t>& aad, const CipherRecord& record);
// Checks the envelope's tag and returns its plaintext (before touching any pixel).
OpenedEnvelope openEnvelope(const std::vector<std::uint8_t>& envelope, const SecretBytes& key,
                            const std::vector<std::uint8_t>& aad, const CipherRecord& record);
// Restores the original into `pixels` (format 2) or adds the residual to the reconstruction in `pixels`
// (format 1), then checks the SHA-256.
void applyEnvelope(PixelBuffer& pixels, const OpenedEnvelope& opened);

}  // namespace pacsgw::codecs
