// PostgreSQL keystore. Tables (created on first use, under an advisory lock so that replicas starting
// together create them once):
//   pacsgw_meta(name TEXT PRIMARY KEY, value TEXT)   -- schema_version, kek_check (hex), keystore_id, generation
//   pacsgw_data_keys(id, scope, scope_uid, wrapped BYTEA, created_at, wrap_format, UNIQUE(scope, scope_uid))
//   pacsgw_shredded_keys(id, scope, scope_uid, shredded_at)
// Replicas insert a study's first key with INSERT ... ON CONFLICT DO NOTHING and read back the row that
// won, so concurrent first stores of one study end with one key. `generation` changes on shred and
// rotation; each replica re-reads it at most once a second and then drops its key cache.
#include "keystore/pg_keystore.h"
#include "keystore/keystore_internal.h"

#include <libpq-fe.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <map>
#include <set>

namespace pacsgw::keystore::detail {

namespace {

constexpr int kSchemaVersion = 2;
constexpr std::size_t kCheckBytes = 32;
constexpr std::size_t kCacheCapacity = 4096;
constexpr std::int64_t kCreateLock = 0x7061637367770001;  // advisory lock id: "pacsgw" + 1
constexpr auto kGenerationRecheck = std::chrono::seconds(1);

bool sameBytes(const std::vector<std::uint8_t>& a, const std::vector<std::uint8_t>& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string hexOf(const std::vector<std::uint8_t>& bytes) { return encodeHex(bytes.data(), bytes.size()); }

std::string bytesAsString(const std::vector<std::uint8_t>& bytes) { return std::string(bytes.begin(), bytes.end()); }

}  // namespace

class PgKeystore::Result {
 public:
  explicit Result(PGresult* result) : result_(result) {}
  ~Result() { PQclear(result_); }
  Result(Result&& other) noexcept : result_(other.result_) { other.result_ = nullptr; }
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  int rows() const { return PQntuples(result_); }
  int affected() const {
    const char* n = PQcmdTuples(result_);
    return n == nullptr || *n == '\0' ? 0 : std::atoi(n);
  }
  std::string text(int row, int column) const {
    return PQgetisnull(result_, row, column) ? std::string() : std::string(PQgetvalue(result_, row, column));
  }
  std::vector<std::uint8_t> bytes(int row, int column) const {
    if (PQgetisnull(result_, row, column)) return {};
    std::size_t length = 0;
    unsigned char* raw =
        PQunescapeBytea(reinterpret_cast<const unsigned char*>(PQgetvalue(result_, row, column)), &length);
    if (raw == nullptr) return {};
    std::vector<std::uint8_t> out(raw, raw + length);
    PQfreemem(raw);
    return out;
  }

 private:
  PGresult* result_;
};

KeystoreError PgKeystore::error(const std::string& what) const {
  std::string reason = conn_ != nullptr ? PQerrorMessage(conn_) : "no connection";
  while (!reason.empty() && (reason.back() == '\n' || reason.back() == ' ')) reason.pop_back();
  return KeystoreError(where_ + ": " + what + " failed: " + printable(reason, 300));
}

PgKeystore::Result PgKeystore::run(const char* sql, const std::vector<std::optional<std::string>>& params,
                                   const std::vector<int>& binaryParams) {
  if (PQstatus(conn_) != CONNECTION_OK) PQreset(conn_);  // the server restarted or failed over
  std::vector<const char*> values;
  std::vector<int> lengths;
  std::vector<int> formats;
  for (std::size_t i = 0; i < params.size(); ++i) {
    values.push_back(params[i] ? params[i]->data() : nullptr);
    lengths.push_back(params[i] ? static_cast<int>(params[i]->size()) : 0);
    formats.push_back(std::find(binaryParams.begin(), binaryParams.end(), static_cast<int>(i)) != binaryParams.end());
  }
  PGresult* raw = PQexecParams(conn_, sql, static_cast<int>(params.size()), nullptr, values.data(), lengths.data(),
                               formats.data(), 0);
  Result result(raw);
  const ExecStatusType status = PQresultStatus(raw);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    std::string reason = raw != nullptr ? PQresultErrorMessage(raw) : "";
    if (reason.empty()) reason = PQerrorMessage(conn_);
    while (!reason.empty() && (reason.back() == '\n' || reason.back() == ' ')) reason.pop_back();
    // Server messages name tables, columns and UIDs, never parameter values of key material.
    throw KeystoreError(where_ + ": query failed: " + printable(reason, 300));
  }
  return result;
}

void PgKeystore::command(const char* sql) {
  PGresult* raw = PQexec(conn_, sql);
  const ExecStatusType status = PQresultStatus(raw);
  PQclear(raw);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) throw error(std::string("'") + sql + "'");
}


