// The SQLite keystore against real files: creation, reopening, refusal of wrong keys and damaged files,
// scope independence and concurrent first use.
#include "keystore/key_cache.h"
#include "keystore/keystore.h"

#include "keystore_test_support.h"
#include "test_support.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <sys/stat.h>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

using pacsgw::SecretBytes;
using namespace pacsgw::keystore;
namespace fs = std::filesystem;

namespace {

struct TempDir : pacsgw::testing::TempDir {
  TempDir() : pacsgw::testing::TempDir("pacsgw-ks") {}
};



SecretBytes masterKey(std::uint8_t seed) {
  SecretBytes key(32);
  for (std::size_t i = 0; i < key.size(); ++i) key.data()[i] = static_cast<std::uint8_t>(seed + 7 * i);
  return key;
}

std::vector<std::uint8_t> bytesOf(const SecretBytes& s) {
  return std::vector<std::uint8_t>(s.data(), s.data() + s.size());
}

std::string errorOf(const std::function<void()>& action) { return pacsgw::testing::keystoreErrorOf(action); }

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

using pacsgw::testing::execSql;

std::string makeStoreWithKeys(const TempDir& dir, int count) {
  const std::string path = dir.file("keystore.db");
  auto store = Keystore::open(path, masterKey(1));
  for (int i = 0; i < count; ++i)
    store->getOrCreate(KeyScope::Study, "1.2.826.0.1.3680043.2.1125." + std::to_string(i));
  return path;
}

}  // namespace

TEST(Keystore, CreatesGetsListsAndReopens) {
  TempDir dir;
  const std::string path = dir.file("keystore.db");
  std::string id;
  std::vector<std::uint8_t> keyBytes;
  {
    auto store = Keystore::open(path, masterKey(1));
    EXPECT_TRUE(store->list().empty());
    const DataKey key = store->getOrCreate(KeyScope::Study, "1.2.3.4");
    id = key.id;
    keyBytes = bytesOf(key.key);
    EXPECT_EQ(key.scope, KeyScope::Study);
    EXPECT_EQ(key.scopeUid, "1.2.3.4");
    EXPECT_EQ(key.key.size(), 32u);
    // UUID v4 text: version nibble 4, variant 10xx.
    ASSERT_EQ(key.id.size(), 36u);
    EXPECT_EQ(key.id[14], '4');
    EXPECT_TRUE(std::string("89ab").find(key.id[19]) != std::string::npos) << key.id;

    const DataKey again = store->getOrCreate(KeyScope::Study, "1.2.3.4");
    EXPECT_EQ(again.id, id);
    EXPECT_EQ(bytesOf(again.key), keyBytes);
    EXPECT_TRUE(store->contains(id));
  }
  struct stat info {};
  ASSERT_EQ(::stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 077, 0u) << "keystore file must not be readable by group/other";

  auto store = Keystore::open(path, masterKey(1));
  const DataKey byId = store->get(id);
  EXPECT_EQ(byId.scope, KeyScope::Study);
  EXPECT_EQ(byId.scopeUid, "1.2.3.4");
  EXPECT_EQ(bytesOf(byId.key), keyBytes);
  EXPECT_EQ(bytesOf(store->getOrCreate(KeyScope::Study, "1.2.3.4").key), keyBytes);

  const std::vector<KeyInfo> all = store->list();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].id, id);
  EXPECT_EQ(all[0].scope, KeyScope::Study);
  EXPECT_EQ(all[0].scopeUid, "1.2.3.4");
  // ISO 8601 UTC, e.g. 2024-05-01T09:30:00Z
  ASSERT_EQ(all[0].createdAt.size(), 20u) << all[0].createdAt;
  EXPECT_EQ(all[0].createdAt[10], 'T');
  EXPECT_EQ(all[0].createdAt.back(), 'Z');
}

