// Key custody on real files: the anchor refuses a vanished or emptied keystore, verification names damaged
// keys, wrapped keys are bound to their rows, old stores migrate, backups are consistent, the master key
// rotates, and a shredded key leaves no trace in any keystore file.
#include "keystore/escrow_journal.h"
#include "keystore/keystore.h"

#include "keystore_test_support.h"
#include "test_support.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

using pacsgw::SecretBytes;
using namespace pacsgw::keystore;
namespace fs = std::filesystem;

namespace {

struct TempDir : pacsgw::testing::TempDir {
  TempDir() : pacsgw::testing::TempDir("pacsgw-custody") {}
};

SecretBytes masterKey(std::uint8_t seed) {
  SecretBytes key(32);
  for (std::size_t i = 0; i < key.size(); ++i) key.data()[i] = static_cast<std::uint8_t>(seed * 3 + 11 * i);
  return key;
}

std::vector<std::uint8_t> bytesOf(const SecretBytes& s) { return std::vector<std::uint8_t>(s.data(), s.data() + s.size()); }

std::string errorOf(const std::function<void()>& action) { return pacsgw::testing::keystoreErrorOf(action); }

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

using pacsgw::testing::execSql;

std::vector<std::uint8_t> blobOf(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  std::vector<std::uint8_t> out;
  if (sqlite3_step(stmt) == SQLITE_ROW) {
    const auto* data = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt, 0));
    out.assign(data, data + sqlite3_column_bytes(stmt, 0));
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return out;
}

std::vector<std::uint8_t> fileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// True when `needle` occurs in the keystore file or its -wal / -shm companions.
bool foundInKeystoreFiles(const std::string& path, const std::vector<std::uint8_t>& needle) {
  for (const std::string& file : {path, path + "-wal", path + "-shm", path + "-journal"}) {
    if (!fs::exists(file)) continue;
    const std::vector<std::uint8_t> hay = fileBytes(file);
    if (std::search(hay.begin(), hay.end(), needle.begin(), needle.end()) != hay.end()) return true;
  }
  return false;
}

// The escrow journal is a text file: a wrapped key appears in it as lowercase hex.
std::vector<std::uint8_t> asJournalText(const std::vector<std::uint8_t>& bytes) {
  static const char digits[] = "0123456789abcdef";
  std::vector<std::uint8_t> out;
  for (std::uint8_t b : bytes) {
    out.push_back(static_cast<std::uint8_t>(digits[b >> 4]));
    out.push_back(static_cast<std::uint8_t>(digits[b & 0x0f]));
  }
  return out;
}

OpenOptions anchored(const TempDir& dir, bool accept = false) {
  OpenOptions o;
  o.anchorPath = dir.file("master.key.anchor");
  o.acceptNewKeystore = accept;
  return o;
}

const std::string kStudy = "1.2.826.0.1.3680043.2.1125.7";

}  // namespace

