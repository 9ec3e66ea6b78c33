#pragma once
// Private to codecs/: the AES-256-GCM backend and its primitive, exposed for the registry and for
// known-answer tests. Production code reaches the backend only through makeCipher("aes-256-gcm").
#include "codecs/backend_table.h"
#include "codecs/pixel_cipher.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace pacsgw::codecs {
// Its entry in the backend table (codecs/backend_table.h).
const BackendEntry& aesGcmBackend();
}  // namespace pacsgw::codecs

namespace pacsgw::codecs::detail {

constexpr const char* kAesGcmId = "aes-256-gcm";
constexpr const char* kAesGcmVersion = "1";
constexpr std::size_t kAesGcmKeyBytes = 32;
constexpr std::size_t kAesGcmNonceBytes = 12;
constexpr std::size_t kAesGcmTagBytes = 16;


// Encrypts all segments of `pixels` in place, in order, as one GCM message under `nonce` and returns
// the 16-byte tag. The caller owns nonce uniqueness: only the backend (fresh random nonce per call)
// and known-answer tests call this directly.
std::vector<std::uint8_t> aesGcmSeal(PixelBuffer& pixels, const SecretBytes& key,
                                     const std::vector<std::uint8_t>& nonce,
                                     const std::vector<std::uint8_t>& aad);

// Verifies and decrypts in place. On AuthenticationError the segments hold the ciphertext again, so
// unverified plaintext never stays in memory that a caller might still use.
void aesGcmOpen(PixelBuffer& pixels, const SecretBytes& key, const std::vector<std::uint8_t>& nonce,
                const std::vector<std::uint8_t>& aad, const std::vector<std::uint8_t>& tag);

// One GCM message encrypted piece by piece, for pixel data that arrives (and leaves) in pieces and is
// never whole in memory. The result is the same as aesGcmSeal over the concatenated pieces.
class AesGcmSealStream {
 public:
  // Throws CipherError on a wrong key or nonce size or when OpenSSL fails.
  AesGcmSealStream(const SecretBytes& key, const std::vector<std::uint8_t>& nonce,
                   const std::vector<std::uint8_t>& aad);
  ~AesGcmSealStream();
  AesGcmSealStream(const AesGcmSealStream&) = delete;
  AesGcmSealStream& operator=(const AesGcmSealStream&) = delete;

  // Encrypts `size` bytes from `plaintext` into `ciphertext` (the same size; may be the same memory).
  void update(const std::uint8_t* plaintext, std::size_t size, std::uint8_t* ciphertext);
  // Ends the message and returns its 16-byte tag; update() may not be called afterwards.
  std::vector<std::uint8_t> finish();

 private:
  struct Context;
  std::unique_ptr<Context> context_;
  std::uint64_t bytes_ = 0;
  bool finished_ = false;
};

// One GCM message decrypted piece by piece (large pixel data kept as ciphertext in a file). Used twice:
// a first pass that checks the tag and throws the plaintext away, then, after the tag verified, a
// second pass over the same ciphertext that hands plaintext out. update() alone never authenticates:
// a caller must not release its output before verify() of an earlier pass succeeded.
class AesGcmOpenStream {
 public:
  // Throws CipherError on a wrong key size or when OpenSSL fails; AuthenticationError on a nonce that
  // cannot come from this backend.
  AesGcmOpenStream(const SecretBytes& key, const std::vector<std::uint8_t>& nonce,
                   const std::vector<std::uint8_t>& aad);
  ~AesGcmOpenStream();
  AesGcmOpenStream(const AesGcmOpenStream&) = delete;
  AesGcmOpenStream& operator=(const AesGcmOpenStream&) = delete;

  // Decrypts `size` bytes from `ciphertext` into `plaintext` (may be the same memory).
  void update(const std::uint8_t* ciphertext, std::size_t size, std::uint8_t* plaintext);
  // Ends the message and compares its tag with `tag` in constant time; AuthenticationError if they differ.
  void verify(const std::vector<std::uint8_t>& tag);

 private:
  struct Context;
  std::unique_ptr<Context> context_;
  std::uint64_t bytes_ = 0;
  bool finished_ = false;
};

}  // namespace pacsgw::codecs::detail
