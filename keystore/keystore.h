#pragma once
// Key hierarchy: a master key (KEK) wraps per-scope data keys (DEK) with AES-256 key wrap with
// padding (RFC 5649); wrapped keys live in an SQLite file. Knows nothing about DICOM networking.
#include "secret_bytes.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace pacsgw::keystore {

class MasterKeyProvider;  // master_key_provider.h

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

struct OpenOptions {
  // The anchor file records which keystore this gateway uses (its id and the master key's check value),
  // outside the database. When it exists, a keystore that has disappeared, is empty or belongs to
  // another installation is refused instead of silently re-created. Empty: no anchor (tests, tools).
  std::string anchorPath;
  // The operator explicitly accepts starting a new, empty keystore although the anchor records a used
  // one (every object encrypted under the old keystore stays unreadable without it).
  bool acceptNewKeystore = false;
  // Rewrite a damaged master key check value, but only when the configured master key demonstrably
  // unwraps the stored data keys.
  bool repairCheckValue = false;
  // Escrow journal directory on storage other than the keystore's (see escrow_journal.h); empty: none.
  // On open the journal and the keystore are reconciled: keys only in the journal are imported, keys
  // only in the keystore are escrowed, damaged rows are repaired from their escrow copy.
  std::string escrowDirectory;
};

// What happened while opening, for the caller to log.
struct OpenReport {
  bool createdNewKeystore = false;   // the database was empty and a new keystore was created
  bool replacedAnchoredKeystore = false;  // ... although the anchor named another one (acceptNewKeystore)
  bool anchorWritten = false;        // the anchor file was created or updated
  bool migrated = false;             // rows were converted from an older schema / wrap format
  bool repairedCheckValue = false;   // a damaged check value was rewritten (repairCheckValue)
  std::size_t importedFromEscrow = 0;   // keys found only in the escrow journal, now back in the keystore
  std::size_t repairedFromEscrow = 0;   // damaged rows replaced by their escrow copy
  std::size_t escrowed = 0;             // keys written to the journal because it lacked (or had stale) ones
  std::vector<std::string> escrowProblems;  // entries that could not be used, each named
  std::string keystoreId;
};

// One damaged data key found by Keystore::verify().
struct DamagedKey {
  std::string id;        // as stored (printable)
  std::string scope;     // as stored (printable)
  std::string scopeUid;  // as stored (printable)
  std::string problem;
};

class Keystore {
 public:
  // Opens (creating if absent) the SQLite keystore. The store records a key-check value for the
  // master key: a wrong master key or a corrupted store throws KeystoreError with a clear message.
  static std::unique_ptr<Keystore> open(const std::string& path, SecretBytes masterKey,
                                        const OpenOptions& options = {});
  // Opens (creating the tables if absent) a keystore in PostgreSQL, shared by several gateway replicas.
  // `conninfo` is a libpq connection string ("host=... port=... dbname=... user=..."); keep passwords in
  // ~/.pgpass or PGPASSFILE, not in it. Same rows, wrap format, check value, anchor and tombstones as the
  // SQLite keystore, including the escrow journal (OpenOptions::escrowDirectory) and backupTo().
  static std::unique_ptr<Keystore> openPostgres(const std::string& conninfo, SecretBytes masterKey,
                                                const OpenOptions& options = {});
  // The same, with the master key behind a provider (a PKCS#11 token: the key never enters this
  // process). The SecretBytes forms above are shorthands for a software provider.
  static std::unique_ptr<Keystore> open(const std::string& path, std::unique_ptr<MasterKeyProvider> master,
                                        const OpenOptions& options = {});
  static std::unique_ptr<Keystore> openPostgres(const std::string& conninfo, std::unique_ptr<MasterKeyProvider> master,
                                                const OpenOptions& options = {});
  const OpenReport& openReport() const;
  ~Keystore();
  Keystore(const Keystore&) = delete;
  Keystore& operator=(const Keystore&) = delete;

