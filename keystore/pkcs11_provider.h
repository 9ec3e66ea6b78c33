#pragma once
// Master key in a PKCS#11 token (a hardware security module, or SoftHSM2). The key is an AES-256
// secret key object that is sensitive and not extractable: it never leaves the token. Data keys are
// wrapped inside the token with AES-256-GCM (CKM_AES_GCM), a fresh random 96-bit IV per wrap and the
// row binding (key id, scope, scope UID) as additional authenticated data:
//   wrapped (format 3) = IV (12 bytes) || GCM ciphertext of the data key (32 bytes) || tag (16 bytes)
// The check value is SHA-256 over a fixed label and the token's AES-GCM encryption of a fixed label
// under a reserved IV (never used for a wrap), so it tells keys apart without any key bytes leaving the
// token. The key needs CKA_ENCRYPT and CKA_DECRYPT only.
// The module is loaded with dlopen; nothing links against a particular vendor's library.
#include "keystore/master_key_provider.h"

#include <memory>
#include <string>

namespace pacsgw::keystore {

struct Pkcs11Settings {
  std::string modulePath;  // e.g. /usr/lib/softhsm/libsofthsm2.so
  std::string tokenLabel;
  std::string keyLabel;
  SecretBytes pin;  // wiped as soon as the session is logged in
};

// Opens the token, logs in, finds the key and checks that it is a 32-byte AES key that is sensitive,
// not extractable and allowed to encrypt and decrypt. Throws KeystoreError with a message that
// names the module, token and key (never the PIN): module missing, token not found, wrong PIN, key
// missing, key extractable, ...
std::unique_ptr<MasterKeyProvider> pkcs11MasterKey(Pkcs11Settings settings);

// Creates the master key in the token: AES-256 generated inside the token (CKM_AES_KEY_GEN), token
// object, private, sensitive, never extractable, usable for encrypt/decrypt only. Refuses
// when a key with that label exists already.
void generatePkcs11MasterKey(Pkcs11Settings settings);

// The PIN from a file (owned by the gateway's user, mode 0600 or stricter; one line) or from an
// environment variable (which is then removed from the environment). Errors never contain the PIN.
SecretBytes loadPinFromFile(const std::string& path);
SecretBytes loadPinFromEnv(const std::string& variable);

}  // namespace pacsgw::keystore
