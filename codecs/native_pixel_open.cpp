// Streaming decryption of native Pixel Data (see native_pixel_open.h). Mirrors decryptDataset for the
// aes-256-gcm backend step by step; tests compare both on the same objects.
#include "codecs/native_pixel_open.h"

#include "codecs/aad.h"
#include "codecs/aes_gcm.h"
#include "codecs/backend_key.h"
#include "codecs/bound_attributes.h"
#include "codecs/key_reference.h"
#include "codecs/pixel_access.h"

#include <dcmtk/dcmdata/dcdeftag.h>

#include <openssl/crypto.h>

#include <algorithm>
#include <exception>

namespace pacsgw::codecs {
namespace {

using namespace detail;

constexpr std::size_t kScratchBytes = std::size_t{1} << 20;

}  // namespace

std::unique_ptr<AesGcmOpenStream> VerifiedGcmMessage::stream() const {
  return std::make_unique<AesGcmOpenStream>(key, nonce, aad);
}

bool opensNativePixelDataStreaming(DcmItem& header, std::uint32_t pixelDataLength) {
  if (!hasKeyReference(header)) return false;
  try {
    const KeyReference ref = readKeyReference(header);
    return ref.record.backendId == kAesGcmId && ref.record.backendVersion == kAesGcmVersion &&
           ref.record.params.empty() && ref.exactEnvelope.empty() &&
           ref.protectedElements == std::vector<std::uint32_t>{kTagPixelData} &&
           ref.protectedLengths == std::vector<std::uint32_t>{pixelDataLength};
  } catch (const CryptError&) {
    return false;
  }
}

NativePixelDataOpener::NativePixelDataOpener(DcmItem& header, E_TransferSyntax xfer, std::uint32_t pixelDataLength,
                                             const KeyLookup& keys)
    : pixelDataLength_(pixelDataLength) {
  requireLittleEndianHost();
  if (!hasKeyReference(header))
    throw CryptError(CryptErrorKind::NotEncrypted, "the object carries no PACSGW KEYREF 1 block");
  ref_ = readKeyReference(header);
  requireUsableTransferSyntax(xfer);
  if (ref_.record.backendId != kAesGcmId)
    throw CryptError(CryptErrorKind::UnknownBackend, "the key reference names backend '" + ref_.record.backendId +
                                                         "', not " + kAesGcmId);
  if (ref_.record.backendVersion != kAesGcmVersion)
    throw CryptError(CryptErrorKind::UnknownBackend, "cipher backend '" + ref_.record.backendId + "' version " +
                                                         ref_.record.backendVersion + " is not supported");
  // Native values survive re-encoding between native syntaxes only.
  const DcmXfer original(ref_.originalTransferSyntax.c_str());
  if (original.isEncapsulated() || DcmXfer(xfer).isEncapsulated())
    throw CryptError(CryptErrorKind::TransferSyntaxMismatch,
                     std::string("the object was encrypted in ") + original.getXferName() + " but is now encoded in " +
                         DcmXfer(xfer).getXferName());
  const PixelLayout layout = readNativePixelDataLayout(header, xfer);
  requireNativePixelDataLength(layout, pixelDataLength);
  if (ref_.protectedElements != std::vector<std::uint32_t>{kTagPixelData} ||
      ref_.protectedLengths != std::vector<std::uint32_t>{pixelDataLength})
    throw CryptError(CryptErrorKind::MalformedObject,
                     "the pixel data elements or their lengths differ from those recorded at encryption");
  // This backend writes no parameters and no envelope; any are an alteration of the key reference.
  if (!ref_.record.params.empty() || !ref_.exactEnvelope.empty())
    throw CryptError(CryptErrorKind::AuthenticationFailed, "aes-256-gcm: unexpected backend parameters");

  SecretBytes dataKey;
  try {
    dataKey = keys(ref_.keyId);
  } catch (const CryptError&) {
    throw;
  } catch (const std::exception& e) {
    throw CryptError(CryptErrorKind::UnknownKey, "data key " + ref_.keyId + " is not available: " + e.what());
  }
  if (dataKey.size() != kAesGcmKeyBytes)
    throw CryptError(CryptErrorKind::UnknownKey, "data key " + ref_.keyId + " does not have 32 bytes");

  std::vector<std::uint8_t> bound;
  if (ref_.formatVersion >= 2) {
    bound = canonicalBoundAttributes(header);
    const auto digest = boundAttributesDigest(bound);
    if (ref_.boundAttributesDigest.size() != digest.size() ||
        CRYPTO_memcmp(digest.data(), ref_.boundAttributesDigest.data(), digest.size()) != 0)
      throw CryptError(CryptErrorKind::BoundAttributesChanged,
                       "an attribute bound to the pixel data (study / series UID, geometry, rescale, LUT or "
                       "window values) differs from the one the object was encrypted with");
  }
  AadFields fields = nativePixelDataAadFields(header, ref_, layout);
  fields.formatVersion = ref_.formatVersion;
  fields.boundAttributes = std::move(bound);
  message_.aad = buildAad(fields);
  message_.nonce = ref_.record.nonce;
  try {
    message_.key = ref_.formatVersion < 3 ? std::move(dataKey) : backendSubkey(dataKey, ref_.record.backendId);
    stream_ = message_.stream();
  } catch (const AuthenticationError& e) {
    throw CryptError(CryptErrorKind::AuthenticationFailed, e.what());
  } catch (const std::exception& e) {
    throw CryptError(CryptErrorKind::BackendFailure, e.what());
  }
}

NativePixelDataOpener::~NativePixelDataOpener() = default;

void NativePixelDataOpener::check(const std::uint8_t* ciphertext, std::size_t size) {
  if (size > pixelDataLength_ - checked_)
    throw CryptError(CryptErrorKind::MalformedObject, "more pixel data than Pixel Data's length announced");
  try {
    for (std::size_t done = 0; done < size;) {
      const std::size_t n = std::min(kScratchBytes, size - done);
      scratch_.resize(std::max(scratch_.size(), n));
      stream_->update(ciphertext + done, n, scratch_.data());
      done += n;
    }
  } catch (const std::exception& e) {
    throw CryptError(CryptErrorKind::BackendFailure, e.what());
  }
  checked_ += size;
}

VerifiedGcmMessage NativePixelDataOpener::verify(DcmItem& header) {
  std::fill(scratch_.begin(), scratch_.end(), std::uint8_t{0});  // unverified plaintext does not linger
  if (checked_ != pixelDataLength_)
    throw CryptError(CryptErrorKind::MalformedObject, "Pixel Data ended after " + std::to_string(checked_) + " of " +
                                                          std::to_string(pixelDataLength_) + " bytes");
  try {
    stream_->verify(ref_.record.tag);
  } catch (const AuthenticationError& e) {
    throw CryptError(CryptErrorKind::AuthenticationFailed, e.what());
  } catch (const std::exception& e) {
    throw CryptError(CryptErrorKind::BackendFailure, e.what());
  }
  removeKeyReference(header);
  return std::move(message_);
}

E_TransferSyntax NativePixelDataOpener::originalTransferSyntax() const {
  return DcmXfer(ref_.originalTransferSyntax.c_str()).getXfer();
}

}  // namespace pacsgw::codecs
