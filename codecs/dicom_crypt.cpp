// Dataset-level encryption and decryption: pixel data + associated data + key-reference block.
#include "codecs/dicom_crypt.h"

#include "codecs/aad.h"
#include "codecs/backend_key.h"
#include "codecs/backend_table.h"
#include "codecs/bound_attributes.h"
#include "codecs/exact_retrieval.h"
#include "codecs/key_reference.h"
#include "codecs/pixel_access.h"

#include <dcmtk/dcmdata/dcdeftag.h>

#include <openssl/crypto.h>

#include <algorithm>
#include <cstdio>
#include <exception>

namespace pacsgw::codecs {
namespace {

using namespace detail;

constexpr std::size_t kDataKeyBytes = 32;

std::string requiredUid(DcmItem& dataset, const DcmTagKey& key, const char* name) {
  OFString value;
  if (dataset.findAndGetOFStringArray(key, value, OFFalse).bad() || value.empty())
    throw CryptError(CryptErrorKind::MalformedObject, std::string(name) + " is missing");
  return value.c_str();
}

AadFields aadFor(DcmItem& dataset, const LocatedPixels& pixels, const KeyReference& ref,
                 std::vector<std::uint8_t> boundAttributes) {
  AadFields f;
  f.formatVersion = ref.formatVersion;
  if (ref.formatVersion >= 2) f.boundAttributes = std::move(boundAttributes);
  f.sopInstanceUid = requiredUid(dataset, DCM_SOPInstanceUID, "SOP Instance UID");
  f.sopClassUid = requiredUid(dataset, DCM_SOPClassUID, "SOP Class UID");
  f.originalTransferSyntax = ref.originalTransferSyntax;
  f.layout = pixels.buffer.layout;
  f.backendId = ref.record.backendId;
  f.backendVersion = ref.record.backendVersion;
  f.keyId = ref.keyId;
  f.keyScope = ref.keyScope;
  f.elementTags = pixels.elementTags;
  f.elementLengths = pixels.elementLengths;
  f.fragmentLengths = pixels.fragmentLengths;
  return f;
}

void requireDataKey(const SecretBytes& key, const std::string& keyId) {
  if (key.size() != kDataKeyBytes)
    throw CryptError(CryptErrorKind::UnknownKey, "data key " + keyId + " does not have 32 bytes");
}

// The key the backend works with. Format 3 binds it to the backend: HKDF subkey with the backend id.
// Formats 1 and 2 (objects written by earlier releases) used the data key itself and keep doing so.
SecretBytes backendKeyFor(const KeyReference& ref, const SecretBytes& dataKey) {
  if (ref.formatVersion < 3) return dataKey;
  try {
    return backendSubkey(dataKey, ref.record.backendId);
  } catch (const std::exception& e) {
    throw CryptError(CryptErrorKind::BackendFailure, e.what());
  }
}

}  // namespace

const char* toString(CryptErrorKind kind) {
  switch (kind) {
    case CryptErrorKind::NotEncrypted: return "NotEncrypted";
    case CryptErrorKind::AlreadyEncrypted: return "AlreadyEncrypted";
    case CryptErrorKind::NoPixelData: return "NoPixelData";
    case CryptErrorKind::MalformedObject: return "MalformedObject";
    case CryptErrorKind::MalformedKeyReference: return "MalformedKeyReference";
    case CryptErrorKind::UnknownBackend: return "UnknownBackend";
    case CryptErrorKind::UnknownKey: return "UnknownKey";
    case CryptErrorKind::KeyDestroyed: return "KeyDestroyed";
    case CryptErrorKind::TransferSyntaxMismatch: return "TransferSyntaxMismatch";
    case CryptErrorKind::UnsupportedLayout: return "UnsupportedLayout";
    case CryptErrorKind::AuthenticationFailed: return "AuthenticationFailed";
    case CryptErrorKind::BoundAttributesChanged: return "BoundAttributesChanged";
    case CryptErrorKind::KeyScopeMismatch: return "KeyScopeMismatch";
    case CryptErrorKind::BackendFailure: return "BackendFailure";
  }
  return "Unknown";
}

KeyReference encryptDataset(DcmDataset& dataset, E_TransferSyntax xfer, PixelCipher& cipher,
                            const SecretBytes& dataKey, const EncryptParams& params) {
  requireLittleEndianHost();
  if (hasKeyReference(dataset))
    throw CryptError(CryptErrorKind::AlreadyEncrypted, "the object already carries a PACSGW KEYREF 1 block");
  requireUsableTransferSyntax(xfer);

  KeyReference ref;
  if (!isUuid(params.keyId)) throw CryptError(CryptErrorKind::MalformedKeyReference, "key id is not a UUID");
  ref.keyId = params.keyId;
  ref.keyScope = normaliseKeyScope(params.keyScope);
  requireDataKey(dataKey, ref.keyId);
  ref.originalTransferSyntax = DcmXfer(xfer).getXferID();

  LocatedPixels pixels = locatePixelData(dataset, xfer);
  const BackendInfo& info = cipher.info();
  try {
    cipher.checkSupported(pixels.buffer.layout);
  } catch (const UnsupportedLayoutError& e) {
    throw CryptError(CryptErrorKind::UnsupportedLayout, e.what());
  }
  if (pixels.buffer.layout.encapsulated && !info.supportsEncapsulated)
    throw CryptError(CryptErrorKind::UnsupportedLayout, "backend " + info.id + " cannot protect encapsulated pixel data");
  if (pixels.buffer.layout.floatingPoint && !info.supportsFloat)
    throw CryptError(CryptErrorKind::UnsupportedLayout, "backend " + info.id + " cannot protect floating-point pixel data");

  ref.record.backendId = info.id;
  ref.record.backendVersion = info.version;
  ref.protectedElements = pixels.elementTags;
  ref.protectedLengths = pixels.elementLengths;
  ref.encryptedAt = currentUtcDateTime();
  if (params.formatVersion < 1 || params.formatVersion > kKeyRefFormatVersion)
    throw CryptError(CryptErrorKind::MalformedKeyReference, "key reference format version must be 1, 2 or 3");
  ref.formatVersion = params.formatVersion;
  std::vector<std::uint8_t> bound;
  if (ref.formatVersion >= 2) {
    bound = canonicalBoundAttributes(dataset);
    const auto digest = boundAttributesDigest(bound);
    ref.boundAttributesDigest.assign(digest.begin(), digest.end());
  }
  const std::vector<std::uint8_t> aad = buildAad(aadFor(dataset, pixels, ref, std::move(bound)));
  const SecretBytes backendKey = backendKeyFor(ref, dataKey);

  // A lossy backend's decrypt() gives its reconstruction, not these samples: keep them to restore on failure.
  std::vector<std::vector<std::uint8_t>> original;
  if (!info.lossless)
    for (const ByteRange& r : pixels.buffer.segments) original.emplace_back(r.data, r.data + r.size);
  struct Wipe {
    std::vector<std::vector<std::uint8_t>>& v;
    ~Wipe() {
      for (auto& s : v)
        if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
    }
  } wipeOriginal{original};

  CipherRecord record;
  std::vector<std::uint8_t> envelope;
  try {
    ProtectedPixels sealed = protectPixels(cipher, pixels.buffer, backendKey, aad,
                                           params.allowLossy ? Retrieval::Lossy : Retrieval::Exact);
    record = std::move(sealed.record);
    envelope = std::move(sealed.envelope);
  } catch (const UnsupportedLayoutError& e) {
    throw CryptError(CryptErrorKind::UnsupportedLayout, e.what());
  } catch (const std::exception& e) {  // CipherError, or a backend's own runtime failure
    throw CryptError(CryptErrorKind::BackendFailure, e.what());
  }
  if (record.backendId.empty()) record.backendId = info.id;
  if (record.backendVersion.empty()) record.backendVersion = info.version;

  // From here on the pixels are ciphertext: if the block cannot be written, decrypt them back so the
  // caller never holds ciphertext that nothing describes.
  try {
    if (record.backendId != info.id || record.backendVersion != info.version)
      throw CryptError(CryptErrorKind::BackendFailure, "backend " + info.id + " returned a record for another backend");
    ref.record = record;
    ref.exactEnvelope = std::move(envelope);
    writeKeyReference(dataset, ref);
  } catch (...) {
    try {
      if (info.lossless) {
        cipher.decrypt(pixels.buffer, backendKey, aad, record);
      } else {
        for (std::size_t i = 0; i < original.size(); ++i)
          std::copy(original[i].begin(), original[i].end(), pixels.buffer.segments[i].data);
      }
    } catch (...) {
      // Nothing left to restore with; the caller must discard the dataset, as documented.
    }
    throw;
  }
  return ref;
}

E_TransferSyntax decryptDataset(DcmDataset& dataset, E_TransferSyntax xfer, const KeyLookup& keys,
                                const CipherOptions& options) {
  if (!hasKeyReference(dataset))
    throw CryptError(CryptErrorKind::NotEncrypted, "the object carries no PACSGW KEYREF 1 block");
  const KeyReference ref = readKeyReference(dataset);
  if (findBackend(ref.record.backendId) == nullptr)
    throw CryptError(CryptErrorKind::UnknownBackend, "cipher backend '" + ref.record.backendId +
                                                         "' named by the key reference is not available in this build");
  std::unique_ptr<PixelCipher> cipher;
  try {
    cipher = makeCipher(ref.record.backendId, options);
  } catch (const std::exception& e) {
    throw CryptError(CryptErrorKind::BackendFailure, e.what());
  }
  return decryptDataset(dataset, xfer, keys, *cipher);
}

E_TransferSyntax decryptDataset(DcmDataset& dataset, E_TransferSyntax xfer, const KeyLookup& keys, PixelCipher& cipherRef) {
  requireLittleEndianHost();
  if (!hasKeyReference(dataset))
    throw CryptError(CryptErrorKind::NotEncrypted, "the object carries no PACSGW KEYREF 1 block");
  const KeyReference ref = readKeyReference(dataset);
  requireUsableTransferSyntax(xfer);
  PixelCipher* cipher = &cipherRef;
  if (cipher->info().id != ref.record.backendId)
    throw CryptError(CryptErrorKind::UnknownBackend, "the key reference names backend '" + ref.record.backendId +
                                                         "', not " + cipher->info().id);
  if (cipher->info().version != ref.record.backendVersion)
    throw CryptError(CryptErrorKind::UnknownBackend, "cipher backend '" + ref.record.backendId + "' version " +
                                                         ref.record.backendVersion + " is not supported (this build has " +
                                                         cipher->info().version + ")");

  // Native values survive re-encoding between native syntaxes; compressed fragments only in their own.
  const DcmXfer original(ref.originalTransferSyntax.c_str());
  const DcmXfer current(xfer);
  if (original.isEncapsulated() ? current.getXfer() != original.getXfer() : current.isEncapsulated())
    throw CryptError(CryptErrorKind::TransferSyntaxMismatch,
                     std::string("the object was encrypted in ") + original.getXferName() + " but is now encoded in " +
                         current.getXferName());

  LocatedPixels pixels = locatePixelData(dataset, xfer);
  if (pixels.elementTags != ref.protectedElements || pixels.elementLengths != ref.protectedLengths)
    throw CryptError(CryptErrorKind::MalformedObject,
                     "the pixel data elements or their lengths differ from those recorded at encryption");
  try {
    cipher->checkSupported(pixels.buffer.layout);
  } catch (const UnsupportedLayoutError& e) {
    throw CryptError(CryptErrorKind::UnsupportedLayout, e.what());
  }
  SecretBytes dataKey;
  try {
    dataKey = keys(ref.keyId);
  } catch (const CryptError&) {
    throw;
  } catch (const std::exception& e) {
    // Keystore messages never contain key material.
    throw CryptError(CryptErrorKind::UnknownKey, "data key " + ref.keyId + " is not available: " + e.what());
  }
  requireDataKey(dataKey, ref.keyId);

  std::vector<std::uint8_t> bound;
  if (ref.formatVersion >= 2) {
    // The digest only makes the refusal specific; the associated data below is what protects.
    bound = canonicalBoundAttributes(dataset);
    const auto digest = boundAttributesDigest(bound);
    if (CRYPTO_memcmp(digest.data(), ref.boundAttributesDigest.data(), digest.size()) != 0)
      throw CryptError(CryptErrorKind::BoundAttributesChanged,
                       "an attribute bound to the pixel data (study / series UID, geometry, rescale, LUT or "
                       "window values) differs from the one the object was encrypted with");
  }
  const std::vector<std::uint8_t> aad = buildAad(aadFor(dataset, pixels, ref, std::move(bound)));
  const SecretBytes backendKey = backendKeyFor(ref, dataKey);

  Retrieval retrieved = Retrieval::Exact;
  try {
    retrieved = recoverPixels(*cipher, pixels.buffer, backendKey, aad, ref.record, ref.exactEnvelope);
  } catch (const AuthenticationError& e) {
    throw CryptError(CryptErrorKind::AuthenticationFailed, e.what());
  } catch (const UnsupportedLayoutError& e) {
    throw CryptError(CryptErrorKind::UnsupportedLayout, e.what());
  } catch (const std::exception& e) {
    throw CryptError(CryptErrorKind::BackendFailure, e.what());
  }
  removeKeyReference(dataset);
  if (retrieved == Retrieval::Lossy) {
    std::uint64_t originalBytes = 0;
    for (const std::uint32_t n : ref.protectedLengths) originalBytes += n;
    const std::size_t carried = std::max<std::size_t>(ref.record.payload.size(), 1);
    const BackendInfo& info = cipher->info();
    markLossy(dataset, info.lossyMethod.empty() ? std::string("PACSGW") : info.lossyMethod,
              static_cast<double>(originalBytes) / static_cast<double>(carried));
  }
  return original.getXfer();
}

void markLossy(DcmItem& dataset, const std::string& method, double ratio) {
  // Earlier lossy steps keep their values; ours is appended (PS3.3 C.7.6.1.1.5).
  auto append = [&dataset](const DcmTagKey& key, const std::string& value) {
    OFString existing;
    std::string joined = value;
    if (dataset.findAndGetOFStringArray(key, existing, OFFalse).good() && !existing.empty())
      joined = std::string(existing.c_str()) + "\\" + value;
    if (dataset.putAndInsertString(key, joined.c_str()).bad())
      throw CryptError(CryptErrorKind::MalformedObject, "cannot write the lossy compression attributes");
  };
  char ratioText[32];
  std::snprintf(ratioText, sizeof ratioText, "%.2f", ratio);
  if (dataset.putAndInsertString(DCM_LossyImageCompression, "01").bad())
    throw CryptError(CryptErrorKind::MalformedObject, "cannot write Lossy Image Compression");
  append(DCM_LossyImageCompressionRatio, ratioText);
  append(DCM_LossyImageCompressionMethod, method);
}

}  // namespace pacsgw::codecs