PgKeystore::PgKeystore(const std::string& conninfo, std::unique_ptr<MasterKeyProvider> master,
                       const OpenOptions& options)
    : master_(std::move(master)), options_(options), cache_(kCacheCapacity) {
  conn_ = PQconnectdb(conninfo.c_str());
  where_ = std::string("PostgreSQL keystore ") + (conn_ ? PQdb(conn_) : "?") + "@" + (conn_ ? PQhost(conn_) : "?") +
           ":" + (conn_ ? PQport(conn_) : "?");
  if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
    const KeystoreError e = error("connect");
    PQfinish(conn_);
    conn_ = nullptr;
    throw e;
  }
  try {
    if (!options_.anchorPath.empty()) anchor_ = readAnchor(options_.anchorPath);
    if (!options_.escrowDirectory.empty()) escrow_.emplace(options_.escrowDirectory);
    initialiseOrVerify();
    reconcileEscrow();
    if (!options_.anchorPath.empty()) {
      const Anchor current{report_.keystoreId, master_->checkValue()};
      if (!anchor_ || anchor_->keystoreId != current.keystoreId || !sameBytes(anchor_->kekCheck, current.kekCheck)) {
        writeAnchor(options_.anchorPath, current);
        anchor_ = current;
        report_.anchorWritten = true;
      }
    }
  } catch (...) {
    PQfinish(conn_);
    conn_ = nullptr;
    throw;
  }
}

PgKeystore::~PgKeystore() {
  if (conn_ != nullptr) PQfinish(conn_);
}

void PgKeystore::initialiseOrVerify() {
  command("BEGIN");
  try {
    {
      Result lock = run("SELECT pg_advisory_xact_lock($1::bigint)", {std::to_string(kCreateLock)});
      (void)lock;
    }
    Result tables = run(
        "SELECT to_regclass('pacsgw_meta') IS NOT NULL, to_regclass('pacsgw_data_keys') IS NOT NULL, "
        "to_regclass('pacsgw_shredded_keys') IS NOT NULL",
        {});
    if (tables.rows() != 1) throw error("read the schema");
    const bool meta = tables.text(0, 0) == "t", keys = tables.text(0, 1) == "t", shredded = tables.text(0, 2) == "t";
    if (!meta && !keys && !shredded) {
      if (anchor_ && !options_.acceptNewKeystore) {
        throw KeystoreError(where_ + " has no keystore tables, but the anchor " + options_.anchorPath +
                            " records that keystore " + anchor_->keystoreId +
                            " was in use (wrong database, or it was dropped). Refusing to start. Restore the "
                            "database; to deliberately start an empty keystore, run once with --accept-new-keystore");
      }
      command(
          "CREATE TABLE pacsgw_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);"
          "CREATE TABLE pacsgw_data_keys (id TEXT PRIMARY KEY, scope TEXT NOT NULL, scope_uid TEXT NOT NULL,"
          "  wrapped BYTEA NOT NULL, created_at TEXT NOT NULL, wrap_format INTEGER NOT NULL,"
          "  UNIQUE (scope, scope_uid));"
          "CREATE TABLE pacsgw_shredded_keys (id TEXT PRIMARY KEY, scope TEXT NOT NULL, scope_uid TEXT NOT NULL,"
          "  shredded_at TEXT NOT NULL, UNIQUE (scope, scope_uid))");
      report_.keystoreId = newUuidV4();
      Result insert = run(
          "INSERT INTO pacsgw_meta (name, value) VALUES ('schema_version', $1), ('kek_check', $2), "
          "('keystore_id', $3), ('generation', '0')",
          {std::to_string(kSchemaVersion), hexOf(master_->checkValue()), report_.keystoreId});
      if (insert.affected() != 4) throw error("write the keystore meta data");
      report_.createdNewKeystore = true;
      report_.replacedAnchoredKeystore = anchor_.has_value();
    } else if (!(meta && keys && shredded)) {
      throw KeystoreError(where_ + " has only some of the pacsgw keystore tables; it is damaged or was created by "
                                   "something else");
    } else {
      Result rows = run("SELECT name, value FROM pacsgw_meta", {});
      std::string version, check, id;
      for (int r = 0; r < rows.rows(); ++r) {
        const std::string name = rows.text(r, 0);
        if (name == "schema_version") version = rows.text(r, 1);
        if (name == "kek_check") check = rows.text(r, 1);
        if (name == "keystore_id") id = rows.text(r, 1);
        if (name == "generation") generation_ = rows.text(r, 1);
      }
      if (version != std::to_string(kSchemaVersion)) {
        throw KeystoreError(where_ + " has schema version '" + printable(version) + "'; this pacsgw supports " +
                            std::to_string(kSchemaVersion));
      }
      if (!looksLikeUuid(id)) throw KeystoreError(where_ + " has a missing or malformed keystore id; it is damaged");
      const auto decoded = decodeHex(check.data(), check.size());
      verifyMasterKey(decoded ? std::vector<std::uint8_t>(decoded->data(), decoded->data() + decoded->size())
                              : std::vector<std::uint8_t>(),
                      id);
      report_.keystoreId = id;
      if (anchor_ && anchor_->keystoreId != id && !options_.acceptNewKeystore) {
        throw KeystoreError(where_ + " (keystore id " + id + ") is not the keystore recorded in the anchor " +
                            options_.anchorPath + " (id " + anchor_->keystoreId +
                            "). Refusing to start. Point keystore.postgres at the right database; to deliberately "
                            "switch, run once with --accept-new-keystore");
      }
    }
    command("COMMIT");
  } catch (...) {
    PGresult* raw = PQexec(conn_, "ROLLBACK");
    PQclear(raw);
    throw;
  }
  generationCheckedAt_ = std::chrono::steady_clock::now();
}

