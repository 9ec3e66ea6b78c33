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

TEST(ConfigKeystore, PathOrPostgresButNotBoth) {
  auto both = issuesOf(document("{ path: /k.db, postgres: 'dbname=k', master_key_file: /k }"));
  ASSERT_EQ(both.size(), 1u);
  EXPECT_NE(both[0].message.find("not both"), std::string::npos) << both[0].message;
  auto neither = issuesOf(document("{ master_key_file: /k }"));
  ASSERT_EQ(neither.size(), 1u);
  EXPECT_EQ(neither[0].key, "keystore.path");
  // The escrow journal applies to both keystores.
  EXPECT_TRUE(issuesOf(document("{ postgres: 'dbname=k', master_key_file: /k, escrow_dir: /e }")).empty());
  const Config pg = parseConfig(document("{ postgres: 'dbname=k', master_key_file: /k, escrow_dir: /e }"), "t.yaml");
  EXPECT_EQ(pg.keystore.escrowDir, "/e");
}

TEST(ConfigKeystore, MasterKeyInAPkcs11Token) {
  const Config c = parseConfig(document("{ path: /k.db, master_key: { provider: pkcs11, module: /usr/lib/p11.so, "
                                        "token_label: gw, key_label: kek, pin_file: /etc/pacsgw/pin } }"),
                               "test.yaml");
  EXPECT_TRUE(c.keystore.usesPkcs11());
  EXPECT_EQ(c.keystore.pkcs11.module, "/usr/lib/p11.so");
  EXPECT_EQ(c.keystore.pkcs11.tokenLabel, "gw");
  EXPECT_EQ(c.keystore.pkcs11.keyLabel, "kek");
  EXPECT_EQ(c.keystore.pkcs11.pinFile, "/etc/pacsgw/pin");
  EXPECT_TRUE(c.keystore.masterKeyFile.empty());
  // The round trip through the printed configuration keeps the provider.
  const Config again = parseConfig(toYaml(c), "again.yaml");
  EXPECT_EQ(again.keystore.pkcs11.keyLabel, "kek");
  EXPECT_EQ(again.keystore.pkcs11.pinFile, "/etc/pacsgw/pin");
}

TEST(ConfigKeystore, MasterKeyProviderFileAndEnvAreTheShortKeys) {
  const Config f = parseConfig(document("{ path: /k.db, master_key: { provider: file, path: /etc/k } }"), "t.yaml");
  EXPECT_EQ(f.keystore.masterKeyFile, "/etc/k");
  EXPECT_FALSE(f.keystore.usesPkcs11());
  const Config e = parseConfig(document("{ path: /k.db, master_key: { provider: env, variable: KEK } }"), "t.yaml");
  EXPECT_EQ(e.keystore.masterKeyEnv, "KEK");
}

TEST(ConfigKeystore, MasterKeyProviderMistakesAreNamed) {
  auto twoSources = issuesOf(document("{ path: /k.db, master_key_file: /k, master_key: { provider: file, path: /k } }"));
  ASSERT_EQ(twoSources.size(), 1u);
  EXPECT_NE(twoSources[0].message.find("exactly one"), std::string::npos);
  auto noPin = issuesOf(document("{ path: /k.db, master_key: { provider: pkcs11, module: /m.so, token_label: t, "
                                 "key_label: k } }"));
  ASSERT_EQ(noPin.size(), 1u);
  EXPECT_NE(noPin[0].message.find("pin_file or pin_env"), std::string::npos) << noPin[0].message;
  auto twoPins = issuesOf(document("{ path: /k.db, master_key: { provider: pkcs11, module: /m.so, token_label: t, "
                                   "key_label: k, pin_file: /p, pin_env: PIN } }"));
  ASSERT_EQ(twoPins.size(), 1u);
  auto missing = issuesOf(document("{ path: /k.db, master_key: { provider: pkcs11, pin_env: PIN } }"));
  ASSERT_EQ(missing.size(), 3u);  // module, token_label, key_label
  EXPECT_EQ(missing[0].key, "keystore.master_key.module");
  auto stray = issuesOf(document("{ path: /k.db, master_key: { provider: file, path: /k, pin_file: /p } }"));
  ASSERT_EQ(stray.size(), 1u);
  EXPECT_EQ(stray[0].key, "keystore.master_key.pin_file");
  auto unknown = issuesOf(document("{ path: /k.db, master_key: { provider: tpm } }"));
  ASSERT_EQ(unknown.size(), 1u);
  EXPECT_NE(unknown[0].message.find("file, env, pkcs11"), std::string::npos) << unknown[0].message;
}
