#pragma once
// Decrypting native Pixel Data that is never whole in memory: an aes-256-gcm object retrieved from the
// PACS whose Pixel Data value is kept (as ciphertext) in a file. The checks are decryptDataset's for
// such an object (key reference, transfer syntax, lengths, data key, bound attributes, associated
// data); the value is then read twice: a first pass computes the GCM tag and throws the plaintext away,
// and only once the tag verified may a second pass (VerifiedGcmMessage) hand plaintext out.
#include "codecs/dicom_crypt.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace pacsgw::codecs {

namespace detail {
class AesGcmOpenStream;
}

// What the second pass needs: the backend key, nonce and associated data of a message whose tag
// verified. Each stream() decrypts the message from its first byte.
struct VerifiedGcmMessage {
  SecretBytes key;
  std::vector<std::uint8_t> nonce;
  std::vector<std::uint8_t> aad;
  std::unique_ptr<detail::AesGcmOpenStream> stream() const;
};

// True when `header` (the elements before Pixel Data) carries a key-reference block that this class
// can open: aes-256-gcm, Pixel Data as the only protected element, with `pixelDataLength` bytes.
// Anything else (another backend, a malformed block) is for decryptDataset and its precise errors.
bool opensNativePixelDataStreaming(DcmItem& header, std::uint32_t pixelDataLength);

class NativePixelDataOpener {
 public:
  // `header` holds the object's top-level elements before Pixel Data, with its key-reference block,
  // in `xfer` (a native transfer syntax). Looks the data key up with `keys`. Throws CryptError.
  NativePixelDataOpener(DcmItem& header, E_TransferSyntax xfer, std::uint32_t pixelDataLength, const KeyLookup& keys);
  ~NativePixelDataOpener();
  NativePixelDataOpener(const NativePixelDataOpener&) = delete;
  NativePixelDataOpener& operator=(const NativePixelDataOpener&) = delete;

  // First pass: the next `size` bytes of the ciphertext, in order; their plaintext is discarded.
  void check(const std::uint8_t* ciphertext, std::size_t size);
  std::uint64_t checked() const { return checked_; }
  // After exactly pixelDataLength bytes: compares the tag (CryptError AuthenticationFailed), then
  // removes the key-reference block from `header` and returns the message for the second pass.
  VerifiedGcmMessage verify(DcmItem& header);
  // The transfer syntax the object was encrypted in (a native one, like the current).
  E_TransferSyntax originalTransferSyntax() const;
  const KeyReference& keyReference() const { return ref_; }

 private:
  KeyReference ref_;
  std::uint32_t pixelDataLength_ = 0;
  std::uint64_t checked_ = 0;
  VerifiedGcmMessage message_;
  std::unique_ptr<detail::AesGcmOpenStream> stream_;
  std::vector<std::uint8_t> scratch_;
};

}  // namespace pacsgw::codecs
