// SQLite-backed store of wrapped data keys.
//
// Layout (schema version 2):
//   meta(name TEXT PRIMARY KEY, value)   -- 'schema_version' (integer), 'kek_check' (32-byte blob),
//                                           'keystore_id' (UUID text, also recorded in the anchor file)
//   data_keys(id, scope, scope_uid, wrapped, created_at, wrap_format, UNIQUE(scope, scope_uid))
//   shredded_keys(id, scope, scope_uid, shredded_at)   -- tombstones: the key is gone, on purpose
// The key-check value is HMAC-SHA-256 of a fixed label under the master key: it tells a wrong master key
// apart from a damaged store without revealing anything about the key.
// wrap_format 2 binds each wrapped key to its row (see wrapKeyForRow). Version 1 stores (format 1:
// plain RFC 5649 wrap under the master key) are migrated on open, in one transaction.
#include "keystore/keystore.h"
#include "gateway/metrics/registry.h"
#include "keystore/escrow_journal.h"
#include "keystore/key_cache.h"
#include "keystore/keystore_internal.h"
#include "keystore/master_key_provider.h"
#include "keystore/pg_keystore.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <sqlite3.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>

namespace pacsgw::keystore {

namespace {

constexpr int kSchemaVersion = 2;
constexpr std::size_t kCheckBytes = 32;
constexpr int kDiagnosisRows = 16;  // rows trial-unwrapped to tell a damaged check value from a wrong key
constexpr std::size_t kCacheCapacity = 4096;  // ~4096 studies in flight; each entry is well under 1 KiB
constexpr int kBusyTimeoutMs = 10000;         // another gateway process may hold the write lock briefly
constexpr std::size_t kMaxScopeUidBytes = 1024;

bool sameBytes(const std::vector<std::uint8_t>& a, const std::vector<std::uint8_t>& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// A keystore file that holds nothing yet: absent or zero bytes.
bool fileIsAbsentOrEmpty(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return errno == ENOENT;
  return S_ISREG(info.st_mode) && info.st_size == 0;
}

struct DbClose {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using DbPtr = std::unique_ptr<sqlite3, DbClose>;

// A prepared statement that is reset (and its bindings cleared) each time it is borrowed.
class Statement {
 public:
  Statement() = default;
  Statement(sqlite3* db, const char* sql, const std::string& path) {
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) != SQLITE_OK) {
      const std::string reason = sqlite3_errmsg(db);
      sqlite3_finalize(stmt_);
      stmt_ = nullptr;
      throw KeystoreError("keystore " + path + " does not have the expected schema (" + reason +
                          "); it was not created by this version of pacsgw or it is damaged");
    }
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(Statement&& other) noexcept : stmt_(other.stmt_) { other.stmt_ = nullptr; }
  Statement& operator=(Statement&& other) noexcept {
    std::swap(stmt_, other.stmt_);
    return *this;
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  class Use {
   public:
    explicit Use(sqlite3_stmt* stmt) : stmt_(stmt) {}
    ~Use() {
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
    }
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;
    sqlite3_stmt* operator*() const { return stmt_; }

   private:
    sqlite3_stmt* stmt_;
  };
  Use use() { return Use(stmt_); }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

std::string columnText(sqlite3_stmt* stmt, int column) {
  if (sqlite3_column_type(stmt, column) != SQLITE_TEXT) return {};
  const auto* text = sqlite3_column_text(stmt, column);
  const int length = sqlite3_column_bytes(stmt, column);
  return text == nullptr ? std::string()
                         : std::string(reinterpret_cast<const char*>(text), static_cast<std::size_t>(length));
}

std::vector<std::uint8_t> columnBlob(sqlite3_stmt* stmt, int column) {
  if (sqlite3_column_type(stmt, column) != SQLITE_BLOB) return {};
  const auto* data = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt, column));
  const int length = sqlite3_column_bytes(stmt, column);
  if (data == nullptr || length <= 0) return {};
  return std::vector<std::uint8_t>(data, data + length);
}

void bindText(sqlite3_stmt* stmt, int index, const std::string& text) {
  sqlite3_bind_text(stmt, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
}

void validateScopeUid(const std::string& scopeUid) {
  if (scopeUid.empty()) throw KeystoreError("a data key needs a non-empty scope UID");
  if (scopeUid.size() > kMaxScopeUidBytes) {
    throw KeystoreError("scope UID is too long (" + std::to_string(scopeUid.size()) + " bytes)");
  }
  if (scopeUid.find('\0') != std::string::npos) throw KeystoreError("scope UID contains a NUL byte");
}

}  // namespace

const char* toString(KeyScope scope) {
  switch (scope) {
    case KeyScope::Study: return "study";
    case KeyScope::Series: return "series";
    case KeyScope::Instance: return "instance";
  }
  return "unknown";
}

KeyScope keyScopeFromString(const std::string& text) {
  if (text == "study") return KeyScope::Study;
  if (text == "series") return KeyScope::Series;
  if (text == "instance") return KeyScope::Instance;
  throw KeystoreError("unknown key scope '" + detail::printable(text) + "' (expected study, series or instance)");
}

// The SQLite keystore's tables (also written by backupTo() for a PostgreSQL keystore).
constexpr const char* kSqliteSchema =
    "CREATE TABLE meta (name TEXT PRIMARY KEY NOT NULL, value NOT NULL);"
    "CREATE TABLE data_keys ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  scope TEXT NOT NULL,"
    "  scope_uid TEXT NOT NULL,"
    "  wrapped BLOB NOT NULL,"
    "  created_at TEXT NOT NULL,"
    "  wrap_format INTEGER NOT NULL DEFAULT 1,"
    "  UNIQUE (scope, scope_uid));"
    "CREATE TABLE shredded_keys ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  scope TEXT NOT NULL,"
    "  scope_uid TEXT NOT NULL,"
    "  shredded_at TEXT NOT NULL,"
    "  UNIQUE (scope, scope_uid));";

struct Keystore::Impl {
  std::string path;
  std::unique_ptr<MasterKeyProvider> master;
  OpenOptions options;
  OpenReport report;
  std::optional<Anchor> anchor;  // as read before opening
  std::optional<EscrowJournal> escrow;
  DbPtr db;  // declared before the statements so it is closed after they are finalized
  Statement selectByScope;
  Statement selectById;
  Statement existsById;
  Statement insertKey;
  Statement listKeys;
  Statement selectShredded;
  Statement selectShreddedScope;
  Statement dataVersion;
  sqlite3_int64 lastDataVersion = -1;
  std::mutex mutex;  // serialises every use of `db`, the statements and the cache
  detail::KeyCache cache{kCacheCapacity};

  KeystoreError sqliteError(const std::string& what) const {
    return KeystoreError("keystore " + path + ": " + what + " failed: " + sqlite3_errmsg(db.get()));
  }

  // Turns an SQLite failure during open into a message an operator can act on.
  [[noreturn]] void failOpen(int rc, const std::string& what) const {
    const int primary = rc & 0xff;
    if (primary == SQLITE_NOTADB) {
      throw KeystoreError("keystore " + path +
                          " is not a valid SQLite database (damaged, truncated or a different kind of file); "
                          "refusing to start. Restore it from a backup; do not delete it, or every key in it is lost");
    }
    if (primary == SQLITE_CORRUPT) {
      throw KeystoreError("keystore " + path + " is corrupted (" + sqlite3_errmsg(db.get()) +
                          "); refusing to start. Restore it from a backup");
    }
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
      throw KeystoreError("keystore " + path + " is locked by another process (waited " +
                          std::to_string(kBusyTimeoutMs / 1000) + " s)");
    }
    throw KeystoreError("cannot open keystore " + path + ": " + what + ": " + sqlite3_errmsg(db.get()));
  }

  void exec(const char* sql, const std::string& what) const {
    const int rc = sqlite3_exec(db.get(), sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) failOpen(rc, what);
  }

  // Runs a single-column pragma and returns its rows as text.
  std::vector<std::string> pragmaRows(const char* sql, const std::string& what) const {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db.get(), sql, -1, &raw, nullptr);
    if (rc != SQLITE_OK) failOpen(rc, what);
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> stmt(raw, sqlite3_finalize);
    std::vector<std::string> rows;
    while ((rc = sqlite3_step(raw)) == SQLITE_ROW) {
      const auto* text = sqlite3_column_text(raw, 0);
      rows.emplace_back(text == nullptr ? "" : reinterpret_cast<const char*>(text));
    }
    if (rc != SQLITE_DONE) failOpen(rc, what);
    return rows;
  }