void PgKeystore::verifyMasterKey(const std::vector<std::uint8_t>& stored, const std::string& keystoreId) {
  const std::vector<std::uint8_t> expected = master_->checkValue();
  if (sameBytes(expected, stored)) return;
  bool unwraps = false;
  Result rows = run("SELECT id, scope, scope_uid, wrapped, wrap_format FROM pacsgw_data_keys LIMIT 16", {});
  for (int r = 0; r < rows.rows() && !unwraps; ++r) {
    try {
      unwraps = std::atoi(rows.text(r, 4).c_str()) == master_->wrapFormat() &&
                master_->unwrapForRow(rows.text(r, 0), keyScopeFromString(rows.text(r, 1)), rows.text(r, 2),
                                      rows.bytes(r, 3))
                        .size() == kDataKeyBytes;
    } catch (const KeystoreError&) {
    }
  }
  const bool matchesAnchor = anchor_ && sameBytes(anchor_->kekCheck, expected) && anchor_->keystoreId == keystoreId;
  if (unwraps || matchesAnchor) {
    if (options_.repairCheckValue && unwraps) {
      Result fix = run("UPDATE pacsgw_meta SET value = $1 WHERE name = 'kek_check'", {hexOf(expected)});
      report_.repairedCheckValue = true;
      return;
    }
    throw KeystoreError("the master key check value stored in " + where_ +
                        " is damaged; the configured master key is correct (" +
                        (unwraps ? "it unwraps the stored data keys" : "it matches the anchor") +
                        "). Refusing to start. Repair with `pacsgw keys verify --repair-check-value`");
  }
  throw KeystoreError("master key does not match this keystore (" + where_ +
                      "); refusing to start. Use the master key this keystore was created with");
}

