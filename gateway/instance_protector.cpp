#include "gateway/instance_protector.h"

#include "codecs/decoded_size.h"

#include "gateway/audit/audit_trail.h"
#include "gateway/process_hygiene.h"

#include "gateway/metrics/registry.h"
#include "gateway/net_util.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <spdlog/spdlog.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>

#include <unistd.h>

#include <cctype>
#include <chrono>
#include <filesystem>
#include <mutex>

namespace pacsgw::gateway {

namespace {

std::string requiredUid(DcmDataset& dataset, const DcmTagKey& tag, const char* name) {
  OFString value;
  if (dataset.findAndGetOFString(tag, value).bad() || value.empty()) {
    throw codecs::CryptError(codecs::CryptErrorKind::MalformedObject, std::string("missing ") + name);
  }
  return value.c_str();
}

bool hasAnyPixelData(DcmDataset& dataset) {
  return dataset.tagExists(DCM_PixelData) || dataset.tagExists(DCM_FloatPixelData) ||
         dataset.tagExists(DCM_DoubleFloatPixelData);
}

// A backend that needs pixel values (chaos-vpd) cannot work on compressed fragments: decode them
// with DCMTK's own codecs (RLE, JPEG, JPEG-LS). Pixel values are kept exactly; the compressed
// bit stream is not, so the PACS and every later retrieval see native pixel data.
// Decoding allocates what the object claims: capped (codecs/decoded_size.h).

E_TransferSyntax decodeToNative(DcmDataset& dataset, E_TransferSyntax xfer, const std::string& backend) {
  const unsigned long long decoded = codecs::decodedPixelBytes(dataset);
  if (decoded == 0 || decoded > codecs::kMaxDecodedPixelBytes) {
    throw codecs::CryptError(codecs::CryptErrorKind::UnsupportedLayout,
                             "compressed object would decode to " + std::to_string(decoded) +
                                 " bytes (limit " + std::to_string(codecs::kMaxDecodedPixelBytes) + ")");
  }
  static std::once_flag registered;
  std::call_once(registered, [] {
    DcmRLEDecoderRegistration::registerCodecs();
    DJDecoderRegistration::registerCodecs();
    DJLSDecoderRegistration::registerCodecs();
  });
  const E_TransferSyntax native = EXS_LittleEndianExplicit;
  if (dataset.chooseRepresentation(native, nullptr).bad() || !dataset.canWriteXfer(native, xfer)) {
    throw codecs::CryptError(codecs::CryptErrorKind::UnsupportedLayout,
                             "backend " + backend + " cannot protect compressed pixel data, and " +
                                 DcmXfer(xfer).getXferName() + " cannot be decoded by the gateway");
  }
  dataset.removeAllButCurrentRepresentations();
  return native;
}

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

void requireKeyScopeMatches(DcmDataset& dataset, const keystore::DataKey& key) {
  // A key belongs to exactly one study / series / instance: an object that names another one was
  // relabelled (e.g. moved into another patient's study) after it was encrypted.
  const DcmTagKey tag = key.scope == keystore::KeyScope::Study    ? DCM_StudyInstanceUID
                        : key.scope == keystore::KeyScope::Series ? DCM_SeriesInstanceUID
                                                                  : DCM_SOPInstanceUID;
  OFString uid;
  dataset.findAndGetOFString(tag, uid);
  if (uid.c_str() != key.scopeUid) {
    throw codecs::CryptError(codecs::CryptErrorKind::KeyScopeMismatch,
                             std::string("data key ") + key.id + " belongs to another " + keystore::toString(key.scope) +
                                 " than the one the object names");
  }
  // The key reference names the kind of key it was encrypted under: a key of another kind was swapped in.
  if (codecs::hasKeyReference(dataset)) {
    std::string expected = keystore::toString(key.scope);
    for (char& c : expected) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    const std::string named = codecs::readKeyReference(dataset).keyScope;
    if (named != expected) {
      throw codecs::CryptError(codecs::CryptErrorKind::KeyScopeMismatch,
                               "the key reference names a " + printable(named) + " key, but data key " + key.id +
                                   " is a " + expected + " key");
    }
  }
}

InstanceProtector::InstanceProtector(keystore::Keystore& keys, const config::CipherSection& cipher)
    : keys_(keys), scope_(keystore::keyScopeFromString(cipher.keyScope)) {
  options_.device = cipher.device;
  options_.model = cipher.model;
  allowLossy_ = cipher.allowLossy;
  cipher_ = codecs::makeCipher(cipher.backend, options_);
}

ProtectResult InstanceProtector::protect(DcmDataset& dataset, E_TransferSyntax xfer) {
  ProtectResult result;
  result.transferSyntax = xfer;
  // A thumbnail is a downscaled copy of the patient image: the PACS must not get it in the clear.
  // It is dropped (wherever it is nested), not encrypted; viewers regenerate thumbnails.
  if (!codecs::hasKeyReference(dataset)) dataset.findAndDeleteElement(DCM_IconImageSequence, OFTrue, OFTrue);
  if (!hasAnyPixelData(dataset)) {
    // Structured reports, presentation states, key objects: nothing to encrypt. An image pixel
    // module without pixel data is malformed and must not pass as "nothing to do".
    if (dataset.tagExists(DCM_Rows) || dataset.tagExists(DCM_Columns)) {
      throw codecs::CryptError(codecs::CryptErrorKind::NoPixelData,
                               "object has an image pixel module but no pixel data");
    }
    return result;
  }
  const std::string scopeUid = scopeUidOf(dataset);
  if (DcmXfer(xfer).isEncapsulated() && decodesCompressed() && dataset.tagExists(DCM_PixelData)) {
    xfer = decodeToNative(dataset, xfer, cipher_->info().id);
  }
  result.transferSyntax = xfer;
  const auto [key, params] = keyAndParamsFor(scopeUid);
  const auto started = std::chrono::steady_clock::now();
  codecs::KeyReference ref = codecs::encryptDataset(dataset, xfer, *cipher_, key.key, params);
  metrics::observe("pacsgw_encrypt_seconds", {{"backend", cipher_->info().id}}, secondsSince(started));
  result.encrypted = true;
  result.keyId = ref.keyId;
  result.backendId = ref.record.backendId;
  return result;
}

bool InstanceProtector::sealsPixelDataStreaming() const { return cipher_->info().id == "aes-256-gcm"; }

std::unique_ptr<codecs::NativePixelDataSealer> InstanceProtector::sealerFor(DcmDataset& header, E_TransferSyntax xfer,
                                                                            std::uint32_t pixelDataLength) {
  if (!sealsPixelDataStreaming())
    throw codecs::CryptError(codecs::CryptErrorKind::UnsupportedLayout,
                             "backend " + cipher_->info().id + " cannot encrypt pixel data as it arrives");
  if (!codecs::hasKeyReference(header)) header.findAndDeleteElement(DCM_IconImageSequence, OFTrue, OFTrue);
  const std::string scopeUid = scopeUidOf(header);
  if (codecs::hasKeyReference(header))
    throw codecs::CryptError(codecs::CryptErrorKind::AlreadyEncrypted, "the object already carries a PACSGW KEYREF 1 block");
  const auto [key, params] = keyAndParamsFor(scopeUid);
  return std::make_unique<codecs::NativePixelDataSealer>(header, xfer, pixelDataLength, key.key, params);
}

std::string InstanceProtector::scopeUidOf(DcmDataset& dataset) const {
  switch (scope_) {
    case keystore::KeyScope::Study: return requiredUid(dataset, DCM_StudyInstanceUID, "Study Instance UID");
    case keystore::KeyScope::Series: return requiredUid(dataset, DCM_SeriesInstanceUID, "Series Instance UID");
    case keystore::KeyScope::Instance: break;
  }
  return requiredUid(dataset, DCM_SOPInstanceUID, "SOP Instance UID");
}

std::pair<keystore::DataKey, codecs::EncryptParams> InstanceProtector::keyAndParamsFor(const std::string& scopeUid) {
  keystore::DataKey key;
  try {
    key = dataKeyFor(scopeUid);
  } catch (const keystore::KeyDestroyedError& e) {
    spdlog::warn("audit: object of shredded {} {} refused: {}", keystore::toString(scope_), printable(scopeUid),
                 e.what());
    audit::keyEvent("denied", "", scopeUid, false, "the data key was destroyed (keys shred)");
    throw codecs::CryptError(codecs::CryptErrorKind::KeyDestroyed, e.what());
  }
  codecs::EncryptParams params;
  params.keyId = key.id;
  params.allowLossy = allowLossy_;
  params.keyScope = scope_ == keystore::KeyScope::Study    ? "STUDY"
                    : scope_ == keystore::KeyScope::Series ? "SERIES"
                                                           : "INSTANCE";
  return {std::move(key), std::move(params)};
}

keystore::DataKey InstanceProtector::dataKeyFor(const std::string& scopeUid) {
  {
    std::lock_guard<std::mutex> lock(keyCreation_);
    if (knownScopes_.count(scopeUid) != 0) return keys_.getOrCreate(scope_, scopeUid);
  }
  // First use in this process. "created" is recorded only by the call whose key the keystore stored:
  // with a shared keystore, a replica that lost the insert race to another one uses the winner's key.
  std::lock_guard<std::mutex> lock(keyCreation_);
  bool created = false;
  keystore::DataKey key = keys_.getOrCreate(scope_, scopeUid, &created);
  if (created) {
    spdlog::info("audit: data key {} created for {} {}", key.id, keystore::toString(scope_), printable(scopeUid));
    audit::keyEvent("created", key.id, scopeUid, true, "");
  }
  if (knownScopes_.size() >= 100000) knownScopes_.clear();  // bounded; costs one look-up per study again
  knownScopes_.insert(scopeUid);
  return key;
}

codecs::KeyLookup InstanceProtector::releasingLookup(DcmDataset& dataset, std::string& usedKeyId,
                                                   std::string& usedScopeUid) {
  return [this, &dataset, &usedKeyId, &usedScopeUid](const std::string& keyId) -> SecretBytes {
    keystore::DataKey key;
    try {
      key = keys_.get(keyId);
    } catch (const keystore::KeyDestroyedError& e) {
      spdlog::warn("audit: decryption under destroyed data key {} refused (keys shred)", printable(keyId));
      audit::keyEvent("denied", keyId, "", false, "the data key was destroyed (keys shred)");
      throw codecs::CryptError(codecs::CryptErrorKind::KeyDestroyed, e.what());
    } catch (const keystore::KeystoreError& e) {
      audit::keyEvent("denied", keyId, "", false, e.what());
      throw codecs::CryptError(codecs::CryptErrorKind::UnknownKey, e.what());
    }
    try {
      requireKeyScopeMatches(dataset, key);
    } catch (const codecs::CryptError& e) {
      audit::keyEvent("denied", keyId, key.scopeUid, false, e.what());
      throw;
    }
    usedKeyId = key.id;
    usedScopeUid = key.scopeUid;
    return std::move(key.key);
  };
}

std::pair<E_TransferSyntax, codecs::VerifiedGcmMessage> InstanceProtector::restoreStreaming(
    DcmDataset& dataset, E_TransferSyntax xfer, std::uint32_t pixelDataLength,
    const std::function<void(codecs::NativePixelDataOpener&)>& checkPixelData, audit::KeyReleases* releases) {
  std::string usedKeyId, usedScopeUid;
  const auto started = std::chrono::steady_clock::now();
  codecs::NativePixelDataOpener opener(dataset, xfer, pixelDataLength,
                                       releasingLookup(dataset, usedKeyId, usedScopeUid));
  checkPixelData(opener);
  codecs::VerifiedGcmMessage message = opener.verify(dataset);
  metrics::observe("pacsgw_decrypt_seconds", {{"backend", "aes-256-gcm"}}, secondsSince(started));
  if (releases != nullptr) {
    releases->add(usedKeyId, usedScopeUid);
  } else {
    audit::keyEvent("released", usedKeyId, usedScopeUid, true, "");
  }
  return {opener.originalTransferSyntax(), std::move(message)};
}

E_TransferSyntax InstanceProtector::restore(DcmDataset& dataset, E_TransferSyntax xfer, audit::KeyReleases* releases) {
  std::string usedKeyId, usedScopeUid;
  const codecs::KeyLookup lookup = releasingLookup(dataset, usedKeyId, usedScopeUid);
  std::string backend = "unknown";
  try {
    // Only a registered backend becomes a label value: the block comes from the PACS.
    const std::string recorded =
        codecs::hasKeyReference(dataset) ? codecs::readKeyReference(dataset).record.backendId : "";
    for (const std::string& known : codecs::availableBackends()) {
      if (recorded == known) backend = known;
    }
  } catch (const codecs::CryptError&) {
    // decryptDataset reports the malformed block with its precise reason.
  }
  const auto started = std::chrono::steady_clock::now();
  E_TransferSyntax original;
  try {
    original = codecs::decryptDataset(dataset, xfer, lookup, options_);
  } catch (const codecs::CryptError& e) {
    // A block naming a backend this build cannot use: its key is not released either.
    if (e.kind() == codecs::CryptErrorKind::UnknownBackend) {
      std::string keyId;
      try {
        keyId = codecs::readKeyReference(dataset).keyId;
      } catch (const codecs::CryptError&) {
      }
      audit::keyEvent("denied", keyId, "", false, e.what());
    }
    throw;
  }
  metrics::observe("pacsgw_decrypt_seconds", {{"backend", backend}}, secondsSince(started));
  if (releases != nullptr) {
    releases->add(usedKeyId, usedScopeUid);
  } else {
    audit::keyEvent("released", usedKeyId, usedScopeUid, true, "");
  }
  return original;
}

SecretBytes loadMasterKey(const config::Config& config) {
  if (!config.keystore.masterKeyFile.empty()) return keystore::loadMasterKeyFromFile(config.keystore.masterKeyFile);
  SecretBytes key = keystore::loadMasterKeyFromEnv(config.keystore.masterKeyEnv);
  // Read once per process; afterwards nothing (child processes, /proc/<pid>/environ) may see it.
  clearEnvironmentSecret(config.keystore.masterKeyEnv);
  return key;
}

keystore::Pkcs11Settings pkcs11Settings(const config::Config& config) {
  const auto& p = config.keystore.pkcs11;
  keystore::Pkcs11Settings settings{p.module, p.tokenLabel, p.keyLabel, SecretBytes()};
  if (!p.pinFile.empty()) {
    settings.pin = keystore::loadPinFromFile(p.pinFile);
  } else {
    settings.pin = keystore::loadPinFromEnv(p.pinEnv);
    clearEnvironmentSecret(p.pinEnv);
  }
  return settings;
}

std::unique_ptr<keystore::MasterKeyProvider> masterKeyProvider(const config::Config& config) {
  if (config.keystore.usesPkcs11()) return keystore::pkcs11MasterKey(pkcs11Settings(config));
  const std::string source = !config.keystore.masterKeyFile.empty()
                                 ? "master key file " + config.keystore.masterKeyFile
                                 : "master key in environment variable " + config.keystore.masterKeyEnv;
  return keystore::softwareMasterKey(loadMasterKey(config), source);
}

std::string keystoreAnchorPath(const config::Config& config) {
  if (!config.keystore.anchorFile.empty()) return config.keystore.anchorFile;
  // Beside the master key, which usually lives apart from the data directory, so that losing the whole
  // data directory is noticed too; unless that directory is read-only (a mounted secret).
  if (!config.keystore.masterKeyFile.empty()) {
    const std::string besideKey = config.keystore.masterKeyFile + ".anchor";
    std::string directory = std::filesystem::path(config.keystore.masterKeyFile).parent_path().string();
    if (directory.empty()) directory = ".";
    if (::access(besideKey.c_str(), F_OK) == 0 || ::access(directory.c_str(), W_OK) == 0) return besideKey;
  }
  if (config.keystore.path.empty()) return config.gateway.dataDir + "/keystore.anchor";  // PostgreSQL keystore
  return config.keystore.path + ".anchor";
}

std::unique_ptr<keystore::Keystore> openKeystore(const config::Config& config, keystore::OpenOptions options) {
  if (options.anchorPath.empty()) options.anchorPath = keystoreAnchorPath(config);
  if (options.escrowDirectory.empty()) options.escrowDirectory = config.keystore.escrowDir;
  if (!config.keystore.postgres.empty()) {
    return keystore::Keystore::openPostgres(config.keystore.postgres, masterKeyProvider(config), options);
  }
  return keystore::Keystore::open(config.keystore.path, masterKeyProvider(config), options);
}

}  // namespace pacsgw::gateway