TEST(KeystoreAnchor, FirstOpenCreatesKeystoreAndAnchor) {
  TempDir dir;
  const std::string path = dir.file("keystore.db");
  auto store = Keystore::open(path, masterKey(1), anchored(dir));
  EXPECT_TRUE(store->openReport().createdNewKeystore);
  EXPECT_FALSE(store->openReport().replacedAnchoredKeystore);
  EXPECT_TRUE(store->openReport().anchorWritten);
  const auto anchor = readAnchor(dir.file("master.key.anchor"));
  ASSERT_TRUE(anchor.has_value());
  EXPECT_EQ(anchor->keystoreId, store->openReport().keystoreId);
  EXPECT_EQ(anchor->kekCheck, masterKeyCheckValue(masterKey(1)));
  EXPECT_EQ(fs::status(dir.file("master.key.anchor")).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  store.reset();
  // Reopening the same keystore: nothing created, anchor unchanged.
  auto again = Keystore::open(path, masterKey(1), anchored(dir));
  EXPECT_FALSE(again->openReport().createdNewKeystore);
  EXPECT_FALSE(again->openReport().anchorWritten);
}

TEST(KeystoreAnchor, MissingKeystoreIsRefusedAndNotRecreated) {
  TempDir dir;
  const std::string path = dir.file("keystore.db");
  Keystore::open(path, masterKey(1), anchored(dir))->getOrCreate(KeyScope::Study, kStudy);
  fs::remove(path);
  const std::string message = errorOf([&] { Keystore::open(path, masterKey(1), anchored(dir)); });
  EXPECT_TRUE(has(message, "does not exist")) << message;
  EXPECT_TRUE(has(message, "refusing to start") || has(message, "Refusing to start")) << message;
  EXPECT_TRUE(has(message, "--accept-new-keystore")) << message;
  EXPECT_FALSE(fs::exists(path)) << "a refused keystore must not be re-created";
}

TEST(KeystoreAnchor, ZeroByteKeystoreIsRefused) {
  TempDir dir;
  const std::string path = dir.file("keystore.db");
  Keystore::open(path, masterKey(1), anchored(dir))->getOrCreate(KeyScope::Study, kStudy);
  fs::resize_file(path, 0);
  fs::remove(path + "-wal");
  const std::string message = errorOf([&] { Keystore::open(path, masterKey(1), anchored(dir)); });
  EXPECT_TRUE(has(message, "empty (0-byte)")) << message;
  EXPECT_EQ(fs::file_size(path), 0u);
}

TEST(KeystoreAnchor, KeystoreCopiedWithoutItsWalIsRefused) {
  TempDir dir;
  const std::string path = dir.file("keystore.db");
  auto live = Keystore::open(path, masterKey(1), anchored(dir));
  live->getOrCreate(KeyScope::Study, kStudy);
  // While the gateway runs every key is still only in the WAL: copy the main file alone, as a careless
  // backup (or a crash recovery that lost the -wal) would.
  ASSERT_TRUE(fs::exists(path + "-wal"));
  TempDir other;
  const std::string copy = other.file("keystore.db");
  fs::copy_file(path, copy);
  live.reset();
  fs::remove(path);
  fs::remove(path + "-wal");
  fs::copy_file(copy, path);
  const std::string message = errorOf([&] { Keystore::open(path, masterKey(1), anchored(dir)); });
  EXPECT_TRUE(has(message, "anchor")) << message;
  EXPECT_FALSE(has(message, "no KeystoreError")) << message;
}

TEST(KeystoreAnchor, AcceptNewKeystoreStartsEmptyAndReanchors) {
  TempDir dir;
  const std::string path = dir.file("keystore.db");
  const std::string oldId = Keystore::open(path, masterKey(1), anchored(dir))->openReport().keystoreId;
  fs::remove(path);
  auto store = Keystore::open(path, masterKey(1), anchored(dir, /*accept=*/true));
  EXPECT_TRUE(store->openReport().createdNewKeystore);
  EXPECT_TRUE(store->openReport().replacedAnchoredKeystore);
  EXPECT_NE(store->openReport().keystoreId, oldId);
  EXPECT_EQ(readAnchor(dir.file("master.key.anchor"))->keystoreId, store->openReport().keystoreId);
}

TEST(KeystoreAnchor, AnotherInstallationsKeystoreIsRefused) {
  TempDir dir;
  TempDir elsewhere;
  const std::string path = dir.file("keystore.db");
  Keystore::open(path, masterKey(1), anchored(dir))->getOrCreate(KeyScope::Study, kStudy);
  const std::string foreign = elsewhere.file("keystore.db");
  Keystore::open(foreign, masterKey(1))->getOrCreate(KeyScope::Study, "1.2.3");
  fs::remove(path);
  fs::copy_file(foreign, path);
  const std::string message = errorOf([&] { Keystore::open(path, masterKey(1), anchored(dir)); });
  EXPECT_TRUE(has(message, "is not the keystore recorded in the anchor")) << message;
  EXPECT_NO_THROW(Keystore::open(path, masterKey(1), anchored(dir, true)));
}

TEST(KeystoreAnchor, NoAnchorConfiguredKeepsOldBehaviour) {
  TempDir dir;
  const std::string path = dir.file("keystore.db");
  Keystore::open(path, masterKey(1))->getOrCreate(KeyScope::Study, kStudy);
  fs::remove(path);
  EXPECT_TRUE(Keystore::open(path, masterKey(1))->openReport().createdNewKeystore);
}

TEST(KeystoreVerify, DamagedCheckValueIsNotReportedAsWrongMasterKey) {
  TempDir dir;
  const std::string path = dir.file("keystore.db");
  Keystore::open(path, masterKey(1), anchored(dir))->getOrCreate(KeyScope::Study, kStudy);
  execSql(path, "UPDATE meta SET value = zeroblob(32) WHERE name = 'kek_check'");
  const std::string damaged = errorOf([&] { Keystore::open(path, masterKey(1), anchored(dir)); });
  EXPECT_TRUE(has(damaged, "check value stored in keystore " + path + " is damaged")) << damaged;
  EXPECT_TRUE(has(damaged, "master key is correct")) << damaged;
  EXPECT_FALSE(has(damaged, "does not match")) << damaged;

  // A really wrong master key is still called that.
  const std::string wrong = errorOf([&] { Keystore::open(path, masterKey(2)); });
  EXPECT_TRUE(has(wrong, "master key does not match this keystore")) << wrong;

  // The repair needs proof (the key unwraps the stored rows) and then the store opens normally.
  OpenOptions repair = anchored(dir);
  repair.repairCheckValue = true;
  EXPECT_THROW(Keystore::open(path, masterKey(2), repair), KeystoreError);
  EXPECT_TRUE(Keystore::open(path, masterKey(1), repair)->openReport().repairedCheckValue);
  EXPECT_NO_THROW(Keystore::open(path, masterKey(1), anchored(dir))->getOrCreate(KeyScope::Study, kStudy));
}

TEST(KeystoreVerify, DamagedCheckValueOfAnEmptyStoreIsToldByTheAnchor) {
  TempDir dir;
  const std::string path = dir.file("keystore.db");
  Keystore::open(path, masterKey(1), anchored(dir));
  execSql(path, "UPDATE meta SET value = zeroblob(32) WHERE name = 'kek_check'");
  const std::string message = errorOf([&] { Keystore::open(path, masterKey(1), anchored(dir)); });
  EXPECT_TRUE(has(message, "it matches the anchor")) << message;
}

TEST(KeystoreVerify, NamesEveryDamagedKey) {
  TempDir dir;
  const std::string path = dir.file("keystore.db");
  std::string bad1, bad2;
  {
    auto store = Keystore::open(path, masterKey(1));
    bad1 = store->getOrCreate(KeyScope::Study, "1.2.3.1").id;
    store->getOrCreate(KeyScope::Study, "1.2.3.2");
    bad2 = store->getOrCreate(KeyScope::Series, "1.2.3.3").id;
    EXPECT_TRUE(store->verify().empty());
  }
  execSql(path, "UPDATE data_keys SET wrapped = zeroblob(40) WHERE id = '" + bad1 + "';"
                "UPDATE data_keys SET scope = 'galaxy' WHERE id = '" + bad2 + "'");
  auto store = Keystore::open(path, masterKey(1));
  const std::vector<DamagedKey> damaged = store->verify();
  ASSERT_EQ(damaged.size(), 2u);
  EXPECT_EQ(damaged[0].id, bad1);
  EXPECT_EQ(damaged[0].scopeUid, "1.2.3.1");
  EXPECT_TRUE(has(damaged[0].problem, "failed to unwrap")) << damaged[0].problem;
  EXPECT_EQ(damaged[1].id, bad2);
  EXPECT_EQ(damaged[1].scope, "galaxy");
}

TEST(KeystoreRowBinding, BlobMovedToAnotherRowDoesNotUnwrap) {
  TempDir dir;
  const std::string path = dir.file("keystore.db");
  std::string a, b;
  {
    auto store = Keystore::open(path, masterKey(1));
    a = store->getOrCreate(KeyScope::Study, "1.2.3.1").id;
    b = store->getOrCreate(KeyScope::Study, "1.2.3.2").id;
  }
  // Swap the two wrapped keys (through a copy: UPDATE sees its own earlier writes).
  execSql(path, "CREATE TABLE w AS SELECT id, wrapped FROM data_keys;"
                "UPDATE data_keys SET wrapped = (SELECT w.wrapped FROM w WHERE w.id = CASE data_keys.id WHEN '" + a +
                    "' THEN '" + b + "' ELSE '" + a + "' END); DROP TABLE w");
  auto store = Keystore::open(path, masterKey(1));
  EXPECT_THROW(store->get(a), KeystoreError);
  EXPECT_THROW(store->get(b), KeystoreError);
  EXPECT_EQ(store->verify().size(), 2u);
}

TEST(KeystoreRowBinding, RelabelledRowDoesNotUnwrap) {
  TempDir dir;
  const std::string path = dir.file("keystore.db");
  std::string id;
  {
    auto store = Keystore::open(path, masterKey(1));
    id = store->getOrCreate(KeyScope::Study, "1.2.3.1").id;
  }
  // Point the key at another study (or another scope): it must not serve that study.
  execSql(path, "UPDATE data_keys SET scope_uid = '1.2.3.9' WHERE id = '" + id + "'");
  auto store = Keystore::open(path, masterKey(1));
  EXPECT_THROW(store->getOrCreate(KeyScope::Study, "1.2.3.9"), KeystoreError);
  execSql(path, "UPDATE data_keys SET scope_uid = '1.2.3.1', scope = 'series' WHERE id = '" + id + "'");
  auto again = Keystore::open(path, masterKey(1));
  EXPECT_THROW(again->get(id), KeystoreError);
}

TEST(KeystoreRowBinding, WrapKatIsStableAndBound) {
  const SecretBytes kek = masterKey(5);
  SecretBytes dek(32);
  for (std::size_t i = 0; i < dek.size(); ++i) dek.data()[i] = static_cast<std::uint8_t>(i);
  const std::string id = "0b5e2e1a-6f0c-4d8e-9a51-2c7d3b8e9f10";
  const auto wrapped = wrapKeyForRow(kek, id, KeyScope::Study, "1.2.3", dek);
  EXPECT_EQ(wrapped.size(), 40u);
  EXPECT_EQ(bytesOf(unwrapKeyForRow(kek, id, KeyScope::Study, "1.2.3", wrapped)), bytesOf(dek));
  EXPECT_NE(wrapped, wrapKey(kek, dek)) << "the row-bound wrap must not equal the plain wrap";
  EXPECT_THROW(unwrapKeyForRow(kek, id, KeyScope::Study, "1.2.33", wrapped), KeystoreError);
  // Field boundaries are length-prefixed: moving a character between fields changes the key.
  EXPECT_THROW(unwrapKeyForRow(kek, id, KeyScope::Study, "1.2.3 ", wrapped), KeystoreError);
}

TEST(KeystoreMigration, Version1StoreIsMigratedAndKeepsItsKeys) {
  TempDir dir;
  const std::string path = dir.file("keystore.db");
  // A schema version 1 keystore as the previous release wrote it: plain RFC 5649 wraps.
  SecretBytes dek(32);
  for (std::size_t i = 0; i < dek.size(); ++i) dek.data()[i] = static_cast<std::uint8_t>(0x40 + i);
  const std::vector<std::uint8_t> wrapped = wrapKey(masterKey(1), dek);
  const std::vector<std::uint8_t> check = masterKeyCheckValue(masterKey(1));
  auto hex = [](const std::vector<std::uint8_t>& v) {
    std::string out;
    char b[3];
    for (auto c : v) {
      std::snprintf(b, sizeof b, "%02x", c);
      out += b;
    }
    return out;
  };
  const std::string id = "11111111-2222-4333-8444-555555555555";
  execSql(path,
          "PRAGMA journal_mode=WAL;"
          "CREATE TABLE meta (name TEXT PRIMARY KEY NOT NULL, value NOT NULL);"
          "CREATE TABLE data_keys (id TEXT PRIMARY KEY NOT NULL, scope TEXT NOT NULL, scope_uid TEXT NOT NULL,"
          " wrapped BLOB NOT NULL, created_at TEXT NOT NULL, UNIQUE (scope, scope_uid));"
          "INSERT INTO meta VALUES ('schema_version', 1), ('kek_check', x'" + hex(check) + "');"
          "INSERT INTO data_keys VALUES ('" + id + "', 'study', '1.2.3', x'" + hex(wrapped) + "', '2024-01-01T00:00:00Z');");
  {
    auto store = Keystore::open(path, masterKey(1), anchored(dir));
    EXPECT_TRUE(store->openReport().migrated);
    EXPECT_FALSE(store->openReport().createdNewKeystore);
    EXPECT_TRUE(store->openReport().anchorWritten);
    EXPECT_EQ(bytesOf(store->get(id).key), bytesOf(dek));
    EXPECT_TRUE(store->verify().empty());
  }
  EXPECT_NE(blobOf(path, "SELECT wrapped FROM data_keys"), wrapped) << "old-format wrap left in place";
  auto reopened = Keystore::open(path, masterKey(1), anchored(dir));
  EXPECT_FALSE(reopened->openReport().migrated);
  EXPECT_EQ(bytesOf(reopened->getOrCreate(KeyScope::Study, "1.2.3").key), bytesOf(dek));
}

TEST(KeystoreBackup, OnlineBackupOpensWithTheSameKeys) {
  TempDir dir;
  const std::string path = dir.file("keystore.db");
  auto store = Keystore::open(path, masterKey(1), anchored(dir));
  std::vector<DataKey> keys;
  for (int i = 0; i < 20; ++i) keys.push_back(store->getOrCreate(KeyScope::Study, "1.2.9." + std::to_string(i)));
  const std::string backup = dir.file("backup.db");
  store->backupTo(backup);  // while the store is open and its newest keys are only in the WAL
  EXPECT_FALSE(fs::exists(backup + "-wal"));
  EXPECT_EQ(fs::status(backup).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_THROW(store->backupTo(backup), KeystoreError) << "an existing file must never be overwritten";

  TempDir fresh;
  const std::string restored = fresh.file("keystore.db");
  fs::copy_file(backup, restored);
  auto copy = Keystore::open(restored, masterKey(1), anchored(fresh));
  EXPECT_EQ(copy->openReport().keystoreId, store->openReport().keystoreId);
  for (const DataKey& k : keys) EXPECT_EQ(bytesOf(copy->get(k.id).key), bytesOf(k.key));
  EXPECT_THROW(Keystore::open(restored, masterKey(2)), KeystoreError);
}

TEST(KeystoreRotation, RewrapsEveryKeyAndRetiresTheOldMasterKey) {
  TempDir dir;
  const std::string path = dir.file("keystore.db");
  std::vector<DataKey> keys;
  std::vector<std::vector<std::uint8_t>> oldWraps;
  {
    auto store = Keystore::open(path, masterKey(1), anchored(dir));
    for (int i = 0; i < 10; ++i) keys.push_back(store->getOrCreate(KeyScope::Study, "1.2.7." + std::to_string(i)));
    for (const DataKey& k : keys) oldWraps.push_back(blobOf(path, "SELECT wrapped FROM data_keys WHERE id = '" + k.id + "'"));
    store->rotateMasterKey(masterKey(2));
    // The running instance keeps working under the new key.
    for (const DataKey& k : keys) EXPECT_EQ(bytesOf(store->get(k.id).key), bytesOf(k.key));
  }
  EXPECT_EQ(readAnchor(dir.file("master.key.anchor"))->kekCheck, masterKeyCheckValue(masterKey(2)));
  for (const auto& wrap : oldWraps) EXPECT_FALSE(foundInKeystoreFiles(path, wrap)) << "an old wrap survived";
  EXPECT_TRUE(has(errorOf([&] { Keystore::open(path, masterKey(1)); }), "does not match"));
  auto store = Keystore::open(path, masterKey(2), anchored(dir));
  for (const DataKey& k : keys) EXPECT_EQ(bytesOf(store->get(k.id).key), bytesOf(k.key));
  EXPECT_TRUE(store->verify().empty());
}

TEST(KeystoreRotation, ProcessHoldingTheOldKeyCannotAddKeys) {
  TempDir dir;
  const std::string path = dir.file("keystore.db");
  auto stale = Keystore::open(path, masterKey(1));
  stale->getOrCreate(KeyScope::Study, "1.2.1");
  Keystore::open(path, masterKey(1))->rotateMasterKey(masterKey(2));
  EXPECT_THROW(stale->getOrCreate(KeyScope::Study, "1.2.2"), KeystoreError);
  EXPECT_THROW(stale->getOrCreate(KeyScope::Study, "1.2.1"), KeystoreError) << "cached key not dropped";
  EXPECT_EQ(Keystore::open(path, masterKey(2))->list().size(), 1u);
}

TEST(KeystoreShred, KeyIsGoneFromEveryFileAndLookupsSayDestroyed) {
  TempDir dir;
  const std::string path = dir.file("keystore.db");
  auto store = Keystore::open(path, masterKey(1), anchored(dir));
  for (int i = 0; i < 50; ++i) store->getOrCreate(KeyScope::Study, "1.2.5." + std::to_string(i));
  const DataKey victim = store->getOrCreate(KeyScope::Study, kStudy);
  const DataKey other = store->getOrCreate(KeyScope::Study, "1.2.5.7");
  const auto wrapped = blobOf(path, "SELECT wrapped FROM data_keys WHERE id = '" + victim.id + "'");
  ASSERT_EQ(wrapped.size(), 40u);
  ASSERT_TRUE(foundInKeystoreFiles(path, wrapped));

  EXPECT_EQ(store->shred(KeyScope::Study, kStudy), victim.id);
  EXPECT_FALSE(foundInKeystoreFiles(path, wrapped)) << "the wrapped key survived in a keystore file";
  EXPECT_FALSE(foundInKeystoreFiles(path, bytesOf(victim.key)));
  EXPECT_THROW(store->get(victim.id), KeyDestroyedError);
  EXPECT_THROW(store->getOrCreate(KeyScope::Study, kStudy), KeyDestroyedError) << "a shredded study got a new key";
  EXPECT_TRUE(store->isShredded(victim.id));
  EXPECT_EQ(bytesOf(store->get(other.id).key), bytesOf(other.key));
  EXPECT_EQ(store->shred(KeyScope::Study, "1.2.404"), "");
  store.reset();
  auto reopened = Keystore::open(path, masterKey(1), anchored(dir));
  EXPECT_THROW(reopened->get(victim.id), KeyDestroyedError);
  EXPECT_TRUE(reopened->verify().empty());
}

TEST(KeystoreShred, OtherProcessDropsTheCachedKey) {
  TempDir dir;
  const std::string path = dir.file("keystore.db");
  auto gateway = Keystore::open(path, masterKey(1));
  const DataKey key = gateway->getOrCreate(KeyScope::Study, kStudy);
  EXPECT_NO_THROW(gateway->get(key.id));  // now cached
  Keystore::open(path, masterKey(1))->shred(KeyScope::Study, kStudy);
  EXPECT_THROW(gateway->get(key.id), KeyDestroyedError);
}

// --- escrow journal -------------------------------------------------------------------------------------

namespace {

OpenOptions escrowed(const TempDir& dir, const std::string& journal) {
  OpenOptions o = anchored(dir);
  o.escrowDirectory = journal;
  return o;
}

std::size_t journalEntries(const std::string& journal) {
  std::size_t n = 0;
  for (const auto& entry : fs::directory_iterator(journal)) n += entry.path().extension() == ".key";
  return n;
}

}  // namespace

TEST(KeystoreEscrow, EveryNewKeyIsEscrowedBeforeItIsReturned) {
  TempDir dir, journal;
  auto store = Keystore::open(dir.file("keystore.db"), masterKey(1), escrowed(dir, journal.path().string()));
  const DataKey key = store->getOrCreate(KeyScope::Study, kStudy);
  EXPECT_EQ(journalEntries(journal.path().string()), 1u);
  EscrowJournal j(journal.path().string());
  const auto record = j.find(KeyScope::Study, kStudy);
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->id, key.id);
  EXPECT_EQ(bytesOf(unwrapKeyForRow(masterKey(1), record->id, record->scope, record->scopeUid, record->wrapped)),
            bytesOf(key.key));
  EXPECT_FALSE(foundInKeystoreFiles(journal.file(fs::directory_iterator(journal.path())->path().filename()),
                                    bytesOf(key.key)))
      << "the journal must hold the key wrapped, never in clear";
}

TEST(KeystoreEscrow, LostKeystoreIsRebuiltFromTheJournal) {
  TempDir dir, journal;
  const std::string path = dir.file("keystore.db");
  std::vector<DataKey> keys;
  {
    auto store = Keystore::open(path, masterKey(1), escrowed(dir, journal.path().string()));
    for (int i = 0; i < 5; ++i) keys.push_back(store->getOrCreate(KeyScope::Study, "1.2.6." + std::to_string(i)));
  }
  fs::remove(path);
  EXPECT_THROW(Keystore::open(path, masterKey(1), escrowed(dir, journal.path().string())), KeystoreError)
      << "a vanished keystore is refused even with a journal: recovery is an explicit step";
  OpenOptions recover = escrowed(dir, journal.path().string());
  recover.acceptNewKeystore = true;
  auto store = Keystore::open(path, masterKey(1), recover);
  EXPECT_EQ(store->openReport().importedFromEscrow, 5u);
  for (const DataKey& k : keys) EXPECT_EQ(bytesOf(store->get(k.id).key), bytesOf(k.key));
  EXPECT_EQ(store->getOrCreate(KeyScope::Study, "1.2.6.3").id, keys[3].id) << "a recovered study got a new key";
}

TEST(KeystoreEscrow, OlderBackupIsCompletedAndNeverForksAStudy) {
  TempDir dir, journal;
  const std::string path = dir.file("keystore.db");
  DataKey late;
  {
    auto store = Keystore::open(path, masterKey(1), escrowed(dir, journal.path().string()));
    store->getOrCreate(KeyScope::Study, "1.2.6.1");
    store->backupTo(dir.file("old.db"));
    late = store->getOrCreate(KeyScope::Study, "1.2.6.2");
  }
  fs::remove(path);
  fs::copy_file(dir.file("old.db"), path);
  // Without the journal the running gateway would mint a second key; with it the key is refused...
  {
    auto noJournal = Keystore::open(path, masterKey(1), anchored(dir));
    EXPECT_THROW(noJournal->get(late.id), KeystoreError);
  }
  fs::remove(path);
  fs::copy_file(dir.file("old.db"), path);
  auto store = Keystore::open(path, masterKey(1), escrowed(dir, journal.path().string()));
  EXPECT_EQ(store->openReport().importedFromEscrow, 1u);  // ...and imported at the next start
  EXPECT_EQ(store->getOrCreate(KeyScope::Study, "1.2.6.2").id, late.id);
}

TEST(KeystoreEscrow, RunningGatewayRefusesAStudyOnlyTheJournalKnows) {
  TempDir dir, journal, other;
  const std::string path = dir.file("keystore.db");
  auto store = Keystore::open(path, masterKey(1), escrowed(dir, journal.path().string()));
  // Another keystore (same master key) escrowed a key for a study into the same journal meanwhile.
  auto stray = Keystore::open(other.file("keystore.db"), masterKey(1), escrowed(other, journal.path().string()));
  const DataKey known = stray->getOrCreate(KeyScope::Study, "1.2.6.9");
  const std::string message = errorOf([&] { store->getOrCreate(KeyScope::Study, "1.2.6.9"); });
  EXPECT_TRUE(has(message, "escrow journal holds data key " + known.id)) << message;
  EXPECT_EQ(store->list().size(), 0u);
}

TEST(KeystoreEscrow, DamagedRowIsRepairedFromTheJournal) {
  TempDir dir, journal;
  const std::string path = dir.file("keystore.db");
  DataKey key;
  {
    auto store = Keystore::open(path, masterKey(1), escrowed(dir, journal.path().string()));
    key = store->getOrCreate(KeyScope::Study, kStudy);
  }
  execSql(path, "UPDATE data_keys SET wrapped = zeroblob(40)");
  auto store = Keystore::open(path, masterKey(1), escrowed(dir, journal.path().string()));
  EXPECT_EQ(store->openReport().repairedFromEscrow, 1u);
  EXPECT_TRUE(store->verify().empty());
  EXPECT_EQ(bytesOf(store->get(key.id).key), bytesOf(key.key));
}

TEST(KeystoreEscrow, ShredAndRotationKeepTheJournalInStep) {
  TempDir dir, journal;
  const std::string path = dir.file("keystore.db");
  auto store = Keystore::open(path, masterKey(1), escrowed(dir, journal.path().string()));
  const DataKey victim = store->getOrCreate(KeyScope::Study, kStudy);
  const DataKey kept = store->getOrCreate(KeyScope::Study, "1.2.6.5");
  EscrowJournal j(journal.path().string());
  const auto victimWrap = asJournalText(j.find(KeyScope::Study, kStudy)->wrapped);
  store->shred(KeyScope::Study, kStudy);
  EXPECT_FALSE(j.find(KeyScope::Study, kStudy).has_value());
  EXPECT_EQ(journalEntries(journal.path().string()), 1u);
  store->rotateMasterKey(masterKey(2));
  const auto record = j.find(KeyScope::Study, "1.2.6.5");
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->kekCheck, masterKeyCheckValue(masterKey(2)));
  EXPECT_EQ(bytesOf(unwrapKeyForRow(masterKey(2), record->id, record->scope, record->scopeUid, record->wrapped)),
            bytesOf(kept.key));
  store.reset();
  fs::remove(path);
  OpenOptions recover = escrowed(dir, journal.path().string());
  recover.acceptNewKeystore = true;
  auto rebuilt = Keystore::open(path, masterKey(2), recover);
  EXPECT_EQ(rebuilt->list().size(), 1u) << "a shredded key came back from the journal";
  for (const auto& entry : fs::directory_iterator(journal.path())) {
    EXPECT_FALSE(foundInKeystoreFiles(entry.path().string(), victimWrap)) << entry.path();
  }
}

