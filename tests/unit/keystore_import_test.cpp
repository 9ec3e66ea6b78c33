// Importing a data key received from another site (relay): stored under this keystore's master key
// with its own id, escrowed, idempotent for the same key, and never forking a study's key.
#include "keystore/keystore.h"
#include "keystore_test_support.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <filesystem>

using namespace pacsgw;
using keystore::KeyScope;

namespace {

SecretBytes bytes(std::uint8_t seed) {
  SecretBytes k(32);
  for (std::size_t i = 0; i < 32; ++i) k.data()[i] = static_cast<std::uint8_t>(seed + 5 * i);
  return k;
}

bool same(const SecretBytes& a, const SecretBytes& b) {
  return a.size() == b.size() && std::equal(a.data(), a.data() + a.size(), b.data());
}

constexpr const char* kId = "0b7e6c1a-2d3f-4e5a-8b9c-0d1e2f3a4b5c";
constexpr const char* kOtherId = "1c8f7d2b-3e4a-4f6b-9cad-1e2f3a4b5c6d";

}  // namespace

TEST(KeystoreImport, StoredUnderItsIdAndSurvivesReopen) {
  pacsgw::testing::TempDir dir{"pacsgw-import"};
  {
    auto keys = keystore::Keystore::open(dir.file("k.db"), bytes(1));
    const keystore::DataKey imported = keys->importKey({kId, KeyScope::Study, "1.2.3", bytes(40)});
    EXPECT_EQ(imported.id, kId);
    EXPECT_TRUE(same(keys->getOrCreate(KeyScope::Study, "1.2.3").key, bytes(40)));  // no second key issued
  }
  auto keys = keystore::Keystore::open(dir.file("k.db"), bytes(1));
  EXPECT_TRUE(same(keys->get(kId).key, bytes(40)));
  EXPECT_TRUE(keys->verify().empty());
}

TEST(KeystoreImport, SameKeyAgainIsAcceptedAnotherIsRefused) {
  pacsgw::testing::TempDir dir{"pacsgw-import"};
  auto keys = keystore::Keystore::open(dir.file("k.db"), bytes(1));
  keys->importKey({kId, KeyScope::Study, "1.2.3", bytes(40)});
  EXPECT_NO_THROW(keys->importKey({kId, KeyScope::Study, "1.2.3", bytes(40)}));
  EXPECT_THROW(keys->importKey({kId, KeyScope::Study, "1.2.3", bytes(41)}), keystore::KeyConflictError);
  EXPECT_THROW(keys->importKey({kOtherId, KeyScope::Study, "1.2.3", bytes(40)}), keystore::KeyConflictError);
  EXPECT_THROW(keys->importKey({kId, KeyScope::Study, "1.2.4", bytes(40)}), keystore::KeyConflictError);
  // A study this site gave a key of its own keeps it.
  const keystore::DataKey own = keys->getOrCreate(KeyScope::Study, "9.9.9");
  EXPECT_THROW(keys->importKey({kOtherId, KeyScope::Study, "9.9.9", bytes(42)}), keystore::KeyConflictError);
  EXPECT_TRUE(same(keys->getOrCreate(KeyScope::Study, "9.9.9").key, own.key));
}

TEST(KeystoreImport, ShreddedStudyIsNotImportedAgain) {
  pacsgw::testing::TempDir dir{"pacsgw-import"};
  auto keys = keystore::Keystore::open(dir.file("k.db"), bytes(1));
  keys->importKey({kId, KeyScope::Study, "1.2.3", bytes(40)});
  keys->shred(KeyScope::Study, "1.2.3");
  EXPECT_THROW(keys->importKey({kId, KeyScope::Study, "1.2.3", bytes(40)}), keystore::KeyDestroyedError);
}

TEST(KeystoreImport, ImportedKeyIsEscrowedAndRecovered) {
  pacsgw::testing::TempDir dir{"pacsgw-import"};
  keystore::OpenOptions options;
  options.escrowDirectory = dir.file("journal");
  std::filesystem::create_directories(options.escrowDirectory);
  {
    auto keys = keystore::Keystore::open(dir.file("k.db"), bytes(1), options);
    keys->importKey({kId, KeyScope::Study, "1.2.3", bytes(40)});
  }
  std::filesystem::remove(dir.file("k.db"));
  std::filesystem::remove(dir.file("k.db-wal"));
  std::filesystem::remove(dir.file("k.db-shm"));
  auto keys = keystore::Keystore::open(dir.file("k.db"), bytes(1), options);
  EXPECT_EQ(keys->openReport().importedFromEscrow, 1u);
  EXPECT_TRUE(same(keys->get(kId).key, bytes(40)));
}