TEST(Keystore, ScopesAndUidsAreIndependent) {
  TempDir dir;
  auto store = Keystore::open(dir.file("keystore.db"), masterKey(1));
  const DataKey study = store->getOrCreate(KeyScope::Study, "1.2.3");
  const DataKey series = store->getOrCreate(KeyScope::Series, "1.2.3");
  const DataKey instance = store->getOrCreate(KeyScope::Instance, "1.2.3");
  const DataKey otherStudy = store->getOrCreate(KeyScope::Study, "1.2.4");
  const std::set<std::string> ids = {study.id, series.id, instance.id, otherStudy.id};
  EXPECT_EQ(ids.size(), 4u);
  EXPECT_NE(bytesOf(study.key), bytesOf(series.key));
  EXPECT_NE(bytesOf(study.key), bytesOf(otherStudy.key));
  EXPECT_EQ(store->get(series.id).scope, KeyScope::Series);
  EXPECT_EQ(store->list().size(), 4u);
}

TEST(Keystore, UnknownAndMalformedIds) {
  TempDir dir;
  auto store = Keystore::open(dir.file("keystore.db"), masterKey(1));
  const std::string unknown = "0b5e2e1a-6f0c-4d8e-9a51-2c7d3b8e9f10";
  EXPECT_FALSE(store->contains(unknown));
  EXPECT_TRUE(contains(errorOf([&] { store->get(unknown); }), unknown));
  EXPECT_FALSE(store->contains("not-a-uuid"));
  EXPECT_THROW(store->get("not-a-uuid\n"), KeystoreError);
  EXPECT_THROW(store->getOrCreate(KeyScope::Study, ""), KeystoreError);
}

TEST(Keystore, WrongMasterKeyIsRefused) {
  TempDir dir;
  const std::string path = makeStoreWithKeys(dir, 1);
  const std::string message = errorOf([&] { Keystore::open(path, masterKey(2)); });
  EXPECT_TRUE(contains(message, "master key does not match this keystore (" + path + ")")) << message;
  EXPECT_TRUE(contains(message, "refusing to start")) << message;
  // The correct key still works afterwards.
  EXPECT_EQ(Keystore::open(path, masterKey(1))->list().size(), 1u);
}

TEST(Keystore, MasterKeyMustBe32Bytes) {
  TempDir dir;
  EXPECT_THROW(Keystore::open(dir.file("keystore.db"), SecretBytes(16)), KeystoreError);
}

TEST(Keystore, MissingDirectoryIsRefused) {
  TempDir dir;
  const std::string message = errorOf([&] { Keystore::open(dir.file("absent/keystore.db"), masterKey(1)); });
  EXPECT_TRUE(contains(message, "does not exist")) << message;
}

TEST(Keystore, GarbageFileIsRefused) {
  TempDir dir;
  const std::string path = dir.file("keystore.db");
  {
    std::ofstream out(path, std::ios::binary);
    for (int i = 0; i < 4096; ++i) out.put(static_cast<char>((i * 131) ^ 0x5a));
  }
  const std::string message = errorOf([&] { Keystore::open(path, masterKey(1)); });
  EXPECT_TRUE(contains(message, path)) << message;
  EXPECT_TRUE(contains(message, "not a valid SQLite database")) << message;
}

TEST(Keystore, TruncatedFileIsRefused) {
  TempDir dir;
  const std::string path = makeStoreWithKeys(dir, 300);
  const std::uintmax_t size = fs::file_size(path);
  ASSERT_GT(size, 8192u) << "need a multi-page database for this test";
  for (std::uintmax_t newSize : {size / 2, std::uintmax_t{50}}) {
    TempDir copyDir;
    const std::string copy = copyDir.file("keystore.db");
    fs::copy_file(path, copy);
    fs::resize_file(copy, newSize);
    const std::string message = errorOf([&] { Keystore::open(copy, masterKey(1)); });
    EXPECT_TRUE(contains(message, copy)) << message;
    EXPECT_FALSE(contains(message, "no KeystoreError")) << "truncated to " << newSize;
  }
}