  void openDatabase() {
    const std::filesystem::path fsPath(path);
    std::filesystem::path parent = fsPath.parent_path();
    if (parent.empty()) parent = ".";
    std::error_code ec;
    if (!std::filesystem::is_directory(parent, ec)) {
      throw KeystoreError("cannot open keystore " + path + ": directory " + parent.string() + " does not exist");
    }
    struct stat info {};
    if (::stat(path.c_str(), &info) == 0) {
      if (!S_ISREG(info.st_mode)) throw KeystoreError("keystore " + path + " is not a regular file");
    } else if (errno == ENOENT) {
      // Create it ourselves so it starts private; SQLite gives its -wal/-shm files the same mode.
      const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
      if (fd >= 0) {
        ::close(fd);
      } else if (errno != EEXIST) {
        throw KeystoreError("cannot create keystore " + path + ": " + std::strerror(errno));
      }
    }

    sqlite3* raw = nullptr;
    const int rc = sqlite3_open_v2(path.c_str(), &raw,
                                   SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
    db.reset(raw);  // SQLite returns a handle even on failure; it must be closed either way
    if (rc != SQLITE_OK) failOpen(rc, "open");
    sqlite3_busy_timeout(db.get(), kBusyTimeoutMs);
    sqlite3_extended_result_codes(db.get(), 1);

    // The first statement that reads the file tells a non-database apart.
    const std::vector<std::string> mode = pragmaRows("PRAGMA journal_mode=WAL", "enable WAL");
    if (mode.size() != 1 || mode[0] != "wal") {
      throw KeystoreError("keystore " + path + ": cannot switch to WAL journal mode (is the file on a network share?)");
    }
    // A data key must be on disk before any instance encrypted with it leaves the gateway.
    exec("PRAGMA synchronous=FULL", "set synchronous");
    // Deleted wrapped keys are overwritten rather than left in free pages.
    exec("PRAGMA secure_delete=ON", "set secure_delete");

    const std::vector<std::string> check = pragmaRows("PRAGMA quick_check", "integrity check");
    if (check.size() != 1 || check[0] != "ok") {
      std::string first = check.empty() ? std::string("no result") : check[0];
      std::replace(first.begin(), first.end(), '\n', ' ');
      throw KeystoreError("keystore " + path + " failed its integrity check (" + detail::printable(first, 200) +
                          "); refusing to start. Restore it from a backup");
    }
  }

  // Runs a one-row statement with text/blob bindings; returns false if it produced no row.
  void execBound(const char* sql, const std::function<void(sqlite3_stmt*)>& bind, const std::string& what) {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(db.get(), sql, -1, &raw, nullptr) != SQLITE_OK) throw sqliteError("prepare " + what);
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> stmt(raw, sqlite3_finalize);
    bind(raw);
    if (sqlite3_step(raw) != SQLITE_DONE) throw sqliteError(what);
  }

  // Refuses, before the file is touched, a keystore that the anchor says was in use but is now gone.
  void checkAnchorBeforeOpen() {
    if (options.anchorPath.empty()) return;
    anchor = readAnchor(options.anchorPath);
    if (anchor && !options.acceptNewKeystore && fileIsAbsentOrEmpty(path)) {
      throw KeystoreError(refusedEmptyMessage(std::filesystem::exists(path) ? "is an empty (0-byte) file"
                                                                            : "does not exist"));
    }
  }

  std::string refusedEmptyMessage(const std::string& state) const {
    return "keystore " + path + " " + state + ", but the anchor " + options.anchorPath + " records that keystore " +
           anchor->keystoreId +
           " was in use: its data keys would be lost and new ones issued for studies that already have one. "
           "Refusing to start. Restore the keystore (with its -wal file, if any) from a backup, or recover it "
           "(see docs/key-custody.md); to deliberately start an empty keystore, run once with "
           "--accept-new-keystore";
  }