DataKey PgKeystore::unwrapRow(const std::string& id, KeyScope scope, const std::string& scopeUid,
                              const std::vector<std::uint8_t>& wrapped, int format) const {
  DataKey out{id, scope, scopeUid, SecretBytes()};
  if (format != master_->wrapFormat()) {
    throw KeystoreError("data key " + id + " in " + where_ + " has wrap format " + std::to_string(format) +
                        " instead of format " + std::to_string(master_->wrapFormat()) + " of the configured " +
                        master_->describe() + "; the row is damaged");
  }
  try {
    out.key = master_->unwrapForRow(id, scope, scopeUid, wrapped);
  } catch (const KeystoreError& e) {
    throw KeystoreError("data key " + id + " in " + where_ + " failed to unwrap: " + e.what());
  }
  if (out.key.size() != kDataKeyBytes) {
    throw KeystoreError("data key " + id + " in " + where_ + " unwrapped to the wrong length; the row is damaged");
  }
  return out;
}

void PgKeystore::dropCacheIfChangedElsewhere(bool force) {
  const auto now = std::chrono::steady_clock::now();
  if (!force && now - generationCheckedAt_ < kGenerationRecheck) return;
  Result result = run("SELECT value FROM pacsgw_meta WHERE name = 'generation'", {});
  if (result.rows() != 1) throw error("read the keystore generation");
  const std::string generation = result.text(0, 0);
  if (generation != generation_) {
    cache_.clear();
    generation_ = generation;
  }
  generationCheckedAt_ = now;
}

void PgKeystore::bumpGeneration() {
  Result result = run("UPDATE pacsgw_meta SET value = (value::bigint + 1)::text WHERE name = 'generation'", {});
  if (result.affected() != 1) throw error("advance the keystore generation");
}

std::optional<DataKey> PgKeystore::findByScope(KeyScope scope, const std::string& scopeUid,
                                               std::vector<std::uint8_t>* storedWrap) {
  Result result = run("SELECT id, wrapped, wrap_format FROM pacsgw_data_keys WHERE scope = $1 AND scope_uid = $2",
                      {std::string(toString(scope)), scopeUid});
  if (result.rows() == 0) return std::nullopt;
  const std::string id = result.text(0, 0);
  if (!looksLikeUuid(id)) throw KeystoreError(where_ + " holds a data key row with a malformed id; the row is damaged");
  std::vector<std::uint8_t> wrapped = result.bytes(0, 1);
  DataKey key = unwrapRow(id, scope, scopeUid, wrapped, std::atoi(result.text(0, 2).c_str()));
  if (storedWrap != nullptr) *storedWrap = std::move(wrapped);
  return key;
}

// The journal keeps the row's own blob, so any replica (or an SQLite keystore) can re-insert it as is.
void PgKeystore::escrow(const DataKey& key, const std::vector<std::uint8_t>& storedWrap) {
  if (escrow_) escrow_->put(EscrowRecord{key.id, key.scope, key.scopeUid, utcNowIso8601(), master_->checkValue(), storedWrap});
}