TEST(Keystore, CorruptedPageIsRefused) {
  TempDir dir;
  const std::string path = makeStoreWithKeys(dir, 300);
  EXPECT_FALSE(fs::exists(path + "-wal")) << "closing must checkpoint the WAL into the main file";
  {
    // Overwrite the whole third page: damage in a page's free space alone would be harmless.
    std::fstream file(path, std::ios::binary | std::ios::in | std::ios::out);
    file.seekp(2 * 4096);
    for (int i = 0; i < 4096; ++i) file.put(static_cast<char>(0xa5));
  }
  const std::string message = errorOf([&] { Keystore::open(path, masterKey(1)); });
  EXPECT_TRUE(contains(message, path)) << message;
  EXPECT_FALSE(contains(message, "no KeystoreError"));
}

TEST(Keystore, ForeignSqliteDatabaseIsRefused) {
  TempDir dir;
  const std::string path = dir.file("other.db");
  execSql(path, "CREATE TABLE patients (id INTEGER PRIMARY KEY, name TEXT)");
  const std::string message = errorOf([&] { Keystore::open(path, masterKey(1)); });
  EXPECT_TRUE(contains(message, "not a pacsgw keystore")) << message;
}

TEST(Keystore, UnexpectedSchemaVersionIsRefused) {
  TempDir dir;
  const std::string path = makeStoreWithKeys(dir, 1);
  execSql(path, "UPDATE meta SET value = 3 WHERE name = 'schema_version'");
  const std::string message = errorOf([&] { Keystore::open(path, masterKey(1)); });
  EXPECT_TRUE(contains(message, "schema version 3")) << message;
}

TEST(Keystore, MissingKeyCheckIsRefused) {
  TempDir dir;
  const std::string path = makeStoreWithKeys(dir, 1);
  execSql(path, "DELETE FROM meta WHERE name = 'kek_check'");
  EXPECT_TRUE(contains(errorOf([&] { Keystore::open(path, masterKey(1)); }), "check value"));
}

TEST(Keystore, DamagedWrappedKeyNamesTheKeyId) {
  TempDir dir;
  const std::string path = dir.file("keystore.db");
  std::string id;
  {
    auto store = Keystore::open(path, masterKey(1));
    id = store->getOrCreate(KeyScope::Study, "1.2.3").id;
    store->getOrCreate(KeyScope::Study, "1.2.4");
  }
  execSql(path, "UPDATE data_keys SET wrapped = zeroblob(40) WHERE id = '" + id + "'");
  auto store = Keystore::open(path, masterKey(1));
  const std::string message = errorOf([&] { store->get(id); });
  EXPECT_TRUE(contains(message, "data key " + id)) << message;
  EXPECT_TRUE(contains(message, "failed to unwrap")) << message;
  EXPECT_TRUE(contains(errorOf([&] { store->getOrCreate(KeyScope::Study, "1.2.3"); }), id));
  // Other keys are unaffected.
  EXPECT_NO_THROW(store->getOrCreate(KeyScope::Study, "1.2.4"));

  // A wrapped blob of an impossible length is rejected before any unwrap.
  execSql(path, "UPDATE data_keys SET wrapped = zeroblob(7) WHERE id = '" + id + "'");
  auto reopened = Keystore::open(path, masterKey(1));
  EXPECT_TRUE(contains(errorOf([&] { reopened->get(id); }), id));
}

TEST(Keystore, SwappedWrappedKeysBetweenStoresFailToUnwrap) {
  // A row copied from a keystore made with another master key must not yield a key.
  TempDir dir;
  const std::string a = dir.file("a.db");
  const std::string b = dir.file("b.db");
  Keystore::open(a, masterKey(1))->getOrCreate(KeyScope::Study, "1.2.3");
  const std::string idB = Keystore::open(b, masterKey(2))->getOrCreate(KeyScope::Study, "1.2.3").id;
  execSql(a, "ATTACH '" + b + "' AS other; UPDATE data_keys SET wrapped = (SELECT wrapped FROM other.data_keys)");
  auto store = Keystore::open(a, masterKey(1));
  EXPECT_THROW(store->getOrCreate(KeyScope::Study, "1.2.3"), KeystoreError);
  (void)idB;
}