  // Creates the schema in an empty file, or verifies (and migrates) an existing one.
  void initialiseOrVerify() {
    exec("BEGIN IMMEDIATE", "begin transaction");
    try {
      const std::vector<std::string> tables =
          pragmaRows("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name", "read schema");
      if (tables.empty()) {
        if (anchor && !options.acceptNewKeystore) {
          throw KeystoreError(refusedEmptyMessage(
              "has no tables (emptied, or copied without its -wal file while keys were only in the WAL)"));
        }
        createSchema();
        report.createdNewKeystore = true;
        report.replacedAnchoredKeystore = anchor.has_value();
      } else if (std::find(tables.begin(), tables.end(), "meta") == tables.end() ||
                 std::find(tables.begin(), tables.end(), "data_keys") == tables.end()) {
        throw KeystoreError("keystore " + path +
                            " is an SQLite database but not a pacsgw keystore (no meta/data_keys tables); refusing to "
                            "use it. Check keystore.path in the configuration");
      } else {
        verifyExisting();
      }
      exec("COMMIT", "commit");
    } catch (...) {
      sqlite3_exec(db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }

  void createSchema() {
    exec(kSqliteSchema, "create schema");
    const std::vector<std::uint8_t> kcv = master->checkValue();
    report.keystoreId = detail::newUuidV4();
    execBound(
        "INSERT INTO meta (name, value) VALUES ('schema_version', ?1), ('kek_check', ?2), ('keystore_id', ?3)",
        [&](sqlite3_stmt* st) {
          sqlite3_bind_int(st, 1, kSchemaVersion);
          sqlite3_bind_blob(st, 2, kcv.data(), static_cast<int>(kcv.size()), SQLITE_TRANSIENT);
          bindText(st, 3, report.keystoreId);
        },
        "write meta");
  }

  struct Meta {
    std::optional<sqlite3_int64> version;
    std::vector<std::uint8_t> kekCheck;
    std::string keystoreId;
  };

  Meta readMeta() {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(db.get(), "SELECT name, value FROM meta", -1, &raw, nullptr) != SQLITE_OK) {
      throw KeystoreError("keystore " + path + " has an unexpected meta table (" + sqlite3_errmsg(db.get()) + ")");
    }
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> stmt(raw, sqlite3_finalize);
    Meta meta;
    int rc;
    while ((rc = sqlite3_step(raw)) == SQLITE_ROW) {
      const std::string name = columnText(raw, 0);
      if (name == "schema_version" && sqlite3_column_type(raw, 1) == SQLITE_INTEGER) {
        meta.version = sqlite3_column_int64(raw, 1);
      } else if (name == "kek_check") {
        meta.kekCheck = columnBlob(raw, 1);
      } else if (name == "keystore_id") {
        meta.keystoreId = columnText(raw, 1);
      }
    }
    if (rc != SQLITE_DONE) failOpen(rc, "read meta");
    return meta;
  }

  void verifyExisting() {
    Meta meta = readMeta();
    if (!meta.version)
      throw KeystoreError("keystore " + path + " has no schema version; it is damaged or not a pacsgw keystore");
    if (*meta.version != 1 && *meta.version != kSchemaVersion) {
      throw KeystoreError("keystore " + path + " has schema version " + std::to_string(*meta.version) +
                          "; this pacsgw supports versions 1 and " + std::to_string(kSchemaVersion) +
                          (*meta.version > kSchemaVersion ? " (it was written by a newer pacsgw)" : ""));
    }
    const int version = static_cast<int>(*meta.version);
    verifyMasterKey(meta, version);
    if (version == 1) {
      migrateFromVersion1();
      meta.keystoreId = report.keystoreId;
    } else if (!detail::looksLikeUuid(meta.keystoreId)) {
      throw KeystoreError("keystore " + path + " has a missing or malformed keystore id; it is damaged");
    }
    report.keystoreId = meta.keystoreId;
    if (anchor && anchor->keystoreId != meta.keystoreId && !options.acceptNewKeystore) {
      throw KeystoreError("keystore " + path + " (id " + meta.keystoreId + ") is not the keystore recorded in the anchor " +
                          options.anchorPath + " (id " + anchor->keystoreId +
                          "): another installation's keystore, or a new one created meanwhile. Refusing to start. "
                          "Put the right keystore back; to deliberately switch to this one, run once with "
                          "--accept-new-keystore");
    }
  }

  // Compares the stored check value with the master key's; on a mismatch, tells a damaged check value
  // (the master key still unwraps stored data keys, or matches the anchor) from a wrong master key.
  void verifyMasterKey(const Meta& meta, int version) {
    const std::vector<std::uint8_t> expected = master->checkValue();
    if (sameBytes(expected, meta.kekCheck)) return;
    const bool unwrapsRows = masterKeyUnwrapsStoredRows(version);
    const bool matchesAnchor = anchor && sameBytes(anchor->kekCheck, expected) &&
                               (meta.keystoreId.empty() || anchor->keystoreId == meta.keystoreId);
    if (unwrapsRows || matchesAnchor) {
      if (options.repairCheckValue && unwrapsRows) {
        execBound(
            "INSERT OR REPLACE INTO meta (name, value) VALUES ('kek_check', ?1)",
            [&](sqlite3_stmt* st) {
              sqlite3_bind_blob(st, 1, expected.data(), static_cast<int>(expected.size()), SQLITE_TRANSIENT);
            },
            "repair the master key check value");
        report.repairedCheckValue = true;
        return;
      }
      throw KeystoreError(
          "the master key check value stored in keystore " + path + " is " +
          (meta.kekCheck.empty() ? "missing" : "damaged") + "; the configured master key is correct (" +
          (unwrapsRows ? "it unwraps the stored data keys" : "it matches the anchor " + options.anchorPath) +
          "). Refusing to start. Check the disk, then repair with `pacsgw keys verify --repair-check-value`");
    }
    if (meta.kekCheck.size() != kCheckBytes) {
      throw KeystoreError("keystore " + path + " has a missing or malformed master key check value; it is damaged "
                          "(and the configured master key unwraps none of its data keys)");
    }
    throw KeystoreError("master key does not match this keystore (" + path +
                        "); refusing to start. Use the master key this keystore was created with (configured: " +
                        master->describe() + ")");
  }

  bool masterKeyUnwrapsStoredRows(int version) {
    const std::string sql = std::string("SELECT id, scope, scope_uid, wrapped") +
                            (version >= 2 ? ", wrap_format" : ", 1") + " FROM data_keys LIMIT " +
                            std::to_string(kDiagnosisRows);
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(db.get(), sql.c_str(), -1, &raw, nullptr) != SQLITE_OK) return false;
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> stmt(raw, sqlite3_finalize);
    while (sqlite3_step(raw) == SQLITE_ROW) {
      try {
        const SecretBytes key = unwrapStored(columnText(raw, 0), keyScopeFromString(columnText(raw, 1)),
                                             columnText(raw, 2), columnBlob(raw, 3), sqlite3_column_int(raw, 4));
        if (key.size() == detail::kDataKeyBytes) return true;
      } catch (const KeystoreError&) {
      }
    }
    return false;
  }

  SecretBytes unwrapStored(const std::string& id, KeyScope scope, const std::string& scopeUid,
                           const std::vector<std::uint8_t>& wrapped, int format) const {
    if (format == master->wrapFormat()) return master->unwrapForRow(id, scope, scopeUid, wrapped);
    if (format == 1 && master->rawKey() != nullptr) return unwrapKey(*master->rawKey(), wrapped);
    throw KeystoreError("wrap format " + std::to_string(format) + " is not the format of the configured master key (" +
                        master->describe() + ", format " + std::to_string(master->wrapFormat()) + ")");
  }

  // Version 1 -> 2: adds the keystore id, the tombstone table and re-wraps every key bound to its row.
  void migrateFromVersion1() {
    if (master->rawKey() == nullptr) {
      throw KeystoreError("keystore " + path + " has schema version 1, which only a file or environment master key can "
                          "migrate; open it once with that master key, then rotate to " + master->describe());
    }
    exec("ALTER TABLE data_keys ADD COLUMN wrap_format INTEGER NOT NULL DEFAULT 1;"
         "CREATE TABLE shredded_keys ("
         "  id TEXT PRIMARY KEY NOT NULL,"
         "  scope TEXT NOT NULL,"
         "  scope_uid TEXT NOT NULL,"
         "  shredded_at TEXT NOT NULL,"
         "  UNIQUE (scope, scope_uid));",
         "migrate schema");
    rewrapAllRows(*master, /*onlyFormat1=*/true);
    report.keystoreId = detail::newUuidV4();
    execBound(
        "INSERT OR REPLACE INTO meta (name, value) VALUES ('schema_version', ?1), ('keystore_id', ?2)",
        [&](sqlite3_stmt* st) {
          sqlite3_bind_int(st, 1, kSchemaVersion);
          bindText(st, 2, report.keystoreId);
        },
        "write migrated meta");
    report.migrated = true;
  }

  // Re-wraps rows (inside the caller's transaction) under `newKek` in the row-bound format. A row that
  // does not unwrap aborts the whole operation: nothing is half re-wrapped.
  void rewrapAllRows(const MasterKeyProvider& newMaster, bool onlyFormat1) {
    struct Row {
      std::string id;
      KeyScope scope;
      std::string uid;
      std::vector<std::uint8_t> wrapped;
    };
    std::vector<Row> rows;
    {
      sqlite3_stmt* raw = nullptr;
      const char* sql = onlyFormat1 ? "SELECT id, scope, scope_uid, wrapped, wrap_format FROM data_keys WHERE wrap_format = 1"
                                    : "SELECT id, scope, scope_uid, wrapped, wrap_format FROM data_keys";
      if (sqlite3_prepare_v2(db.get(), sql, -1, &raw, nullptr) != SQLITE_OK) throw sqliteError("read keys to re-wrap");
      std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> stmt(raw, sqlite3_finalize);
      int rc;
      while ((rc = sqlite3_step(raw)) == SQLITE_ROW) {
        const std::string id = columnText(raw, 0);
        const std::string scopeText = columnText(raw, 1);
        const std::string uid = columnText(raw, 2);
        KeyScope scope;
        SecretBytes key;
        try {
          scope = keyScopeFromString(scopeText);
          key = unwrapStored(id, scope, uid, columnBlob(raw, 3), sqlite3_column_int(raw, 4));
        } catch (const KeystoreError& e) {
          throw KeystoreError("data key " + detail::printable(id) + " in keystore " + path +
                              " cannot be re-wrapped: " + e.what() + "; nothing was changed (see `pacsgw keys verify`)");
        }
        rows.push_back(Row{id, scope, uid, newMaster.wrapForRow(id, scope, uid, key)});
      }
      if (rc != SQLITE_DONE) throw sqliteError("read keys to re-wrap");
    }
    for (const Row& row : rows) {
      execBound(
          "UPDATE data_keys SET wrapped = ?1, wrap_format = ?2 WHERE id = ?3",
          [&](sqlite3_stmt* st) {
            sqlite3_bind_blob(st, 1, row.wrapped.data(), static_cast<int>(row.wrapped.size()), SQLITE_TRANSIENT);
            sqlite3_bind_int(st, 2, newMaster.wrapFormat());
            bindText(st, 3, row.id);
          },
          "re-wrap data key");
    }
  }