// Same rules as the SQLite keystore: keys only in the journal are imported (unless shredded here or the
// scope already has another key), rows the journal lacks are escrowed.
void PgKeystore::reconcileEscrow() {
  if (!escrow_) return;
  struct Row {
    std::string id, scope, uid, createdAt;
    std::vector<std::uint8_t> wrapped;
    int format;
  };
  auto readRows = [&] {
    std::vector<Row> rows;
    Result result = run("SELECT id, scope, scope_uid, wrapped, wrap_format, created_at FROM pacsgw_data_keys", {});
    for (int r = 0; r < result.rows(); ++r) {
      rows.push_back(Row{result.text(r, 0), result.text(r, 1), result.text(r, 2), result.text(r, 5),
                         result.bytes(r, 3), std::atoi(result.text(r, 4).c_str())});
    }
    return rows;
  };
  std::vector<Row> rows = readRows();
  std::set<std::string> ids;
  std::map<std::string, std::string> idByScope;
  for (const Row& row : rows) {
    ids.insert(row.id);
    idByScope[row.scope + '\n' + row.uid] = row.id;
  }
  const std::vector<std::uint8_t> currentCheck = master_->checkValue();
  std::size_t imported = 0;
  for (const EscrowRecord& record : escrow_->all(&report_.escrowProblems)) {
    if (ids.count(record.id) != 0) continue;
    if (idShredded(record.id)) {  // shredded by a replica whose journal this is not, or an interrupted shred
      escrow_->remove(record.scope, record.scopeUid);
      continue;
    }
    const auto other = idByScope.find(std::string(toString(record.scope)) + '\n' + record.scopeUid);
    if (other != idByScope.end()) {
      report_.escrowProblems.push_back("the escrow journal holds data key " + record.id + " for " +
                                       toString(record.scope) + " " + printable(record.scopeUid) +
                                       " but the keystore holds another key (" + other->second +
                                       ") for it: objects under both may exist; keep both for the analysis");
      continue;
    }
    bool unwraps = false;
    if (sameBytes(record.kekCheck, currentCheck)) {
      try {
        unwraps = master_->unwrapForRow(record.id, record.scope, record.scopeUid, record.wrapped).size() ==
                  kDataKeyBytes;
      } catch (const KeystoreError&) {
      }
    }
    if (!unwraps) {
      report_.escrowProblems.push_back("escrow entry for data key " + record.id +
                                       " does not unwrap under the configured master key (older master key, or "
                                       "damaged); not imported");
      continue;
    }
    // Another replica may import the same entry at the same moment: one row wins.
    Result insert = run(
        "INSERT INTO pacsgw_data_keys (id, scope, scope_uid, wrapped, created_at, wrap_format) "
        "SELECT $1::text, $2::text, $3::text, $4::bytea, $5::text, $6::integer "
        "WHERE NOT EXISTS (SELECT 1 FROM pacsgw_shredded_keys WHERE id = $1::text OR "
        "(scope = $2::text AND scope_uid = $3::text)) ON CONFLICT DO NOTHING",
        {record.id, std::string(toString(record.scope)), record.scopeUid, bytesAsString(record.wrapped),
         record.createdAt.empty() ? utcNowIso8601() : record.createdAt, std::to_string(master_->wrapFormat())},
        {3});
    imported += static_cast<std::size_t>(insert.affected());
  }
  report_.importedFromEscrow = imported;
  if (imported > 0) rows = readRows();
  for (const Row& row : rows) {
    try {
      const KeyScope scope = keyScopeFromString(row.scope);
      const DataKey key = unwrapRow(row.id, scope, row.uid, row.wrapped, row.format);
      if (escrow_->put(EscrowRecord{key.id, scope, row.uid, row.createdAt, currentCheck, row.wrapped})) {
        ++report_.escrowed;
      }
    } catch (const KeystoreError&) {
      // Damaged rows are named by verify(); a fork is listed above.
    }
  }
}

