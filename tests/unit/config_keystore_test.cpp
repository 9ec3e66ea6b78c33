// The keystore section's custody keys: SQLite file or shared PostgreSQL database, anchor, escrow journal.
#include "config/config.h"

#include <gtest/gtest.h>

#include <string>

using namespace pacsgw::config;

namespace {

std::string document(const std::string& keystore) {
  return "gateway: { ae_title: GW, port: 11112 }\n"
         "upstream: { ae_title: PACS, host: 127.0.0.1, port: 4242 }\n"
         "keystore: " + keystore + "\n";
}

std::vector<ConfigIssue> issuesOf(const std::string& yaml) {
  try {
    parseConfig(yaml, "test.yaml");
  } catch (const ConfigError& e) {
    return e.issues();
  }
  return {};
}

}  // namespace

TEST(ConfigKeystore, PostgresInsteadOfPathWithAnchorAndEscrow) {
  const Config c = parseConfig(document("{ postgres: 'host=db port=5432 dbname=keys user=gw', "
                                        "master_key_file: /k, anchor_file: /a/anchor }"),
                               "test.yaml");
  EXPECT_EQ(c.keystore.postgres, "host=db port=5432 dbname=keys user=gw");
  EXPECT_TRUE(c.keystore.path.empty());
  EXPECT_EQ(c.keystore.anchorFile, "/a/anchor");
  const Config s = parseConfig(document("{ path: /k.db, master_key_file: /k, escrow_dir: /mnt/escrow }"), "t.yaml");
  EXPECT_EQ(s.keystore.escrowDir, "/mnt/escrow");
  EXPECT_TRUE(s.keystore.postgres.empty());
}

TEST(ConfigKeystore, PathOrPostgresButNotBothAndNoEscrowForPostgres) {
  auto both = issuesOf(document("{ path: /k.db, postgres: 'dbname=k', master_key_file: /k }"));
  ASSERT_EQ(both.size(), 1u);
  EXPECT_NE(both[0].message.find("not both"), std::string::npos) << both[0].message;
  auto neither = issuesOf(document("{ master_key_file: /k }"));
  ASSERT_EQ(neither.size(), 1u);
  EXPECT_EQ(neither[0].key, "keystore.path");
  auto escrow = issuesOf(document("{ postgres: 'dbname=k', master_key_file: /k, escrow_dir: /e }"));
  ASSERT_EQ(escrow.size(), 1u);
  EXPECT_EQ(escrow[0].key, "keystore.escrow_dir");
}