  // Records the open keystore in the anchor when it is new or differs (after a successful open only).
  void updateAnchor() {
    if (options.anchorPath.empty()) return;
    const Anchor current{report.keystoreId, master->checkValue()};
    if (anchor && anchor->keystoreId == current.keystoreId && sameBytes(anchor->kekCheck, current.kekCheck)) return;
    writeAnchor(options.anchorPath, current);
    anchor = current;
    report.anchorWritten = true;
  }

  void prepareStatements() {
    sqlite3* h = db.get();
    selectByScope =
        Statement(h, "SELECT id, wrapped, wrap_format FROM data_keys WHERE scope = ?1 AND scope_uid = ?2", path);
    selectById = Statement(h, "SELECT scope, scope_uid, wrapped, wrap_format FROM data_keys WHERE id = ?1", path);
    existsById = Statement(h, "SELECT 1 FROM data_keys WHERE id = ?1", path);
    // A racing writer (another thread's connection or another process) may have inserted the same scope
    // first: keep its row, then read back whichever row won. The guard on kek_check stops a process that
    // still holds a rotated-away master key from adding rows nobody could unwrap.
    insertKey = Statement(h,
                          "INSERT INTO data_keys (id, scope, scope_uid, wrapped, created_at, wrap_format) "
                          "SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE (SELECT value FROM meta WHERE name = 'kek_check') = ?7 "
                          "AND NOT EXISTS (SELECT 1 FROM shredded_keys WHERE scope = ?2 AND scope_uid = ?3) "
                          "ON CONFLICT (scope, scope_uid) DO NOTHING",
                          path);
    listKeys = Statement(h, "SELECT id, scope, scope_uid, created_at FROM data_keys ORDER BY created_at, id", path);
    selectShredded = Statement(h, "SELECT 1 FROM shredded_keys WHERE id = ?1", path);
    selectShreddedScope = Statement(h, "SELECT id FROM shredded_keys WHERE scope = ?1 AND scope_uid = ?2", path);
    dataVersion = Statement(h, "PRAGMA data_version", path);
  }

  // Another process (a `pacsgw keys` command, another replica) committed: cached keys may be stale
  // (shredded or re-wrapped), so start over from the database.
  void dropCacheIfChangedElsewhere() {
    auto stmt = dataVersion.use();
    if (sqlite3_step(*stmt) != SQLITE_ROW) throw sqliteError("read data version");
    const sqlite3_int64 version = sqlite3_column_int64(*stmt, 0);
    if (version != lastDataVersion) {
      cache.clear();
      lastDataVersion = version;
    }
  }

  DataKey unwrapRow(const std::string& id, KeyScope scope, const std::string& scopeUid,
                    const std::vector<std::uint8_t>& wrapped, int format) const {
    DataKey out{id, scope, scopeUid, SecretBytes()};
    if (format != master->wrapFormat()) {
      throw KeystoreError("data key " + id + " in keystore " + path + " has wrap format " + std::to_string(format) +
                          " instead of format " + std::to_string(master->wrapFormat()) + " of the configured " +
                          master->describe() + "; the row is damaged");
    }
    try {
      out.key = master->unwrapForRow(id, scope, scopeUid, wrapped);
    } catch (const KeystoreError& e) {
      throw KeystoreError("data key " + id + " in keystore " + path + " failed to unwrap: " + e.what());
    }
    if (out.key.size() != detail::kDataKeyBytes) {
      throw KeystoreError("data key " + id + " in keystore " + path + " unwrapped to " +
                          std::to_string(out.key.size()) + " bytes instead of 32; the row is damaged");
    }
    return out;
  }

  bool scopeShredded(KeyScope scope, const std::string& scopeUid, std::string* id = nullptr) {
    auto stmt = selectShreddedScope.use();
    bindText(*stmt, 1, toString(scope));
    bindText(*stmt, 2, scopeUid);
    const int rc = sqlite3_step(*stmt);
    if (rc == SQLITE_ROW) {
      if (id != nullptr) *id = columnText(*stmt, 0);
      return true;
    }
    if (rc != SQLITE_DONE) throw sqliteError("look up destroyed keys");
    return false;
  }

  bool idShredded(const std::string& keyId) {
    auto stmt = selectShredded.use();
    bindText(*stmt, 1, keyId);
    const int rc = sqlite3_step(*stmt);
    if (rc == SQLITE_ROW) return true;
    if (rc != SQLITE_DONE) throw sqliteError("look up destroyed keys");
    return false;
  }

  // `storedWrap`, when given, receives the row's wrapped blob (what the escrow journal keeps).
  std::optional<DataKey> findByScope(KeyScope scope, const std::string& scopeUid,
                                     std::vector<std::uint8_t>* storedWrap = nullptr) {
    auto stmt = selectByScope.use();
    bindText(*stmt, 1, toString(scope));
    bindText(*stmt, 2, scopeUid);
    const int rc = sqlite3_step(*stmt);
    if (rc == SQLITE_DONE) return std::nullopt;
    if (rc != SQLITE_ROW) throw sqliteError("look up data key");
    std::string id = columnText(*stmt, 0);
    if (!detail::looksLikeUuid(id)) {
      throw KeystoreError("keystore " + path + " holds a data key row with a malformed id ('" + detail::printable(id) +
                          "'); the row is damaged");
    }
    std::vector<std::uint8_t> wrapped = columnBlob(*stmt, 1);
    DataKey key = unwrapRow(id, scope, scopeUid, wrapped, sqlite3_column_int(*stmt, 2));
    if (storedWrap != nullptr) *storedWrap = std::move(wrapped);
    return key;
  }

  void insert(const std::string& id, KeyScope scope, const std::string& scopeUid,
              const std::vector<std::uint8_t>& wrapped) {
    const std::vector<std::uint8_t> kcv = master->checkValue();
    auto stmt = insertKey.use();
    bindText(*stmt, 1, id);
    bindText(*stmt, 2, toString(scope));
    bindText(*stmt, 3, scopeUid);
    sqlite3_bind_blob(*stmt, 4, wrapped.data(), static_cast<int>(wrapped.size()), SQLITE_TRANSIENT);
    bindText(*stmt, 5, detail::utcNowIso8601());
    sqlite3_bind_int(*stmt, 6, master->wrapFormat());
    sqlite3_bind_blob(*stmt, 7, kcv.data(), static_cast<int>(kcv.size()), SQLITE_TRANSIENT);
    if (sqlite3_step(*stmt) != SQLITE_DONE) throw sqliteError("store new data key");
  }