PgKeystore::Snapshot PgKeystore::snapshot() {
  std::lock_guard<std::mutex> lock(mutex_);
  Snapshot out;
  command("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
  try {
    Result meta = run("SELECT name, value FROM pacsgw_meta", {});
    std::string check;
    for (int r = 0; r < meta.rows(); ++r) {
      if (meta.text(r, 0) == "keystore_id") out.keystoreId = meta.text(r, 1);
      if (meta.text(r, 0) == "kek_check") check = meta.text(r, 1);
    }
    const auto decoded = decodeHex(check.data(), check.size());
    if (!decoded || !looksLikeUuid(out.keystoreId)) throw KeystoreError(where_ + ": the meta data is damaged");
    out.kekCheck.assign(decoded->data(), decoded->data() + decoded->size());
    Result keys = run("SELECT id, scope, scope_uid, wrapped, wrap_format, created_at FROM pacsgw_data_keys ORDER BY id", {});
    for (int r = 0; r < keys.rows(); ++r) {
      out.keys.push_back(Snapshot::Key{keys.text(r, 0), keys.text(r, 1), keys.text(r, 2), keys.text(r, 5),
                                       keys.bytes(r, 3), std::atoi(keys.text(r, 4).c_str())});
    }
    Result tombs = run("SELECT id, scope, scope_uid, shredded_at FROM pacsgw_shredded_keys ORDER BY id", {});
    for (int r = 0; r < tombs.rows(); ++r) {
      out.tombstones.push_back(Snapshot::Tombstone{tombs.text(r, 0), tombs.text(r, 1), tombs.text(r, 2), tombs.text(r, 3)});
    }
    command("COMMIT");
  } catch (...) {
    PGresult* raw = PQexec(conn_, "ROLLBACK");
    PQclear(raw);
    throw;
  }
  return out;
}

bool PgKeystore::idShredded(const std::string& keyId) {
  return run("SELECT 1 FROM pacsgw_shredded_keys WHERE id = $1", {keyId}).rows() > 0;
}

DataKey PgKeystore::getOrCreate(KeyScope scope, const std::string& scopeUid, bool* created) {
  if (created != nullptr) *created = false;
  std::lock_guard<std::mutex> lock(mutex_);
  dropCacheIfChangedElsewhere(false);
  if (const DataKey* cached = cache_.findByScope(scope, scopeUid)) return *cached;
  std::optional<DataKey> found = findByScope(scope, scopeUid);
  if (!found) {
    Result shredded = run("SELECT id FROM pacsgw_shredded_keys WHERE scope = $1 AND scope_uid = $2",
                          {std::string(toString(scope)), scopeUid});
    if (shredded.rows() > 0) {
      throw KeyDestroyedError(std::string("the data key of ") + toString(scope) + " " + printable(scopeUid) + " (" +
                              printable(shredded.text(0, 0)) +
                              ") was destroyed on purpose (keys shred); no new key is issued for it");
    }
    SecretBytes fresh(kDataKeyBytes);
    randomBytes(fresh.data(), fresh.size());
    const std::string id = newUuidV4();
    const std::vector<std::uint8_t> wrapped = master_->wrapForRow(id, scope, scopeUid, fresh);
    // Another replica may insert the same study at the same moment: its row wins, ours is dropped.
    Result insert = run(
        "INSERT INTO pacsgw_data_keys (id, scope, scope_uid, wrapped, created_at, wrap_format) "
        "SELECT $1::text, $2::text, $3::text, $4::bytea, $5::text, $7::integer "
        "WHERE (SELECT value FROM pacsgw_meta WHERE name = 'kek_check') = $6::text "
        "AND NOT EXISTS (SELECT 1 FROM pacsgw_shredded_keys WHERE scope = $2::text AND scope_uid = $3::text) "
        "ON CONFLICT (scope, scope_uid) DO NOTHING",
        {id, std::string(toString(scope)), scopeUid, bytesAsString(wrapped), utcNowIso8601(),
         hexOf(master_->checkValue()), std::to_string(master_->wrapFormat())},
        {3});
    (void)insert;
    std::vector<std::uint8_t> storedWrap;
    found = findByScope(scope, scopeUid, &storedWrap);
    if (!found) {
      throw KeystoreError(where_ + ": a new data key could not be stored (the master key was rotated by another "
                                   "process, or the study was shredded meanwhile)");
    }
    // Our fresh id in the row: our insert won (the replica that lost the race reads the winner's row).
    if (created != nullptr) *created = found->id == id;
    // Durably escrowed before anyone can encrypt with it; the replica that lost an insert race journals
    // the winner's row too, which is harmless (the same blob).
    escrow(*found, storedWrap);
  }
  cache_.put(*found);
  return std::move(*found);
}

DataKey PgKeystore::get(const std::string& keyId) {
  std::lock_guard<std::mutex> lock(mutex_);
  dropCacheIfChangedElsewhere(false);
  if (const DataKey* cached = cache_.findById(keyId)) return *cached;
  Result result = run("SELECT scope, scope_uid, wrapped, wrap_format FROM pacsgw_data_keys WHERE id = $1", {keyId});
  if (result.rows() == 0) {
    if (idShredded(keyId)) {
      throw KeyDestroyedError("data key " + keyId + " was destroyed on purpose (keys shred); the objects encrypted "
                              "under it cannot be decrypted any more");
    }
    throw KeystoreError("data key " + keyId + " is not in " + where_);
  }
  KeyScope scope;
  try {
    scope = keyScopeFromString(result.text(0, 0));
  } catch (const KeystoreError&) {
    throw KeystoreError("data key " + keyId + " in " + where_ + " has an unknown scope; the row is damaged");
  }
  DataKey key = unwrapRow(keyId, scope, result.text(0, 1), result.bytes(0, 2), std::atoi(result.text(0, 3).c_str()));
  cache_.put(key);
  return key;
}

DataKey PgKeystore::importKey(const DataKey& key) {
  std::lock_guard<std::mutex> lock(mutex_);
  dropCacheIfChangedElsewhere(false);
  std::vector<std::uint8_t> storedWrap;
  std::optional<DataKey> found = findByScope(key.scope, key.scopeUid, &storedWrap);
  if (!found) {
    const std::vector<std::optional<std::string>> scopeParams{std::string(toString(key.scope)), key.scopeUid};
    if (run("SELECT 1 FROM pacsgw_shredded_keys WHERE scope = $1 AND scope_uid = $2", scopeParams).rows() > 0 ||
        idShredded(key.id)) {
      throw KeyDestroyedError(std::string("the data key of ") + toString(key.scope) + " " + printable(key.scopeUid) +
                              " was destroyed on purpose here (keys shred); it is not imported again");
    }
    if (run("SELECT 1 FROM pacsgw_data_keys WHERE id = $1", {key.id}).rows() > 0) {
      throw KeyConflictError("data key id " + key.id + " already belongs to another scope in " + where_ + "; refused");
    }
    const std::vector<std::uint8_t> wrapped = master_->wrapForRow(key.id, key.scope, key.scopeUid, key.key);
    Result insert = run(
        "INSERT INTO pacsgw_data_keys (id, scope, scope_uid, wrapped, created_at, wrap_format) "
        "SELECT $1::text, $2::text, $3::text, $4::bytea, $5::text, $7::integer "
        "WHERE (SELECT value FROM pacsgw_meta WHERE name = 'kek_check') = $6::text "
        "AND NOT EXISTS (SELECT 1 FROM pacsgw_shredded_keys WHERE scope = $2::text AND scope_uid = $3::text) "
        "ON CONFLICT DO NOTHING",
        {key.id, std::string(toString(key.scope)), key.scopeUid, bytesAsString(wrapped), utcNowIso8601(),
         hexOf(master_->checkValue()), std::to_string(master_->wrapFormat())},
        {3});
    (void)insert;
    found = findByScope(key.scope, key.scopeUid, &storedWrap);
    if (!found) throw KeystoreError(where_ + ": the imported data key could not be stored");
  }
  if (found->id != key.id || found->key.size() != key.key.size() ||
      CRYPTO_memcmp(found->key.data(), key.key.data(), key.key.size()) != 0) {
    throw KeyConflictError("this keystore already holds another data key (" + found->id + ") for " +
                           toString(key.scope) + " " + printable(key.scopeUid) + "; the imported key " + key.id +
                           " would fork it, refused");
  }
  escrow(*found, storedWrap);
  cache_.put(*found);
  return std::move(*found);
}

bool PgKeystore::hasKeyFor(KeyScope scope, const std::string& scopeUid) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::vector<std::optional<std::string>> params{std::string(toString(scope)), scopeUid};
  return run("SELECT 1 FROM pacsgw_data_keys WHERE scope = $1 AND scope_uid = $2", params).rows() > 0 ||
         run("SELECT 1 FROM pacsgw_shredded_keys WHERE scope = $1 AND scope_uid = $2", params).rows() > 0;
}

