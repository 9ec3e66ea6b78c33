#pragma once
// Key hierarchy: a master key (KEK) wraps per-scope data keys (DEK) with AES-256 key wrap with
// padding (RFC 5649); wrapped keys live in an SQLite file. Knows nothing about DICOM networking.
#include "secret_bytes.h"

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace pacsgw::keystore {

// Thrown for every keystore failure; what() is safe to log (never contains key material).
class KeystoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class KeyScope { Study, Series, Instance };
const char* toString(KeyScope scope);             // "study" | "series" | "instance"
KeyScope keyScopeFromString(const std::string&);  // throws KeystoreError on unknown text

struct DataKey {
  std::string id;       // UUID (RFC 4122 v4, lower-case text)
  KeyScope scope;
  std::string scopeUid; // the Study / Series / SOP Instance UID this key protects
  SecretBytes key;      // 32 bytes
};

struct KeyInfo {  // what `pacsgw keys list` shows: never the key itself
  std::string id;
  KeyScope scope;
  std::string scopeUid;
  std::string createdAt;  // ISO 8601 UTC
};

// Loads the 32-byte master key. File: must exist, be a regular file with mode 0600 (or stricter) and
// hold 32 raw bytes or 64 hex characters (optional trailing newline). Environment: 64 hex characters.
SecretBytes loadMasterKeyFromFile(const std::string& path);
SecretBytes loadMasterKeyFromEnv(const std::string& variable);
// Creates a new random master key file (mode 0600) if none exists; returns true if it created one.
bool generateMasterKeyFile(const std::string& path);

class Keystore {
 public:
  // Opens (creating if absent) the SQLite keystore. The store records a key-check value for the
  // master key: a wrong master key or a corrupted store throws KeystoreError with a clear message.
  static std::unique_ptr<Keystore> open(const std::string& path, SecretBytes masterKey);
  ~Keystore();
  Keystore(const Keystore&) = delete;
  Keystore& operator=(const Keystore&) = delete;

  // Returns the data key for (scope, scopeUid), creating and storing it on first use. Thread-safe.
  DataKey getOrCreate(KeyScope scope, const std::string& scopeUid);
  // Returns the data key with this id; throws KeystoreError if unknown or if its wrap fails to verify.
  DataKey get(const std::string& keyId);
  bool contains(const std::string& keyId);
  std::vector<KeyInfo> list();

 private:
  struct Impl;
  explicit Keystore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// RFC 5649 AES key wrap with padding, exposed for tests (KAT vectors).
std::vector<std::uint8_t> wrapKey(const SecretBytes& kek, const SecretBytes& key);
SecretBytes unwrapKey(const SecretBytes& kek, const std::vector<std::uint8_t>& wrapped);  // throws on failure

}  // namespace pacsgw::keystore
