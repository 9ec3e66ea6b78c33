#pragma once
// Helpers shared by the keystore unit tests.

#include "keystore/keystore.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <functional>
#include <string>

namespace pacsgw::testing {

// The message of the KeystoreError `action` throws, or a marker when it throws none.
inline std::string keystoreErrorOf(const std::function<void()>& action) {
  try {
    action();
  } catch (const keystore::KeystoreError& e) {
    return e.what();
  }
  return "(no KeystoreError thrown)";
}

// Runs SQL directly on a keystore file, as an attacker or a disk fault would.
inline void execSql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  const std::string message = error ? error : "";
  sqlite3_free(error);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << message;
}

}  // namespace pacsgw::testing