bool PgKeystore::contains(const std::string& keyId) {
  std::lock_guard<std::mutex> lock(mutex_);
  return run("SELECT 1 FROM pacsgw_data_keys WHERE id = $1", {keyId}).rows() > 0;
}

std::vector<KeyInfo> PgKeystore::list() {
  std::lock_guard<std::mutex> lock(mutex_);
  Result result = run("SELECT id, scope, scope_uid, created_at FROM pacsgw_data_keys ORDER BY created_at, id", {});
  std::vector<KeyInfo> out;
  for (int r = 0; r < result.rows(); ++r) {
    KeyInfo info;
    info.id = result.text(r, 0);
    try {
      info.scope = keyScopeFromString(result.text(r, 1));
    } catch (const KeystoreError&) {
      throw KeystoreError("data key " + printable(info.id) + " in " + where_ + " has an unknown scope");
    }
    info.scopeUid = result.text(r, 2);
    info.createdAt = result.text(r, 3);
    out.push_back(std::move(info));
  }
  return out;
}

std::vector<DamagedKey> PgKeystore::verify() {
  std::lock_guard<std::mutex> lock(mutex_);
  Result result =
      run("SELECT id, scope, scope_uid, wrapped, wrap_format FROM pacsgw_data_keys ORDER BY created_at, id", {});
  std::vector<DamagedKey> damaged;
  for (int r = 0; r < result.rows(); ++r) {
    const std::string id = result.text(r, 0), scope = result.text(r, 1), uid = result.text(r, 2);
    try {
      if (!looksLikeUuid(id)) throw KeystoreError("malformed key id");
      unwrapRow(id, keyScopeFromString(scope), uid, result.bytes(r, 3), std::atoi(result.text(r, 4).c_str()));
    } catch (const KeystoreError& e) {
      damaged.push_back(DamagedKey{printable(id), printable(scope), printable(uid, 200), e.what()});
    }
  }
  return damaged;
}