  // Returns the data key for (scope, scopeUid), creating and storing it on first use. Thread-safe.
  // `created` (optional) is set to whether this call's key was the one stored: false when the key
  // existed, and false when another process (a replica sharing the keystore) stored its key first.
  DataKey getOrCreate(KeyScope scope, const std::string& scopeUid, bool* created = nullptr);
  // Stores a data key received from elsewhere (a relayed study) under this keystore's master key, with
  // its own id, and escrows it like a key created here. Idempotent: the same key for the same study is
  // accepted again. Throws KeyConflictError when this keystore already holds another key for the scope,
  // or the id for another scope; KeyDestroyedError when the scope was shredded here.
  DataKey importKey(const DataKey& key);
  // Returns the data key with this id; throws KeystoreError if unknown or if its wrap fails to verify.
  DataKey get(const std::string& keyId);
  bool contains(const std::string& keyId);
  // True when a data key exists, or existed and was shredded, for (scope, scopeUid); never creates one.
  bool hasKeyFor(KeyScope scope, const std::string& scopeUid);
  std::vector<KeyInfo> list();

  // Unwraps every stored data key (in memory only) and returns the ones that fail, naming each.
  std::vector<DamagedKey> verify();
  // Consistent online copy of the keystore into a new file `target` (SQLite backup API); the copy is
  // protected by the same master key. Refuses to overwrite an existing file. For a PostgreSQL keystore
  // the copy is an SQLite keystore file (same keystore id, check value, wrapped rows and tombstones) read
  // in one REPEATABLE READ, READ ONLY transaction.
  void backupTo(const std::string& target);
  // Re-wraps every data key under `newMasterKey` in one transaction and records its check value (in
  // the database and the anchor). Afterwards only the new master key opens the keystore.
  void rotateMasterKey(SecretBytes newMasterKey);
  // The same for any provider: file -> PKCS#11 token, token -> file, token -> another token key.
  void rotateMasterKey(std::unique_ptr<MasterKeyProvider> newMaster);
  // Destroys the data key of (scope, scopeUid): row, cache, free pages and WAL. A tombstone keeps the
  // key id so that later look-ups report "destroyed" rather than "unknown". Returns the destroyed key
  // id, or an empty string if there was no such key.
  std::string shred(KeyScope scope, const std::string& scopeUid);
  // True when the key id was destroyed by shred().
  bool isShredded(const std::string& keyId);

 private:
  struct Impl;
  struct Postgres;
  explicit Keystore(std::unique_ptr<Impl> impl);
  explicit Keystore(std::unique_ptr<Postgres> pg);
  std::unique_ptr<Impl> impl_;   // SQLite
  std::unique_ptr<Postgres> pg_; // PostgreSQL (exactly one of the two is set)
};

// Thrown by get()/getOrCreate() for a key destroyed by shred(): the study must not be given a new key
// nor its objects be decrypted.
class KeyDestroyedError : public KeystoreError {
 public:
  using KeystoreError::KeystoreError;
};

// Thrown by importKey() when the imported key would fork a study's key (another key for the same scope,
// or the same key id for another scope).
class KeyConflictError : public KeystoreError {
 public:
  using KeystoreError::KeystoreError;
};

// RFC 5649 AES key wrap with padding, exposed for tests (KAT vectors).
std::vector<std::uint8_t> wrapKey(const SecretBytes& kek, const SecretBytes& key);
SecretBytes unwrapKey(const SecretBytes& kek, const std::vector<std::uint8_t>& wrapped);  // throws on failure

// Row-bound wrap (format 2): the data key is wrapped under a key derived with HKDF-SHA-256 from the master
// key and the row's identity (key id, scope, scope UID), so a blob moved to another row does not unwrap.
std::vector<std::uint8_t> wrapKeyForRow(const SecretBytes& kek, const std::string& keyId, KeyScope scope,
                                        const std::string& scopeUid, const SecretBytes& key);
SecretBytes unwrapKeyForRow(const SecretBytes& kek, const std::string& keyId, KeyScope scope,
                            const std::string& scopeUid, const std::vector<std::uint8_t>& wrapped);

// Anchor file beside the master key (see OpenOptions). Exposed for the CLI and tests.
struct Anchor {
  std::string keystoreId;
  std::vector<std::uint8_t> kekCheck;  // 32 bytes
};
std::optional<Anchor> readAnchor(const std::string& path);  // nullopt if absent; throws if unreadable
void writeAnchor(const std::string& path, const Anchor& anchor);  // atomic replace, mode 0600, fsynced
// HMAC-SHA-256 of a fixed label under the master key; tells master keys apart without revealing them.
std::vector<std::uint8_t> masterKeyCheckValue(const SecretBytes& kek);

}  // namespace pacsgw::keystore