  // The journal keeps the row's own blob: a token wrap uses a random IV, so re-wrapping would
  // rewrite the entry on every look-up.
  EscrowRecord escrowRecordFor(const DataKey& key, const std::string& createdAt,
                               const std::vector<std::uint8_t>& storedWrap) const {
    return EscrowRecord{key.id, key.scope, key.scopeUid, createdAt, master->checkValue(), storedWrap};
  }

  // Makes the keystore and the escrow journal hold the same keys (see OpenOptions::escrowDirectory).
  void reconcileEscrow() {
    if (!escrow) return;
    struct Row {
      std::string id, scope, uid, createdAt;
      std::vector<std::uint8_t> wrapped;
      int format;
    };
    std::vector<Row> rows;
    {
      sqlite3_stmt* raw = nullptr;
      if (sqlite3_prepare_v2(db.get(), "SELECT id, scope, scope_uid, wrapped, wrap_format, created_at FROM data_keys",
                             -1, &raw, nullptr) != SQLITE_OK) {
        throw sqliteError("read data keys");
      }
      std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> stmt(raw, sqlite3_finalize);
      while (sqlite3_step(raw) == SQLITE_ROW) {
        rows.push_back(Row{columnText(raw, 0), columnText(raw, 1), columnText(raw, 2), columnText(raw, 5),
                           columnBlob(raw, 3), sqlite3_column_int(raw, 4)});
      }
    }
    std::map<std::string, const Row*> byId;
    std::map<std::string, const Row*> byScope;
    for (const Row& row : rows) {
      byId[row.id] = &row;
      byScope[row.scope + '\n' + row.uid] = &row;
    }
    const std::vector<std::uint8_t> currentCheck = master->checkValue();
    std::vector<EscrowRecord> toImport;
    std::vector<EscrowRecord> toRepair;
    for (EscrowRecord& record : escrow->all(&report.escrowProblems)) {
      const auto row = byId.find(record.id);
      const bool unwraps = [&] {
        if (!sameBytes(record.kekCheck, currentCheck)) return false;
        try {
          return master->unwrapForRow(record.id, record.scope, record.scopeUid, record.wrapped).size() ==
                 detail::kDataKeyBytes;
        } catch (const KeystoreError&) {
          return false;
        }
      }();
      if (row != byId.end()) {
        if (unwraps && row->second->wrapped != record.wrapped) toRepair.push_back(std::move(record));
        continue;
      }
      if (idShredded(record.id)) {  // a shred interrupted before the journal entry was removed
        escrow->remove(record.scope, record.scopeUid);
        continue;
      }
      const auto sameScope = byScope.find(std::string(toString(record.scope)) + '\n' + record.scopeUid);
      if (sameScope != byScope.end()) {
        report.escrowProblems.push_back("the escrow journal holds data key " + record.id + " for " +
                                        toString(record.scope) + " " + detail::printable(record.scopeUid) +
                                        " but the keystore holds another key (" + sameScope->second->id +
                                        ") for it: objects under both may exist; keep both files for the analysis");
        continue;
      }
      if (!unwraps) {
        report.escrowProblems.push_back("escrow entry for data key " + record.id +
                                        " does not unwrap under the configured master key (older master key, or "
                                        "damaged); not imported");
        continue;
      }
      toImport.push_back(std::move(record));
    }
    if (!toImport.empty() || !toRepair.empty()) {
      exec("BEGIN IMMEDIATE", "begin transaction");
      try {
        for (const EscrowRecord& r : toImport) {
          execBound(
              "INSERT INTO data_keys (id, scope, scope_uid, wrapped, created_at, wrap_format) "
              "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
              [&](sqlite3_stmt* st) {
                bindText(st, 1, r.id);
                bindText(st, 2, toString(r.scope));
                bindText(st, 3, r.scopeUid);
                sqlite3_bind_blob(st, 4, r.wrapped.data(), static_cast<int>(r.wrapped.size()), SQLITE_TRANSIENT);
                bindText(st, 5, r.createdAt.empty() ? detail::utcNowIso8601() : r.createdAt);
                sqlite3_bind_int(st, 6, master->wrapFormat());
              },
              "import data key from the escrow journal");
        }
        for (const EscrowRecord& r : toRepair) {
          execBound(
              "UPDATE data_keys SET wrapped = ?1, wrap_format = ?2, scope = ?3, scope_uid = ?4 WHERE id = ?5",
              [&](sqlite3_stmt* st) {
                sqlite3_bind_blob(st, 1, r.wrapped.data(), static_cast<int>(r.wrapped.size()), SQLITE_TRANSIENT);
                sqlite3_bind_int(st, 2, master->wrapFormat());
                bindText(st, 3, toString(r.scope));
                bindText(st, 4, r.scopeUid);
                bindText(st, 5, r.id);
              },
              "repair data key from the escrow journal");
        }
        exec("COMMIT", "commit");
      } catch (...) {
        sqlite3_exec(db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
      }
      report.importedFromEscrow = toImport.size();
      report.repairedFromEscrow = toRepair.size();
    }
    // Escrow every healthy row the journal lacks (or holds under an older master key).
    for (const Row& row : rows) {
      try {
        const KeyScope scope = keyScopeFromString(row.scope);
        const DataKey key = unwrapRow(row.id, scope, row.uid, row.wrapped, row.format);
        if (escrow->put(escrowRecordFor(key, row.createdAt, row.wrapped))) ++report.escrowed;
      } catch (const KeystoreError&) {
        // Damaged rows are named by verify(); a fork is already listed above.
      }
    }
  }

  // Truncates the WAL after copying it into the main file, so no old page version survives there.
  void checkpointTruncate(const std::string& what) {
    int logFrames = 0, checkpointed = 0;
    const int rc = sqlite3_wal_checkpoint_v2(db.get(), nullptr, SQLITE_CHECKPOINT_TRUNCATE, &logFrames, &checkpointed);
    if (rc != SQLITE_OK) throw sqliteError(what + ": WAL checkpoint (is another process reading the keystore?)");
  }
};

struct Keystore::Postgres {
  detail::PgKeystore store;
};

Keystore::Keystore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Keystore::Keystore(std::unique_ptr<Postgres> pg) : pg_(std::move(pg)) {}
Keystore::~Keystore() = default;

std::unique_ptr<Keystore> Keystore::openPostgres(const std::string& conninfo, SecretBytes masterKey,
                                                 const OpenOptions& options) {
  if (masterKey.size() != detail::kMasterKeyBytes) {
    throw KeystoreError("master key must be 32 bytes, got " + std::to_string(masterKey.size()));
  }
  return openPostgres(conninfo, softwareMasterKey(std::move(masterKey)), options);
}

std::unique_ptr<Keystore> Keystore::openPostgres(const std::string& conninfo,
                                                 std::unique_ptr<MasterKeyProvider> master,
                                                 const OpenOptions& options) {
  if (conninfo.empty()) throw KeystoreError("no PostgreSQL connection string configured");
  if (!master) throw KeystoreError("no master key provider");
  auto pg = std::unique_ptr<Postgres>(new Postgres{detail::PgKeystore(conninfo, std::move(master), options)});
  return std::unique_ptr<Keystore>(new Keystore(std::move(pg)));
}

std::unique_ptr<Keystore> Keystore::open(const std::string& path, SecretBytes masterKey, const OpenOptions& options) {
  if (path.empty()) throw KeystoreError("no keystore path configured");
  if (masterKey.size() != detail::kMasterKeyBytes) {
    throw KeystoreError("master key must be 32 bytes, got " + std::to_string(masterKey.size()));
  }
  return open(path, softwareMasterKey(std::move(masterKey)), options);
}

std::unique_ptr<Keystore> Keystore::open(const std::string& path, std::unique_ptr<MasterKeyProvider> master,
                                         const OpenOptions& options) {
  if (path.empty()) throw KeystoreError("no keystore path configured");
  if (!master) throw KeystoreError("no master key provider");
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->master = std::move(master);
  impl->options = options;
  impl->checkAnchorBeforeOpen();
  if (!options.escrowDirectory.empty()) impl->escrow.emplace(options.escrowDirectory);
  impl->openDatabase();
  impl->initialiseOrVerify();
  impl->updateAnchor();
  impl->prepareStatements();
  impl->reconcileEscrow();
  return std::unique_ptr<Keystore>(new Keystore(std::move(impl)));
}

const OpenReport& Keystore::openReport() const { return pg_ ? pg_->store.report() : impl_->report; }

namespace {
void countLookup(bool hit) { metrics::increment("pacsgw_key_cache_lookups_total", {{"result", hit ? "hit" : "miss"}}); }
}  // namespace

DataKey Keystore::getOrCreate(KeyScope scope, const std::string& scopeUid, bool* created) {
  if (created != nullptr) *created = false;
  validateScopeUid(scopeUid);
  if (pg_) return pg_->store.getOrCreate(scope, scopeUid, created);
  Impl& d = *impl_;
  std::lock_guard<std::mutex> lock(d.mutex);
  d.dropCacheIfChangedElsewhere();
  const DataKey* cached = d.cache.findByScope(scope, scopeUid);
  countLookup(cached != nullptr);
  if (cached != nullptr) return *cached;

  std::vector<std::uint8_t> storedWrap;
  std::optional<DataKey> found = d.findByScope(scope, scopeUid, &storedWrap);
  if (!found && d.escrow) {
    if (const auto escrowed = d.escrow->find(scope, scopeUid)) {
      throw KeystoreError(std::string("the escrow journal holds data key ") + escrowed->id + " for " + toString(scope) +
                          " " + detail::printable(scopeUid) + " but keystore " + d.path +
                          " lacks it (restored from an older backup?); refusing to issue a second key. Restart the "
                          "gateway or run `pacsgw keys recover` to import it");
    }
  }
  if (!found) {
    std::string destroyedId;
    if (d.scopeShredded(scope, scopeUid, &destroyedId)) {
      throw KeyDestroyedError(std::string("the data key of ") + toString(scope) + " " + detail::printable(scopeUid) +
                              " (" + detail::printable(destroyedId) +
                              ") was destroyed on purpose (keys shred); no new key is issued for it");
    }
    SecretBytes fresh(detail::kDataKeyBytes);
    detail::randomBytes(fresh.data(), fresh.size());
    const std::string id = detail::newUuidV4();
    d.insert(id, scope, scopeUid, d.master->wrapForRow(id, scope, scopeUid, fresh));
    found = d.findByScope(scope, scopeUid, &storedWrap);
    if (!found) {
      if (d.scopeShredded(scope, scopeUid)) {
        throw KeyDestroyedError(std::string("the data key of ") + toString(scope) + " " +
                                detail::printable(scopeUid) + " was destroyed on purpose (keys shred)");
      }
      throw KeystoreError("keystore " + d.path +
                          ": a new data key could not be stored (the master key was rotated by another process? "
                          "restart the gateway with the current master key)");
    }
    // Our fresh id in the row: our insert is the one stored (not another process's).
    if (created != nullptr) *created = found->id == id;
  }
  // Durably escrowed before anyone can encrypt with it (idempotent: a small file read when present).
  if (d.escrow) d.escrow->put(d.escrowRecordFor(*found, detail::utcNowIso8601(), storedWrap));
  d.cache.put(*found);
  return std::move(*found);
}

namespace {
bool sameKey(const SecretBytes& a, const SecretBytes& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}
// The checks shared by both back ends: the key as it would be imported, against what is already stored.
void requireSameImportedKey(const DataKey& existing, const DataKey& imported) {
  if (existing.id != imported.id || !sameKey(existing.key, imported.key)) {
    throw KeyConflictError(std::string("this keystore already holds another data key (") + existing.id + ") for " +
                           toString(existing.scope) + " " + detail::printable(existing.scopeUid) +
                           "; the imported key " + detail::printable(imported.id) +
                           " would fork it, refused");
  }
}
void validateImportedKey(const DataKey& key) {
  if (!detail::looksLikeUuid(key.id)) {
    throw KeystoreError("malformed data key id '" + detail::printable(key.id) + "' (expected a UUID)");
  }
  validateScopeUid(key.scopeUid);
  if (key.key.size() != detail::kDataKeyBytes) {
    throw KeystoreError("an imported data key must have " + std::to_string(detail::kDataKeyBytes) + " bytes");
  }
}
}  // namespace

DataKey Keystore::importKey(const DataKey& key) {
  validateImportedKey(key);
  if (pg_) return pg_->store.importKey(key);
  Impl& d = *impl_;
  std::lock_guard<std::mutex> lock(d.mutex);
  d.dropCacheIfChangedElsewhere();
  std::vector<std::uint8_t> storedWrap;
  std::optional<DataKey> found = d.findByScope(key.scope, key.scopeUid, &storedWrap);
  if (!found) {
    std::string destroyedId;
    if (d.scopeShredded(key.scope, key.scopeUid, &destroyedId) || d.idShredded(key.id)) {
      throw KeyDestroyedError(std::string("the data key of ") + toString(key.scope) + " " +
                              detail::printable(key.scopeUid) +
                              " was destroyed on purpose here (keys shred); it is not imported again");
    }
    auto exists = d.existsById.use();
    bindText(*exists, 1, key.id);
    const int rc = sqlite3_step(*exists);
    if (rc == SQLITE_ROW) {
      throw KeyConflictError("data key id " + key.id + " already belongs to another " +
                             "scope in keystore " + d.path + "; refused");
    }
    if (rc != SQLITE_DONE) throw d.sqliteError("look up data key " + key.id);
    d.insert(key.id, key.scope, key.scopeUid, d.master->wrapForRow(key.id, key.scope, key.scopeUid, key.key));
    found = d.findByScope(key.scope, key.scopeUid, &storedWrap);
    if (!found) {
      throw KeystoreError("keystore " + d.path + ": the imported data key could not be stored (the master key was "
                          "rotated by another process? restart the gateway with the current master key)");
    }
  }
  requireSameImportedKey(*found, key);  // also catches a racing writer that stored another key first
  if (d.escrow) d.escrow->put(d.escrowRecordFor(*found, detail::utcNowIso8601(), storedWrap));
  d.cache.put(*found);
  return std::move(*found);
}

DataKey Keystore::get(const std::string& keyId) {
  if (!detail::looksLikeUuid(keyId)) {
    throw KeystoreError("malformed data key id '" + detail::printable(keyId) + "' (expected a UUID)");
  }
  if (pg_) return pg_->store.get(keyId);
  Impl& d = *impl_;
  std::lock_guard<std::mutex> lock(d.mutex);
  d.dropCacheIfChangedElsewhere();
  const DataKey* cached = d.cache.findById(keyId);
  countLookup(cached != nullptr);
  if (cached != nullptr) return *cached;

  auto stmt = d.selectById.use();
  bindText(*stmt, 1, keyId);
  const int rc = sqlite3_step(*stmt);
  if (rc == SQLITE_DONE) {
    if (d.idShredded(keyId)) {
      throw KeyDestroyedError("data key " + keyId + " was destroyed on purpose (keys shred); the objects encrypted "
                              "under it cannot be decrypted any more");
    }
    throw KeystoreError("data key " + keyId + " is not in keystore " + d.path +
                        " (wrong keystore, restored from an older backup, or the key was destroyed)");
  }
  if (rc != SQLITE_ROW) throw d.sqliteError("look up data key " + keyId);
  KeyScope scope;
  try {
    scope = keyScopeFromString(columnText(*stmt, 0));
  } catch (const KeystoreError&) {
    throw KeystoreError("data key " + keyId + " in keystore " + d.path + " has an unknown scope; the row is damaged");
  }
  const std::string scopeUid = columnText(*stmt, 1);
  if (scopeUid.empty()) {
    throw KeystoreError("data key " + keyId + " in keystore " + d.path + " has no scope UID; the row is damaged");
  }
  DataKey key = d.unwrapRow(keyId, scope, scopeUid, columnBlob(*stmt, 2), sqlite3_column_int(*stmt, 3));
  d.cache.put(key);
  return key;
}

bool Keystore::contains(const std::string& keyId) {
  if (!detail::looksLikeUuid(keyId)) return false;
  if (pg_) return pg_->store.contains(keyId);
  Impl& d = *impl_;
  std::lock_guard<std::mutex> lock(d.mutex);
  d.dropCacheIfChangedElsewhere();
  if (d.cache.findById(keyId) != nullptr) return true;
  auto stmt = d.existsById.use();
  bindText(*stmt, 1, keyId);
  const int rc = sqlite3_step(*stmt);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  throw d.sqliteError("look up data key " + keyId);
}

bool Keystore::hasKeyFor(KeyScope scope, const std::string& scopeUid) {
  validateScopeUid(scopeUid);
  if (pg_) return pg_->store.hasKeyFor(scope, scopeUid);
  Impl& d = *impl_;
  std::lock_guard<std::mutex> lock(d.mutex);
  if (d.cache.findByScope(scope, scopeUid) != nullptr) return true;
  return d.findByScope(scope, scopeUid).has_value() || d.scopeShredded(scope, scopeUid);
}

std::vector<KeyInfo> Keystore::list() {
  if (pg_) return pg_->store.list();
  Impl& d = *impl_;
  std::lock_guard<std::mutex> lock(d.mutex);
  auto stmt = d.listKeys.use();
  std::vector<KeyInfo> out;
  int rc;
  while ((rc = sqlite3_step(*stmt)) == SQLITE_ROW) {
    KeyInfo info;
    info.id = columnText(*stmt, 0);
    const std::string scope = columnText(*stmt, 1);
    try {
      info.scope = keyScopeFromString(scope);
    } catch (const KeystoreError&) {
      throw KeystoreError("data key " + detail::printable(info.id) + " in keystore " + d.path +
                          " has an unknown scope; the row is damaged");
    }
    info.scopeUid = columnText(*stmt, 2);
    info.createdAt = columnText(*stmt, 3);
    out.push_back(std::move(info));
  }
  if (rc != SQLITE_DONE) throw d.sqliteError("list data keys");
  return out;
}

std::vector<DamagedKey> Keystore::verify() {
  if (pg_) return pg_->store.verify();
  Impl& d = *impl_;
  std::lock_guard<std::mutex> lock(d.mutex);
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(d.db.get(), "SELECT id, scope, scope_uid, wrapped, wrap_format FROM data_keys ORDER BY rowid",
                         -1, &raw, nullptr) != SQLITE_OK) {
    throw d.sqliteError("read data keys");
  }
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> stmt(raw, sqlite3_finalize);
  std::vector<DamagedKey> damaged;
  int rc;
  while ((rc = sqlite3_step(raw)) == SQLITE_ROW) {
    const std::string id = columnText(raw, 0);
    const std::string scopeText = columnText(raw, 1);
    const std::string uid = columnText(raw, 2);
    DamagedKey entry{detail::printable(id), detail::printable(scopeText), detail::printable(uid, 200), ""};
    try {
      if (!detail::looksLikeUuid(id)) throw KeystoreError("malformed key id");
      const KeyScope scope = keyScopeFromString(scopeText);
      validateScopeUid(uid);
      d.unwrapRow(id, scope, uid, columnBlob(raw, 3), sqlite3_column_int(raw, 4));
    } catch (const KeystoreError& e) {
      entry.problem = e.what();
      damaged.push_back(std::move(entry));
    }
  }
  if (rc != SQLITE_DONE) throw d.sqliteError("read data keys");
  return damaged;
}

namespace {

// Writes a PostgreSQL keystore snapshot as an SQLite keystore file (same keystore id, check value, wrapped
// rows and tombstones), so it opens in a gateway with `keystore.path` and the same master key.
void writeSnapshotAsSqlite(const detail::PgKeystore::Snapshot& snapshot, sqlite3* db) {
  auto check = [&](int rc, const char* what) {
    if (rc != SQLITE_OK && rc != SQLITE_DONE) throw KeystoreError(std::string(what) + ": " + sqlite3_errmsg(db));
  };
  auto prepare = [&](const char* sql) {
    sqlite3_stmt* raw = nullptr;
    check(sqlite3_prepare_v2(db, sql, -1, &raw, nullptr), "prepare");
    return std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)>(raw, sqlite3_finalize);
  };
  check(sqlite3_exec(db, "PRAGMA secure_delete=ON; BEGIN IMMEDIATE", nullptr, nullptr, nullptr), "begin");
  check(sqlite3_exec(db, kSqliteSchema, nullptr, nullptr, nullptr), "create schema");
  {
    auto meta = prepare(
        "INSERT INTO meta (name, value) VALUES ('schema_version', ?1), ('kek_check', ?2), ('keystore_id', ?3)");
    sqlite3_bind_int(meta.get(), 1, kSchemaVersion);
    sqlite3_bind_blob(meta.get(), 2, snapshot.kekCheck.data(), static_cast<int>(snapshot.kekCheck.size()),
                      SQLITE_TRANSIENT);
    bindText(meta.get(), 3, snapshot.keystoreId);
    check(sqlite3_step(meta.get()), "write meta");
  }
  auto key = prepare(
      "INSERT INTO data_keys (id, scope, scope_uid, wrapped, created_at, wrap_format) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
  for (const auto& row : snapshot.keys) {
    sqlite3_reset(key.get());
    bindText(key.get(), 1, row.id);
    bindText(key.get(), 2, row.scope);
    bindText(key.get(), 3, row.scopeUid);
    sqlite3_bind_blob(key.get(), 4, row.wrapped.data(), static_cast<int>(row.wrapped.size()), SQLITE_TRANSIENT);
    bindText(key.get(), 5, row.createdAt);
    sqlite3_bind_int(key.get(), 6, row.wrapFormat);
    check(sqlite3_step(key.get()), "write data key");
  }
  auto tomb = prepare("INSERT INTO shredded_keys (id, scope, scope_uid, shredded_at) VALUES (?1, ?2, ?3, ?4)");
  for (const auto& row : snapshot.tombstones) {
    sqlite3_reset(tomb.get());
    bindText(tomb.get(), 1, row.id);
    bindText(tomb.get(), 2, row.scope);
    bindText(tomb.get(), 3, row.scopeUid);
    bindText(tomb.get(), 4, row.shreddedAt);
    check(sqlite3_step(tomb.get()), "write tombstone");
  }
  check(sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr), "commit");
}

}  // namespace

