#pragma once
// Where the master key (KEK) lives and how data keys are wrapped under it. The SQLite and PostgreSQL
// keystores only store what a provider produces; they never need the master key's bytes.
//
//   software (file / environment): the key is in process memory; wraps are RFC 5649 under a per-row
//       key derived with HKDF-SHA-256 (wrap format 2, see wrapKeyForRow).
//   PKCS#11 (an HSM or SoftHSM2): the key never leaves the token; every wrap and unwrap is an
//       AES-256-GCM operation inside the token with a fresh random IV and the row binding as AAD
//       (wrap format 3, see pkcs11_provider.h).
// Both bind each wrapped data key to its row (key id, scope, scope UID): a blob moved to another row
// does not unwrap.
#include "keystore/keystore.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace pacsgw::keystore {

class MasterKeyProvider {
 public:
  virtual ~MasterKeyProvider() = default;

  // For messages: "master key file /etc/pacsgw/master.key", "PKCS#11 key 'pacsgw-kek' in token 'x'".
  virtual std::string describe() const = 0;
  // 32 bytes that tell master keys apart without revealing them; recorded in the keystore and anchor.
  virtual std::vector<std::uint8_t> checkValue() const = 0;
  // The data_keys.wrap_format of the blobs this provider writes (2: software, 3: PKCS#11).
  virtual int wrapFormat() const = 0;
  // Wraps a data key bound to its row; a fresh wrap may differ each time (random IV).
  virtual std::vector<std::uint8_t> wrapForRow(const std::string& keyId, KeyScope scope, const std::string& scopeUid,
                                               const SecretBytes& key) const = 0;
  // Unwraps a blob of wrapFormat(); throws KeystoreError when it fails its integrity check.
  virtual SecretBytes unwrapForRow(const std::string& keyId, KeyScope scope, const std::string& scopeUid,
                                   const std::vector<std::uint8_t>& wrapped) const = 0;
  // The raw master key for the legacy format-1 migration; nullptr when it is not available (a token).
  virtual const SecretBytes* rawKey() const { return nullptr; }
};

// A master key held in memory (loaded from a file or the environment, or given by a test).
// `description` names its source in messages.
std::unique_ptr<MasterKeyProvider> softwareMasterKey(SecretBytes key, std::string description = "master key");

}  // namespace pacsgw::keystore
