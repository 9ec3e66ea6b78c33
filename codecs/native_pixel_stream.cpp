// Streaming encryption of native Pixel Data (see native_pixel_stream.h). Mirrors encryptDataset for
// the aes-256-gcm backend step by step; tests compare both byte for byte after decryption.
#include "codecs/native_pixel_stream.h"

#include "codecs/aad.h"
#include "codecs/aes_gcm.h"
#include "codecs/backend_key.h"
#include "codecs/bound_attributes.h"
#include "codecs/key_reference.h"
#include "codecs/pixel_access.h"

#include <dcmtk/dcmdata/dcdeftag.h>

#include <openssl/rand.h>

#include <exception>

namespace pacsgw::codecs {
namespace {

using namespace detail;

}  // namespace

NativePixelDataSealer::NativePixelDataSealer(DcmItem& header, E_TransferSyntax xfer, std::uint32_t pixelDataLength,
                                             const SecretBytes& dataKey, const EncryptParams& params)
    : pixelDataLength_(pixelDataLength) {
  requireLittleEndianHost();
  if (hasKeyReference(header))
    throw CryptError(CryptErrorKind::AlreadyEncrypted, "the object already carries a PACSGW KEYREF 1 block");
  requireUsableTransferSyntax(xfer);
  if (!isUuid(params.keyId)) throw CryptError(CryptErrorKind::MalformedKeyReference, "key id is not a UUID");
  if (dataKey.size() != 32)
    throw CryptError(CryptErrorKind::UnknownKey, "data key " + params.keyId + " does not have 32 bytes");
  if (params.formatVersion != kKeyRefFormatVersion)
    throw CryptError(CryptErrorKind::MalformedKeyReference, "streamed objects are written in the current format only");

  const PixelLayout layout = readNativePixelDataLayout(header, xfer);
  requireNativePixelDataLength(layout, pixelDataLength);

  ref_.keyId = params.keyId;
  ref_.keyScope = normaliseKeyScope(params.keyScope);
  ref_.originalTransferSyntax = DcmXfer(xfer).getXferID();
  ref_.record.backendId = kAesGcmId;
  ref_.record.backendVersion = kAesGcmVersion;
  ref_.protectedElements = {kTagPixelData};
  ref_.protectedLengths = {pixelDataLength};
  ref_.encryptedAt = currentUtcDateTime();
  ref_.formatVersion = params.formatVersion;

  // The associated data exactly as encryptDataset builds it for one native Pixel Data element.
  std::vector<std::uint8_t> bound = canonicalBoundAttributes(header);
  const auto digest = boundAttributesDigest(bound);
  ref_.boundAttributesDigest.assign(digest.begin(), digest.end());
  AadFields fields = nativePixelDataAadFields(header, ref_, layout);
  fields.formatVersion = ref_.formatVersion;
  fields.boundAttributes = std::move(bound);
  const std::vector<std::uint8_t> aad = buildAad(fields);

  // As the backend does: a fresh random nonce per object, under the backend's subkey of the data key.
  ref_.record.nonce.resize(kAesGcmNonceBytes);
  if (RAND_bytes(ref_.record.nonce.data(), static_cast<int>(ref_.record.nonce.size())) != 1)
    throw CryptError(CryptErrorKind::BackendFailure, "aes-256-gcm: the random generator failed");
  try {
    const SecretBytes backendKey = backendSubkey(dataKey, ref_.record.backendId);
    stream_ = std::make_unique<AesGcmSealStream>(backendKey, ref_.record.nonce, aad);
  } catch (const std::exception& e) {
    throw CryptError(CryptErrorKind::BackendFailure, e.what());
  }
}

NativePixelDataSealer::~NativePixelDataSealer() = default;

void NativePixelDataSealer::seal(const std::uint8_t* plaintext, std::size_t size, std::uint8_t* ciphertext) {
  if (size > pixelDataLength_ - sealed_)
    throw CryptError(CryptErrorKind::MalformedObject, "more pixel data than Pixel Data's length announced");
  try {
    stream_->update(plaintext, size, ciphertext);
  } catch (const std::exception& e) {
    throw CryptError(CryptErrorKind::BackendFailure, e.what());
  }
  sealed_ += size;
}

KeyReference NativePixelDataSealer::finish(DcmItem& header) {
  if (sealed_ != pixelDataLength_)
    throw CryptError(CryptErrorKind::MalformedObject, "Pixel Data ended after " + std::to_string(sealed_) + " of " +
                                                          std::to_string(pixelDataLength_) + " bytes");
  try {
    ref_.record.tag = stream_->finish();
  } catch (const std::exception& e) {
    throw CryptError(CryptErrorKind::BackendFailure, e.what());
  }
  writeKeyReference(header, ref_);
  return ref_;
}

}  // namespace pacsgw::codecs