TEST(Keystore, ConcurrentFirstUseCreatesOneKey) {
  TempDir dir;
  auto store = Keystore::open(dir.file("keystore.db"), masterKey(1));
  constexpr int kThreads = 8;
  std::vector<std::string> ids(kThreads);
  std::vector<std::vector<std::uint8_t>> keys(kThreads);
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < 50; ++i) {
        const DataKey key = store->getOrCreate(KeyScope::Study, "1.2.840.99.1");
        if (i == 0) {
          ids[t] = key.id;
          keys[t] = bytesOf(key.key);
        } else if (key.id != ids[t]) {
          ids[t] = "changed";
        }
      }
    });
  }
  go = true;
  for (auto& thread : threads) thread.join();
  for (int t = 1; t < kThreads; ++t) {
    EXPECT_EQ(ids[t], ids[0]);
    EXPECT_EQ(keys[t], keys[0]);
  }
  EXPECT_EQ(store->list().size(), 1u);
}

TEST(Keystore, ConcurrentFirstUseThroughSeparateConnectionsCreatesOneKeyPerStudy) {
  // Two Keystore objects on one file behave like two gateway processes: only the UNIQUE constraint
  // and the read-back after INSERT keep them from handing out different keys for one study.
  TempDir dir;
  const std::string path = dir.file("keystore.db");
  auto first = Keystore::open(path, masterKey(1));
  auto second = Keystore::open(path, masterKey(1));
  constexpr int kThreads = 8;
  constexpr int kStudies = 40;
  std::vector<std::vector<std::string>> seen(kThreads, std::vector<std::string>(kStudies));
  std::vector<std::atomic<int>> creations(kStudies);
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Keystore& store = (t % 2 == 0) ? *first : *second;
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < kStudies; ++i) {
        const int study = (t % 4 < 2) ? i : kStudies - 1 - i;  // half the threads walk backwards
        bool created = false;
        seen[t][study] = store.getOrCreate(KeyScope::Study, "1.2.840.99." + std::to_string(study), &created).id;
        if (created) ++creations[study];
      }
    });
  }
  go = true;
  for (auto& thread : threads) thread.join();
  for (int s = 0; s < kStudies; ++s) {
    for (int t = 1; t < kThreads; ++t) EXPECT_EQ(seen[t][s], seen[0][s]) << "study " << s << " thread " << t;
    // Exactly one call, in either "process", reports that its key was the one stored.
    EXPECT_EQ(creations[s].load(), 1) << "study " << s;
  }
  EXPECT_EQ(first->list().size(), static_cast<std::size_t>(kStudies));
}

TEST(KeyCache, EvictsLeastRecentlyUsed) {
  using pacsgw::keystore::detail::KeyCache;
  KeyCache cache(2);
  auto make = [](const std::string& id, const std::string& uid) {
    return DataKey{id, KeyScope::Study, uid, SecretBytes(32)};
  };
  cache.put(make("a", "1.1"));
  cache.put(make("b", "1.2"));
  ASSERT_NE(cache.findById("a"), nullptr);  // "a" is now the most recent
  cache.put(make("c", "1.3"));              // evicts "b"
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.findById("b"), nullptr);
  EXPECT_EQ(cache.findByScope(KeyScope::Study, "1.2"), nullptr);
  ASSERT_NE(cache.findByScope(KeyScope::Study, "1.1"), nullptr);
  EXPECT_EQ(cache.findByScope(KeyScope::Study, "1.1")->id, "a");
  EXPECT_EQ(cache.findByScope(KeyScope::Series, "1.1"), nullptr);
  EXPECT_NE(cache.findById("c"), nullptr);
}
