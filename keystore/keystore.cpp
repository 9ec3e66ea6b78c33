// SQLite-backed store of wrapped data keys.
//
// Layout (schema version 1):
//   meta(name TEXT PRIMARY KEY, value)        -- 'schema_version' (integer), 'kek_check' (32-byte blob)
//   data_keys(id, scope, scope_uid, wrapped, created_at, UNIQUE(scope, scope_uid))
// The key-check value is HMAC-SHA-256 of a fixed label under the master key: it tells a wrong master key
// apart from a damaged store without revealing anything about the key.
#include "keystore/keystore.h"
#include "gateway/metrics/registry.h"
#include "keystore/key_cache.h"
#include "keystore/keystore_internal.h"

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
#include <mutex>
#include <optional>

namespace pacsgw::keystore {

namespace {

constexpr int kSchemaVersion = 1;
constexpr char kCheckLabel[] = "pacsgw keystore master key check v1";
constexpr std::size_t kCheckBytes = 32;
constexpr std::size_t kCacheCapacity = 4096;  // ~4096 studies in flight; each entry is well under 1 KiB
constexpr int kBusyTimeoutMs = 10000;         // another gateway process may hold the write lock briefly
constexpr std::size_t kMaxScopeUidBytes = 1024;

// HMAC-SHA-256 of a fixed label under the master key; stored at creation, compared on every open.
std::vector<std::uint8_t> keyCheckValue(const SecretBytes& kek) {
  std::vector<std::uint8_t> out(EVP_MAX_MD_SIZE);
  unsigned length = 0;
  if (HMAC(EVP_sha256(), kek.data(), static_cast<int>(kek.size()), reinterpret_cast<const unsigned char*>(kCheckLabel),
           sizeof kCheckLabel - 1, out.data(), &length) == nullptr ||
      length != kCheckBytes) {
    throw KeystoreError("cannot compute the master key check value");
  }
  out.resize(length);
  return out;
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

struct Keystore::Impl {
  std::string path;
  SecretBytes kek;
  DbPtr db;  // declared before the statements so it is closed after they are finalized
  Statement selectByScope;
  Statement selectById;
  Statement existsById;
  Statement insertKey;
  Statement listKeys;
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

  // Creates the schema in an empty file, or verifies an existing one; then checks the master key.
  void initialiseOrVerify() {
    exec("BEGIN IMMEDIATE", "begin transaction");
    try {
      const std::vector<std::string> tables =
          pragmaRows("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name", "read schema");
      if (tables.empty()) {
        createSchema();
      } else if (std::find(tables.begin(), tables.end(), "meta") == tables.end() ||
                 std::find(tables.begin(), tables.end(), "data_keys") == tables.end()) {
        throw KeystoreError("keystore " + path +
                            " is an SQLite database but not a pacsgw keystore (no meta/data_keys tables); refusing to "
                            "use it. Check keystore.path in the configuration");
      }
      verifyMeta();
      exec("COMMIT", "commit");
    } catch (...) {
      sqlite3_exec(db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }

  void createSchema() {
    exec(
        "CREATE TABLE meta (name TEXT PRIMARY KEY NOT NULL, value NOT NULL);"
        "CREATE TABLE data_keys ("
        "  id TEXT PRIMARY KEY NOT NULL,"
        "  scope TEXT NOT NULL,"
        "  scope_uid TEXT NOT NULL,"
        "  wrapped BLOB NOT NULL,"
        "  created_at TEXT NOT NULL,"
        "  UNIQUE (scope, scope_uid));",
        "create schema");
    const std::vector<std::uint8_t> kcv = keyCheckValue(kek);
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(db.get(), "INSERT INTO meta (name, value) VALUES ('schema_version', ?1), ('kek_check', ?2)",
                           -1, &raw, nullptr) != SQLITE_OK) {
      throw sqliteError("prepare meta insert");
    }
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> stmt(raw, sqlite3_finalize);
    sqlite3_bind_int(raw, 1, kSchemaVersion);
    sqlite3_bind_blob(raw, 2, kcv.data(), static_cast<int>(kcv.size()), SQLITE_TRANSIENT);
    if (sqlite3_step(raw) != SQLITE_DONE) throw sqliteError("write meta");
  }

  void verifyMeta() {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(db.get(), "SELECT name, value FROM meta WHERE name IN ('schema_version', 'kek_check')", -1,
                           &raw, nullptr) != SQLITE_OK) {
      throw KeystoreError("keystore " + path + " has an unexpected meta table (" + sqlite3_errmsg(db.get()) + ")");
    }
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> stmt(raw, sqlite3_finalize);
    std::optional<sqlite3_int64> version;
    std::vector<std::uint8_t> storedCheck;
    int rc;
    while ((rc = sqlite3_step(raw)) == SQLITE_ROW) {
      const std::string name = columnText(raw, 0);
      if (name == "schema_version" && sqlite3_column_type(raw, 1) == SQLITE_INTEGER) {
        version = sqlite3_column_int64(raw, 1);
      } else if (name == "kek_check") {
        storedCheck = columnBlob(raw, 1);
      }
    }
    if (rc != SQLITE_DONE) failOpen(rc, "read meta");
    if (!version)
      throw KeystoreError("keystore " + path + " has no schema version; it is damaged or not a pacsgw keystore");
    if (*version != kSchemaVersion) {
      throw KeystoreError("keystore " + path + " has schema version " + std::to_string(*version) +
                          "; this pacsgw supports version " + std::to_string(kSchemaVersion) +
                          (*version > kSchemaVersion ? " (it was written by a newer pacsgw)" : ""));
    }
    if (storedCheck.size() != kCheckBytes) {
      throw KeystoreError("keystore " + path + " has a missing or malformed master key check value; it is damaged");
    }
    const std::vector<std::uint8_t> expected = keyCheckValue(kek);
    if (CRYPTO_memcmp(expected.data(), storedCheck.data(), kCheckBytes) != 0) {
      throw KeystoreError("master key does not match this keystore (" + path +
                          "); refusing to start. Use the master key this keystore was created with");
    }
  }

  void prepareStatements() {
    sqlite3* h = db.get();
    selectByScope = Statement(h, "SELECT id, wrapped FROM data_keys WHERE scope = ?1 AND scope_uid = ?2", path);
    selectById = Statement(h, "SELECT scope, scope_uid, wrapped FROM data_keys WHERE id = ?1", path);
    existsById = Statement(h, "SELECT 1 FROM data_keys WHERE id = ?1", path);
    // A racing writer (another thread's connection or another process) may have inserted the same scope
    // first: keep its row, then read back whichever row won.
    insertKey =
        Statement(h,
                  "INSERT INTO data_keys (id, scope, scope_uid, wrapped, created_at) VALUES (?1, ?2, ?3, ?4, ?5) "
                  "ON CONFLICT (scope, scope_uid) DO NOTHING",
                  path);
    listKeys = Statement(h, "SELECT id, scope, scope_uid, created_at FROM data_keys ORDER BY created_at, id", path);
  }

  DataKey unwrapRow(const std::string& id, KeyScope scope, const std::string& scopeUid,
                    const std::vector<std::uint8_t>& wrapped) const {
    DataKey out{id, scope, scopeUid, SecretBytes()};
    try {
      out.key = unwrapKey(kek, wrapped);
    } catch (const KeystoreError& e) {
      throw KeystoreError("data key " + id + " in keystore " + path + " failed to unwrap: " + e.what());
    }
    if (out.key.size() != detail::kDataKeyBytes) {
      throw KeystoreError("data key " + id + " in keystore " + path + " unwrapped to " +
                          std::to_string(out.key.size()) + " bytes instead of 32; the row is damaged");
    }
    return out;
  }

  std::optional<DataKey> findByScope(KeyScope scope, const std::string& scopeUid) {
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
    return unwrapRow(id, scope, scopeUid, columnBlob(*stmt, 1));
  }

  void insert(const std::string& id, KeyScope scope, const std::string& scopeUid,
              const std::vector<std::uint8_t>& wrapped) {
    auto stmt = insertKey.use();
    bindText(*stmt, 1, id);
    bindText(*stmt, 2, toString(scope));
    bindText(*stmt, 3, scopeUid);
    sqlite3_bind_blob(*stmt, 4, wrapped.data(), static_cast<int>(wrapped.size()), SQLITE_TRANSIENT);
    bindText(*stmt, 5, detail::utcNowIso8601());
    if (sqlite3_step(*stmt) != SQLITE_DONE) throw sqliteError("store new data key");
  }
};

Keystore::Keystore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Keystore::~Keystore() = default;

std::unique_ptr<Keystore> Keystore::open(const std::string& path, SecretBytes masterKey) {
  if (path.empty()) throw KeystoreError("no keystore path configured");
  if (masterKey.size() != detail::kMasterKeyBytes) {
    throw KeystoreError("master key must be 32 bytes, got " + std::to_string(masterKey.size()));
  }
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->kek = std::move(masterKey);
  impl->openDatabase();
  impl->initialiseOrVerify();
  impl->prepareStatements();
  return std::unique_ptr<Keystore>(new Keystore(std::move(impl)));
}

namespace {
void countLookup(bool hit) { metrics::increment("pacsgw_key_cache_lookups_total", {{"result", hit ? "hit" : "miss"}}); }
}  // namespace

DataKey Keystore::getOrCreate(KeyScope scope, const std::string& scopeUid) {
  validateScopeUid(scopeUid);
  Impl& d = *impl_;
  std::lock_guard<std::mutex> lock(d.mutex);
  const DataKey* cached = d.cache.findByScope(scope, scopeUid);
  countLookup(cached != nullptr);
  if (cached != nullptr) return *cached;

  std::optional<DataKey> found = d.findByScope(scope, scopeUid);
  if (!found) {
    SecretBytes fresh(detail::kDataKeyBytes);
    detail::randomBytes(fresh.data(), fresh.size());
    d.insert(detail::newUuidV4(), scope, scopeUid, wrapKey(d.kek, fresh));
    found = d.findByScope(scope, scopeUid);
    if (!found) throw KeystoreError("keystore " + d.path + ": a new data key was stored but cannot be read back");
  }
  d.cache.put(*found);
  return std::move(*found);
}

DataKey Keystore::get(const std::string& keyId) {
  if (!detail::looksLikeUuid(keyId)) {
    throw KeystoreError("malformed data key id '" + detail::printable(keyId) + "' (expected a UUID)");
  }
  Impl& d = *impl_;
  std::lock_guard<std::mutex> lock(d.mutex);
  const DataKey* cached = d.cache.findById(keyId);
  countLookup(cached != nullptr);
  if (cached != nullptr) return *cached;

  auto stmt = d.selectById.use();
  bindText(*stmt, 1, keyId);
  const int rc = sqlite3_step(*stmt);
  if (rc == SQLITE_DONE) {
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
  DataKey key = d.unwrapRow(keyId, scope, scopeUid, columnBlob(*stmt, 2));
  d.cache.put(key);
  return key;
}

bool Keystore::contains(const std::string& keyId) {
  if (!detail::looksLikeUuid(keyId)) return false;
  Impl& d = *impl_;
  std::lock_guard<std::mutex> lock(d.mutex);
  if (d.cache.findById(keyId) != nullptr) return true;
  auto stmt = d.existsById.use();
  bindText(*stmt, 1, keyId);
  const int rc = sqlite3_step(*stmt);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  throw d.sqliteError("look up data key " + keyId);
}

std::vector<KeyInfo> Keystore::list() {
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

}  // namespace pacsgw::keystore