void PgKeystore::rotateMasterKey(std::unique_ptr<MasterKeyProvider> newMaster) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::vector<std::uint8_t> newCheck = newMaster->checkValue();
  if (sameBytes(newCheck, master_->checkValue())) throw KeystoreError("the new master key is the current one");
  command("BEGIN");
  try {
    Result rows =
        run("SELECT id, scope, scope_uid, wrapped, wrap_format FROM pacsgw_data_keys ORDER BY id FOR UPDATE", {});
    for (int r = 0; r < rows.rows(); ++r) {
      const std::string id = rows.text(r, 0);
      DataKey key;
      try {
        key = unwrapRow(id, keyScopeFromString(rows.text(r, 1)), rows.text(r, 2), rows.bytes(r, 3),
                        std::atoi(rows.text(r, 4).c_str()));
      } catch (const KeystoreError& e) {
        throw KeystoreError("data key " + printable(id) + " cannot be re-wrapped: " + e.what() +
                            "; nothing was changed (see `pacsgw keys verify`)");
      }
      const auto wrapped = newMaster->wrapForRow(key.id, key.scope, key.scopeUid, key.key);
      Result update = run("UPDATE pacsgw_data_keys SET wrapped = $1::bytea, wrap_format = $3::integer WHERE id = $2::text",
                          {bytesAsString(wrapped), id, std::to_string(newMaster->wrapFormat())}, {0});
      if (update.affected() != 1) throw error("re-wrap data key " + id);
    }
    Result check = run("UPDATE pacsgw_meta SET value = $1 WHERE name = 'kek_check'", {hexOf(newCheck)});
    if (check.affected() != 1) throw error("record the new master key check value");
    bumpGeneration();
    command("COMMIT");
  } catch (...) {
    PGresult* raw = PQexec(conn_, "ROLLBACK");
    PQclear(raw);
    throw;
  }
  master_ = std::move(newMaster);
  cache_.clear();
  reconcileEscrow();  // rewrites every entry under the new master key
  if (!options_.anchorPath.empty()) {
    writeAnchor(options_.anchorPath, Anchor{report_.keystoreId, newCheck});
  }
}

std::string PgKeystore::shred(KeyScope scope, const std::string& scopeUid) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string id;
  command("BEGIN");
  try {
    Result row = run("SELECT id FROM pacsgw_data_keys WHERE scope = $1 AND scope_uid = $2 FOR UPDATE",
                     {std::string(toString(scope)), scopeUid});
    if (row.rows() > 0) {
      id = row.text(0, 0);
      Result tomb = run(
          "INSERT INTO pacsgw_shredded_keys (id, scope, scope_uid, shredded_at) VALUES ($1, $2, $3, $4)",
          {id, std::string(toString(scope)), scopeUid, utcNowIso8601()});
      Result del = run("DELETE FROM pacsgw_data_keys WHERE id = $1", {id});
      if (tomb.affected() != 1 || del.affected() != 1) throw error("destroy data key " + id);
      bumpGeneration();
    }
    command("COMMIT");
  } catch (...) {
    PGresult* raw = PQexec(conn_, "ROLLBACK");
    PQclear(raw);
    throw;
  }
  cache_.clear();
  if (escrow_) escrow_->remove(scope, scopeUid);
  if (!id.empty()) {
    // Dead row versions stay in the table's pages until vacuumed; VACUUM cannot run in a transaction.
    PGresult* raw = PQexec(conn_, "VACUUM pacsgw_data_keys");
    PQclear(raw);
  }
  return id;
}

bool PgKeystore::isShredded(const std::string& keyId) {
  std::lock_guard<std::mutex> lock(mutex_);
  return idShredded(keyId);
}

}  // namespace pacsgw::keystore::detail