TEST(KeystoreEscrow, ShredAlsoDestroysAnEntryLeftHalfWrittenByACrash) {
  TempDir dir, journal;
  auto store = Keystore::open(dir.file("keystore.db"), masterKey(1), escrowed(dir, journal.path().string()));
  store->getOrCreate(KeyScope::Study, kStudy);
  const DataKey kept = store->getOrCreate(KeyScope::Study, "1.2.6.7");
  EscrowJournal j(journal.path().string());
  const auto victimWrap = asJournalText(j.find(KeyScope::Study, kStudy)->wrapped);
  // What a write interrupted between its fsync and its rename leaves: the same entry under a temporary name.
  fs::path entry;
  for (const auto& e : fs::directory_iterator(journal.path()))
    if (foundInKeystoreFiles(e.path().string(), victimWrap)) entry = e.path();
  ASSERT_FALSE(entry.empty());
  const fs::path leftover = entry.string() + ".tmp-4242-0011223344556677";
  fs::copy_file(entry, leftover);

  store->shred(KeyScope::Study, kStudy);
  EXPECT_FALSE(fs::exists(leftover));
  for (const auto& e : fs::directory_iterator(journal.path()))
    EXPECT_FALSE(foundInKeystoreFiles(e.path().string(), victimWrap)) << e.path();
  EXPECT_TRUE(j.find(KeyScope::Study, "1.2.6.7").has_value()) << "another study's entry was removed";
  EXPECT_EQ(bytesOf(store->get(kept.id).key), bytesOf(kept.key));
}