void Keystore::backupTo(const std::string& target) {
  if (pg_) {
    // Read first (one consistent snapshot), then write the file: nothing is created if the read fails.
    const detail::PgKeystore::Snapshot snapshot = pg_->store.snapshot();
    const int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) throw KeystoreError("cannot create backup " + target + ": " + std::strerror(errno));
    ::close(fd);
    try {
      sqlite3* raw = nullptr;
      const int rc = sqlite3_open_v2(target.c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr);
      DbPtr dest(raw);
      if (rc != SQLITE_OK) throw KeystoreError(sqlite3_errmsg(raw));
      writeSnapshotAsSqlite(snapshot, dest.get());
      dest.reset();
      const int syncFd = ::open(target.c_str(), O_RDONLY | O_CLOEXEC);
      if (syncFd < 0 || ::fsync(syncFd) != 0) {
        if (syncFd >= 0) ::close(syncFd);
        throw KeystoreError(std::string("fsync: ") + std::strerror(errno));
      }
      ::close(syncFd);
    } catch (const KeystoreError& e) {
      ::unlink(target.c_str());
      throw KeystoreError("backup of the PostgreSQL keystore to " + target + " failed: " + e.what());
    }
    return;
  }
  Impl& d = *impl_;
  // Created here, private and exclusive: never overwrite an existing file (it may be the only copy).
  const int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) throw KeystoreError("cannot create backup " + target + ": " + std::strerror(errno));
  ::close(fd);
  auto fail = [&](const std::string& why) {
    ::unlink(target.c_str());
    return KeystoreError("backup of keystore " + d.path + " to " + target + " failed: " + why);
  };
  sqlite3* rawDest = nullptr;
  const int rc = sqlite3_open_v2(target.c_str(), &rawDest, SQLITE_OPEN_READWRITE, nullptr);
  DbPtr dest(rawDest);
  if (rc != SQLITE_OK) throw fail(sqlite3_errmsg(rawDest));
  {
    std::lock_guard<std::mutex> lock(d.mutex);
    sqlite3_backup* backup = sqlite3_backup_init(dest.get(), "main", d.db.get(), "main");
    if (backup == nullptr) throw fail(sqlite3_errmsg(dest.get()));
    const int step = sqlite3_backup_step(backup, -1);  // all pages in one step: one consistent snapshot
    sqlite3_backup_finish(backup);
    if (step != SQLITE_DONE) throw fail(sqlite3_errstr(step));
  }
  // The copy keeps the WAL journal mode; checkpoint so the single file is complete on its own.
  if (sqlite3_wal_checkpoint_v2(dest.get(), nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr) != SQLITE_OK) {
    throw fail(sqlite3_errmsg(dest.get()));
  }
  char* error = nullptr;
  if (sqlite3_exec(dest.get(), "PRAGMA journal_mode=DELETE", nullptr, nullptr, &error) != SQLITE_OK) {
    const std::string why = error ? error : "cannot leave WAL mode";
    sqlite3_free(error);
    throw fail(why);
  }
  dest.reset();
  const int syncFd = ::open(target.c_str(), O_RDONLY | O_CLOEXEC);
  if (syncFd < 0 || ::fsync(syncFd) != 0) {
    if (syncFd >= 0) ::close(syncFd);
    throw fail(std::string("fsync: ") + std::strerror(errno));
  }
  ::close(syncFd);
}

