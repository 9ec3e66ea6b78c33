#pragma once
// PostgreSQL-backed keystore shared by several gateway replicas. Same rows, wrap format, check value,
// anchor and tombstones as the SQLite keystore; the database server provides durability and replication.
// Not part of the public interface: Keystore dispatches to it.
#include "keystore/escrow_journal.h"
#include "keystore/key_cache.h"
#include "keystore/keystore.h"
#include "keystore/master_key_provider.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

struct pg_conn;

namespace pacsgw::keystore::detail {

class PgKeystore {
 public:
  PgKeystore(const std::string& conninfo, std::unique_ptr<MasterKeyProvider> master, const OpenOptions& options);
  ~PgKeystore();
  PgKeystore(const PgKeystore&) = delete;
  PgKeystore& operator=(const PgKeystore&) = delete;

  const OpenReport& report() const { return report_; }
  DataKey getOrCreate(KeyScope scope, const std::string& scopeUid, bool* created = nullptr);
  DataKey get(const std::string& keyId);
  DataKey importKey(const DataKey& key);
  bool contains(const std::string& keyId);
  bool hasKeyFor(KeyScope scope, const std::string& scopeUid);  // exists or was shredded; never creates
  std::vector<KeyInfo> list();
  std::vector<DamagedKey> verify();
  void rotateMasterKey(std::unique_ptr<MasterKeyProvider> newMaster);
  std::string shred(KeyScope scope, const std::string& scopeUid);
  bool isShredded(const std::string& keyId);

  // A consistent copy of every row, read in one REPEATABLE READ, READ ONLY transaction (keys backup).
  struct Snapshot {
    std::string keystoreId;
    std::vector<std::uint8_t> kekCheck;
    struct Key {
      std::string id, scope, scopeUid, createdAt;
      std::vector<std::uint8_t> wrapped;
      int wrapFormat = 0;
    };
    struct Tombstone {
      std::string id, scope, scopeUid, shreddedAt;
    };
    std::vector<Key> keys;
    std::vector<Tombstone> tombstones;
  };
  Snapshot snapshot();

 private:
  struct Row;
  class Result;
  Result run(const char* sql, const std::vector<std::optional<std::string>>& text,
             const std::vector<int>& binaryParams = {});
  void command(const char* sql);
  void initialiseOrVerify();
  void verifyMasterKey(const std::vector<std::uint8_t>& stored, const std::string& keystoreId);
  DataKey unwrapRow(const std::string& id, KeyScope scope, const std::string& scopeUid,
                    const std::vector<std::uint8_t>& wrapped, int format) const;
  // `storedWrap`, when given, receives the row's wrapped blob (what the escrow journal keeps).
  std::optional<DataKey> findByScope(KeyScope scope, const std::string& scopeUid,
                                     std::vector<std::uint8_t>* storedWrap = nullptr);
  void escrow(const DataKey& key, const std::vector<std::uint8_t>& storedWrap);
  void reconcileEscrow();
  bool idShredded(const std::string& keyId);
  void dropCacheIfChangedElsewhere(bool force);
  void bumpGeneration();
  KeystoreError error(const std::string& what) const;

  std::string where_;  // "PostgreSQL keystore <dbname>@<host>:<port>" for messages (no password)
  std::unique_ptr<MasterKeyProvider> master_;
  OpenOptions options_;
  OpenReport report_;
  std::optional<Anchor> anchor_;
  std::optional<EscrowJournal> escrow_;  // options_.escrowDirectory, when set
  pg_conn* conn_ = nullptr;
  std::mutex mutex_;
  KeyCache cache_;
  std::string generation_;
  std::chrono::steady_clock::time_point generationCheckedAt_{};
};

}  // namespace pacsgw::keystore::detail
