#pragma once
// Glue between the keystore and the pixel ciphers: one call to protect an instance on the way in,
// one to restore it on the way out. The service and the CLI both go through here.
#include "codecs/dicom_crypt.h"
#include "codecs/native_pixel_open.h"
#include "codecs/native_pixel_stream.h"
#include "gateway/audit/audit_trail.h"
#include "codecs/pixel_cipher.h"
#include "config/config.h"
#include "keystore/keystore.h"
#include "keystore/master_key_provider.h"
#include "keystore/pkcs11_provider.h"

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>

namespace pacsgw::gateway {

struct ProtectResult {
  bool encrypted = false;   // false: a non-image object, forwarded unchanged
  std::string keyId;
  std::string backendId;
  // The syntax the dataset is encoded in afterwards: the one it came in, or Explicit VR Little
  // Endian when a backend that cannot protect compressed data had it decoded first.
  E_TransferSyntax transferSyntax = EXS_Unknown;
};

class InstanceProtector {
 public:
  InstanceProtector(keystore::Keystore& keys, const config::CipherSection& cipher);

  // Encrypts the pixel data of `dataset` in place under the data key of its study (or series /
  // instance per key_scope). Objects without any pixel data and without an image pixel module are
  // left unchanged (result.encrypted == false). Throws codecs::CryptError / keystore::KeystoreError.
  ProtectResult protect(DcmDataset& dataset, E_TransferSyntax xfer);
  // Verifies and decrypts in place, removing the key-reference tags; returns the original
  // transfer syntax. Throws codecs::CryptError. The data key used is added to `releases` (one audit
  // record per key and retrieve), or, without a ledger, recorded as used for release at once. Every
  // key that is refused is recorded as denied.
  E_TransferSyntax restore(DcmDataset& dataset, E_TransferSyntax xfer, audit::KeyReleases* releases = nullptr);
  // The counterpart of restore() for a large native aes-256-gcm object whose Pixel Data value
  // (`pixelDataLength` bytes of ciphertext) is not in memory (gateway/large_object_retrieve.h): the
  // same key checks, audit records and errors. `checkPixelData` feeds the ciphertext to the opener;
  // then the tag is verified and the key-reference block removed from `dataset`. Returns the original
  // transfer syntax and the verified message to decrypt the value with. Throws codecs::CryptError.
  std::pair<E_TransferSyntax, codecs::VerifiedGcmMessage> restoreStreaming(
      DcmDataset& dataset, E_TransferSyntax xfer, std::uint32_t pixelDataLength,
      const std::function<void(codecs::NativePixelDataOpener&)>& checkPixelData, audit::KeyReleases* releases);

  // True when native Pixel Data can be encrypted as it arrives (gateway/large_object_store.h): the
  // aes-256-gcm backend, which treats pixel data as opaque bytes.
  bool sealsPixelDataStreaming() const;
  // The streaming counterpart of protect() for an object whose native Pixel Data (`pixelDataLength`
  // bytes) has not arrived yet: `header` holds the elements before it. Drops the Icon Image Sequence
  // and takes the data key of the object's scope as protect() does. Throws as protect() does.
  std::unique_ptr<codecs::NativePixelDataSealer> sealerFor(DcmDataset& header, E_TransferSyntax xfer,
                                                           std::uint32_t pixelDataLength);

  // True when compressed objects are decoded to native pixel data before encryption.
  bool decodesCompressed() const { return !cipher_->info().supportsEncapsulated; }

 private:
  // The data key lookup of restore(): refusals audited as denied, the key's scope checked against the
  // object; the key used is written to `usedKeyId` / `usedScopeUid`.
  codecs::KeyLookup releasingLookup(DcmDataset& dataset, std::string& usedKeyId, std::string& usedScopeUid);
  // The study's (series', instance's) data key, recording its creation in the audit trail.
  keystore::DataKey dataKeyFor(const std::string& scopeUid);
  // The object's Study, Series or SOP Instance UID, per the configured key scope.
  std::string scopeUidOf(DcmDataset& dataset) const;
  // The data key of the object's scope and the encryption parameters naming it; a shredded key refuses
  // the object (CryptError KeyDestroyed, audited as key denied).
  std::pair<keystore::DataKey, codecs::EncryptParams> keyAndParamsFor(const std::string& scopeUid);

  keystore::Keystore& keys_;
  keystore::KeyScope scope_;
  codecs::CipherOptions options_;
  bool allowLossy_ = false;
  std::unique_ptr<codecs::PixelCipher> cipher_;
  std::mutex keyCreation_;                  // first use of a scope UID: check, create, record
  std::unordered_set<std::string> knownScopes_;  // scope UIDs whose key is known to exist (bounded)
};

// Throws CryptError(KeyScopeMismatch) unless the object's Study / Series / SOP Instance UID (per the
// key's scope) is the one the data key was created for.
void requireKeyScopeMatches(DcmDataset& dataset, const keystore::DataKey& key);

// Loads the master key named by the config (file or environment).
SecretBytes loadMasterKey(const config::Config& config);
// The master key provider named by the config: file, environment, or a PKCS#11 token (the PIN is read,
// used to log in and wiped; a PIN environment variable is removed from the environment).
std::unique_ptr<keystore::MasterKeyProvider> masterKeyProvider(const config::Config& config);
// The token settings of keystore.master_key (provider: pkcs11), PIN included.
keystore::Pkcs11Settings pkcs11Settings(const config::Config& config);
// Where the keystore anchor lives: keystore.anchor_file, else beside the master key file, else beside
// the keystore.
std::string keystoreAnchorPath(const config::Config& config);
// Loads the master key and opens the keystore with its anchor (options.anchorPath is filled in).
std::unique_ptr<keystore::Keystore> openKeystore(const config::Config& config, keystore::OpenOptions options = {});

}  // namespace pacsgw::gateway