void Keystore::rotateMasterKey(SecretBytes newMasterKey) {
  if (newMasterKey.size() != detail::kMasterKeyBytes) {
    throw KeystoreError("new master key must be 32 bytes, got " + std::to_string(newMasterKey.size()));
  }
  rotateMasterKey(softwareMasterKey(std::move(newMasterKey), "new master key"));
}

void Keystore::rotateMasterKey(std::unique_ptr<MasterKeyProvider> newMaster) {
  if (!newMaster) throw KeystoreError("no new master key provider");
  if (pg_) return pg_->store.rotateMasterKey(std::move(newMaster));
  Impl& d = *impl_;
  std::lock_guard<std::mutex> lock(d.mutex);
  const std::vector<std::uint8_t> newCheck = newMaster->checkValue();
  if (sameBytes(newCheck, d.master->checkValue())) throw KeystoreError("the new master key is the current one");
  d.exec("BEGIN IMMEDIATE", "begin transaction");
  try {
    d.rewrapAllRows(*newMaster, /*onlyFormat1=*/false);
    d.execBound(
        "UPDATE meta SET value = ?1 WHERE name = 'kek_check'",
        [&](sqlite3_stmt* st) {
          sqlite3_bind_blob(st, 1, newCheck.data(), static_cast<int>(newCheck.size()), SQLITE_TRANSIENT);
        },
        "record the new master key check value");
    d.exec("COMMIT", "commit");
  } catch (...) {
    sqlite3_exec(d.db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  d.master = std::move(newMaster);
  d.cache.clear();
  if (d.escrow) d.reconcileEscrow();  // rewrites every entry under the new master key
  // The committed database is authoritative; an anchor left stale by a crash here is re-written on the
  // next open, because the database's check value then matches the (new) configured key.
  d.updateAnchor();
  // Old wraps must not linger in the WAL: they would still open under the old master key.
  d.checkpointTruncate("master key rotation");
}

std::string Keystore::shred(KeyScope scope, const std::string& scopeUid) {
  validateScopeUid(scopeUid);
  if (pg_) return pg_->store.shred(scope, scopeUid);
  Impl& d = *impl_;
  std::lock_guard<std::mutex> lock(d.mutex);
  std::string id;
  d.exec("BEGIN IMMEDIATE", "begin transaction");
  try {
    {
      auto stmt = d.selectByScope.use();
      bindText(*stmt, 1, toString(scope));
      bindText(*stmt, 2, scopeUid);
      const int rc = sqlite3_step(*stmt);
      if (rc == SQLITE_ROW) id = columnText(*stmt, 0);
      else if (rc != SQLITE_DONE) throw d.sqliteError("look up data key");
    }
    if (!id.empty()) {
      d.execBound(
          "INSERT INTO shredded_keys (id, scope, scope_uid, shredded_at) VALUES (?1, ?2, ?3, ?4)",
          [&](sqlite3_stmt* st) {
            bindText(st, 1, id);
            bindText(st, 2, toString(scope));
            bindText(st, 3, scopeUid);
            bindText(st, 4, detail::utcNowIso8601());
          },
          "record the destroyed key");
      d.execBound(
          "DELETE FROM data_keys WHERE id = ?1", [&](sqlite3_stmt* st) { bindText(st, 1, id); },
          "delete the data key");
    }
    d.exec("COMMIT", "commit");
  } catch (...) {
    sqlite3_exec(d.db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  d.cache.clear();
  if (d.escrow) d.escrow->remove(scope, scopeUid);
  if (id.empty()) return id;
  // secure_delete zeroes the freed cells; the WAL still holds the old page until it is checkpointed and
  // truncated, and VACUUM rebuilds the file so no free page keeps a copy.
  d.checkpointTruncate("shred");
  d.exec("VACUUM", "vacuum after shred");
  d.checkpointTruncate("shred");
  return id;
}

bool Keystore::isShredded(const std::string& keyId) {
  if (!detail::looksLikeUuid(keyId)) return false;
  if (pg_) return pg_->store.isShredded(keyId);
  Impl& d = *impl_;
  std::lock_guard<std::mutex> lock(d.mutex);
  return d.idShredded(keyId);
}

}  // namespace pacsgw::keystore
