#pragma once
// Protecting a DICOM dataset: find its pixel data (native or encapsulated, all frames, also Float /
// Double Float Pixel Data), encrypt it with a PixelCipher, and write / read the key-reference tags.
#include "codecs/pixel_cipher.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include <functional>
#include <string>
#include <vector>

namespace pacsgw::codecs {

// Private block holding the key-reference attributes (documented in docs/conformance.md).
constexpr std::uint16_t kKeyRefGroup = 0x0077;
constexpr const char* kKeyRefCreator = "PACSGW KEYREF 1";

// Registers the key-reference attributes in DCMTK's data dictionary so implicit-VR objects parse with
// the right VRs. Idempotent and thread-safe; call once at start-up (the CLI and serve do).
void registerKeyReferenceDictionary();

struct KeyReference {
  CipherRecord record;
  std::string keyId;                     // UUID of the data key in the keystore
  std::string keyScope;                  // STUDY | SERIES | INSTANCE
  std::string originalTransferSyntax;    // UID the object was encrypted in
  std::vector<std::uint32_t> protectedElements;  // tags as 0xGGGGEEEE, e.g. 0x7FE00010
  std::vector<std::uint32_t> protectedLengths;   // bytes protected per element
  std::string encryptedAt;               // DICOM DT, UTC
  // 1: associated data without bound attributes; 2: with them; 3: as 2, and the backend encrypts under
  // its own subkey of the data key (backendSubkey) instead of the data key itself.
  int formatVersion = 3;
  std::vector<std::uint8_t> boundAttributesDigest;  // formats 2 and 3: SHA-256 of the bound attributes
  // Lossy backends: the exact-retrieval envelope (codecs/exact_retrieval.h), (0077,xx0F); empty when the
  // object was encrypted with allowLossy. The backend payload is record.payload, (0077,xx0E).
  std::vector<std::uint8_t> exactEnvelope;
};

enum class CryptErrorKind {
  NotEncrypted,           // no key-reference block
  AlreadyEncrypted,       // encrypt called on an object that already carries one
  NoPixelData,
  MalformedObject,        // pixel module inconsistent (lengths vs rows/columns/frames, ...)
  MalformedKeyReference,  // missing field, bad length, bad value
  UnknownBackend,
  UnknownKey,
  KeyDestroyed,           // the data key was destroyed on purpose (crypto-shredding): never decryptable again
  TransferSyntaxMismatch, // encapsulated ciphertext re-encoded into another transfer syntax
  UnsupportedLayout,
  AuthenticationFailed,
  BoundAttributesChanged, // format 2: an attribute bound to the pixels (study, geometry, rescale, ...) changed
  KeyScopeMismatch,       // the data key belongs to another study / series / instance than the object
  BackendFailure,         // the cipher backend failed otherwise (internal error, device, rejected record)
};
const char* toString(CryptErrorKind kind);

class CryptError : public std::runtime_error {
 public:
  CryptError(CryptErrorKind kind, const std::string& message)
      : std::runtime_error(message), kind_(kind) {}
  CryptErrorKind kind() const { return kind_; }

 private:
  CryptErrorKind kind_;
};

bool hasKeyReference(DcmItem& dataset);
KeyReference readKeyReference(DcmItem& dataset);  // validates every field; throws CryptError
void writeKeyReference(DcmItem& dataset, const KeyReference& ref);
void removeKeyReference(DcmItem& dataset);

// Reads the pixel description (Rows, Columns, Bits*, Pixel Representation, ...) of the dataset.
PixelLayout readPixelLayout(DcmItem& dataset, E_TransferSyntax xfer);

struct EncryptParams {
  std::string keyId;
  std::string keyScope;  // STUDY | SERIES | INSTANCE
  int formatVersion = 3;  // 1 or 2 only to produce objects as older releases did (tests)
  // Lossy backends only: omit the exact-retrieval envelope (cipher.allow_lossy). Retrieval then returns
  // the backend's reconstruction, marked Lossy Image Compression = 01.
  bool allowLossy = false;
};

// Encrypts every pixel data element in place and writes the key-reference block. `xfer` is the
// transfer syntax the dataset is encoded in (as received). Throws CryptError.
KeyReference encryptDataset(DcmDataset& dataset, E_TransferSyntax xfer, PixelCipher& cipher,
                            const SecretBytes& dataKey, const EncryptParams& params);

using KeyLookup = std::function<SecretBytes(const std::string& keyId)>;  // throw CryptError(UnknownKey)

// Verifies, decrypts in place and removes the key-reference block. Returns the transfer syntax the
// object was originally encoded in. Throws CryptError; on error the dataset must be discarded.
E_TransferSyntax decryptDataset(DcmDataset& dataset, E_TransferSyntax xfer, const KeyLookup& keys,
                                const CipherOptions& options = {});
// The same with a cipher the caller already holds (a neural backend with its model loaded); it must be
// the backend the key reference names, else CryptError(UnknownBackend).
E_TransferSyntax decryptDataset(DcmDataset& dataset, E_TransferSyntax xfer, const KeyLookup& keys, PixelCipher& cipher);

// Written on an object whose lossy backend's reconstruction was returned without an envelope:
// Lossy Image Compression (0028,2110) = 01, Method (0028,2114) and Ratio (0028,2112) appended.
void markLossy(DcmItem& dataset, const std::string& method, double ratio);

}  // namespace pacsgw::codecs
