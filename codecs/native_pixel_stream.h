#pragma once
// Encrypting native Pixel Data that is never whole in memory: the value arrives in pieces (a large
// multi-frame object read from the network) and leaves as ciphertext piece by piece. The result is what
// encryptDataset produces for the same object with the aes-256-gcm backend: the same associated data,
// the same key-reference block, one GCM message over the whole value. Objects encrypted this way are
// decrypted by decryptDataset unchanged.
#include "codecs/dicom_crypt.h"

#include <cstddef>
#include <cstdint>
#include <memory>

namespace pacsgw::codecs {

namespace detail {
class AesGcmSealStream;
}

class NativePixelDataSealer {
 public:
  // `header` holds the object's top-level elements that precede Pixel Data (7FE0,0010), whose value
  // will have `pixelDataLength` bytes in `xfer` (a native transfer syntax). Checks the object as
  // encryptDataset does (no key-reference block yet, a pixel module the length satisfies, SOP UIDs).
  // The associated data is computed here: the attributes it binds must not change before finish().
  // Throws CryptError.
  NativePixelDataSealer(DcmItem& header, E_TransferSyntax xfer, std::uint32_t pixelDataLength,
                        const SecretBytes& dataKey, const EncryptParams& params);
  ~NativePixelDataSealer();
  NativePixelDataSealer(const NativePixelDataSealer&) = delete;
  NativePixelDataSealer& operator=(const NativePixelDataSealer&) = delete;

  // The next `size` bytes of the value, in order; `ciphertext` receives as many (may alias `plaintext`).
  void seal(const std::uint8_t* plaintext, std::size_t size, std::uint8_t* ciphertext);
  std::uint64_t sealed() const { return sealed_; }
  // After exactly pixelDataLength bytes: writes the key-reference block into `header` (the item the
  // constructor was given, or the data set that now holds its elements). Throws CryptError.
  KeyReference finish(DcmItem& header);

 private:
  KeyReference ref_;
  std::uint32_t pixelDataLength_ = 0;
  std::uint64_t sealed_ = 0;
  std::unique_ptr<detail::AesGcmSealStream> stream_;
};

}  // namespace pacsgw::codecs
