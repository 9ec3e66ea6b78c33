// Built-in defaults, YAML output round trips, and the example files shipped in config/examples.
#include "config/config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

using namespace pacsgw::config;

namespace {

// PACSGW_TEST_DATA_DIR is <repo>/tests/data; resolve lexically so the data folder need not exist.
const std::string kExamplesDir =
    (std::filesystem::path(PACSGW_TEST_DATA_DIR).parent_path().parent_path() / "config" / "examples").string();

void expectSame(const Config& a, const Config& b) {
  EXPECT_EQ(a.gateway.aeTitle, b.gateway.aeTitle);
  EXPECT_EQ(a.gateway.bind, b.gateway.bind);
  EXPECT_EQ(a.gateway.port, b.gateway.port);
  EXPECT_EQ(a.gateway.dataDir, b.gateway.dataDir);
  EXPECT_EQ(a.gateway.maxAssociations, b.gateway.maxAssociations);
  EXPECT_EQ(a.gateway.maxPduBytes, b.gateway.maxPduBytes);
  EXPECT_EQ(a.gateway.connectTimeoutSeconds, b.gateway.connectTimeoutSeconds);
  EXPECT_EQ(a.gateway.acseTimeoutSeconds, b.gateway.acseTimeoutSeconds);
  EXPECT_EQ(a.gateway.dimseTimeoutSeconds, b.gateway.dimseTimeoutSeconds);
  EXPECT_EQ(a.gateway.logLevel, b.gateway.logLevel);
  EXPECT_EQ(a.upstream.aeTitle, b.upstream.aeTitle);
  EXPECT_EQ(a.upstream.host, b.upstream.host);
  EXPECT_EQ(a.upstream.port, b.upstream.port);
  EXPECT_EQ(a.keystore.path, b.keystore.path);
  EXPECT_EQ(a.keystore.masterKeyFile, b.keystore.masterKeyFile);
  EXPECT_EQ(a.keystore.masterKeyEnv, b.keystore.masterKeyEnv);
  EXPECT_EQ(a.cipher.backend, b.cipher.backend);
  EXPECT_EQ(a.cipher.keyScope, b.cipher.keyScope);
  EXPECT_EQ(a.cipher.device, b.cipher.device);
  EXPECT_EQ(a.cipher.passthroughUnencrypted, b.cipher.passthroughUnencrypted);
  EXPECT_EQ(a.cipher.passthroughBefore, b.cipher.passthroughBefore);
  ASSERT_EQ(a.modalities.size(), b.modalities.size());
  for (std::size_t i = 0; i < a.modalities.size(); ++i) {
    EXPECT_EQ(a.modalities[i].aeTitle, b.modalities[i].aeTitle);
    EXPECT_EQ(a.modalities[i].host, b.modalities[i].host);
  }
  ASSERT_EQ(a.workstations.size(), b.workstations.size());
  for (std::size_t i = 0; i < a.workstations.size(); ++i) {
    EXPECT_EQ(a.workstations[i].aeTitle, b.workstations[i].aeTitle);
    EXPECT_EQ(a.workstations[i].host, b.workstations[i].host);
    EXPECT_EQ(a.workstations[i].moveDestinations, b.workstations[i].moveDestinations);
    EXPECT_EQ(a.workstations[i].port, b.workstations[i].port);
    EXPECT_EQ(a.workstations[i].access, b.workstations[i].access);
  }
}

}  // namespace

TEST(ConfigDefaults, EmbeddedDefaultsHaveTheDocumentedValues) {
  const Config c = embeddedDefaults("/srv/pacsgw");
  EXPECT_EQ(c.gateway.aeTitle, "GATEWAY");
  EXPECT_EQ(c.gateway.bind, "127.0.0.1");
  EXPECT_EQ(c.gateway.port, 11112);
  EXPECT_EQ(c.gateway.dataDir, "/srv/pacsgw");
  EXPECT_EQ(c.upstream.aeTitle, "ORTHANC");
  EXPECT_EQ(c.upstream.host, "127.0.0.1");
  EXPECT_EQ(c.upstream.port, 4242);
  EXPECT_EQ(c.keystore.path, "/srv/pacsgw/keystore.db");
  EXPECT_EQ(c.keystore.masterKeyFile, "/srv/pacsgw/master.key");
  EXPECT_EQ(c.keystore.masterKeyEnv, "");
  EXPECT_EQ(c.cipher.backend, "aes-256-gcm");
  EXPECT_EQ(c.cipher.keyScope, "study");
  EXPECT_EQ(c.cipher.device, "cpu");
  ASSERT_EQ(c.modalities.size(), 2u);
  EXPECT_EQ(c.modalities[0].aeTitle, "CT1");
  EXPECT_EQ(c.modalities[1].aeTitle, "STORESCU");
  ASSERT_EQ(c.workstations.size(), 1u);
  EXPECT_EQ(c.workstations[0].aeTitle, "WS1");
  EXPECT_EQ(c.workstations[0].port, 11120);
  EXPECT_EQ(c.workstations[0].access, Access::Decrypt);
  // A trailing slash does not produce a double slash.
  EXPECT_EQ(embeddedDefaults("/srv/pacsgw/").keystore.path, "/srv/pacsgw/keystore.db");
}

TEST(ConfigDefaults, DefaultsRoundTripThroughYaml) {
  const Config defaults = embeddedDefaults("/var/lib/pacsgw");
  const std::string yaml = toYaml(defaults);
  const Config parsed = parseConfig(yaml, "defaults");
  expectSame(parsed, defaults);
  EXPECT_EQ(toYaml(parsed), yaml);  // stable: a second pass changes nothing
}

TEST(ConfigDefaults, AwkwardValuesRoundTrip) {
  Config c = embeddedDefaults("/data/with space/and#hash");
  c.gateway.aeTitle = "true";  // would be a boolean if left unquoted
  c.gateway.bind = "::";
  c.gateway.logLevel = "trace";
  c.gateway.maxPduBytes = 131072;
  c.upstream.aeTitle = "PACS 'A'";
  c.upstream.host = "fe80::1%eth0";
  c.keystore.masterKeyFile.clear();
  c.keystore.masterKeyEnv = "PACSGW_MASTER_KEY";
  c.cipher.backend = "chaos-vpd";
  c.cipher.keyScope = "instance";
  c.cipher.device = "auto";
  c.cipher.passthroughUnencrypted = true;
  c.cipher.passthroughBefore = "20240101";
  c.modalities = {{"null", "10.1.2.3"}, {"MR \"3T\"", "mr.example.org"}, {"-CT", "ct"}};
  c.workstations = {{"WS#1", "ws1", 1, Access::Deny}, {"~", "ws2", 65535, Access::Ciphertext}};
  c.workstations[1].moveDestinations = std::vector<std::string>{"~", "WS#1"};
  const std::string yaml = toYaml(c);
  Config parsed;
  try {
    parsed = parseConfig(yaml);
  } catch (const ConfigError& e) {
    FAIL() << e.what() << "\n---\n" << yaml;
  }
  expectSame(parsed, c);
}

TEST(ConfigDefaults, EmptyListsRoundTrip) {
  Config c = embeddedDefaults("/d");
  c.modalities.clear();
  c.workstations.clear();
  const Config parsed = parseConfig(toYaml(c));
  EXPECT_TRUE(parsed.modalities.empty());
  EXPECT_TRUE(parsed.workstations.empty());
}

TEST(ConfigExamples, GatewayExampleLoads) {
  const Config c = loadConfig(kExamplesDir + "/gateway.yaml");
  EXPECT_EQ(c.gateway.aeTitle, "GATEWAY");
  EXPECT_EQ(c.gateway.port, 11113);
  EXPECT_EQ(c.upstream.aeTitle, "TESTPACS");
  EXPECT_EQ(c.upstream.port, 14242);
  EXPECT_EQ(c.keystore.masterKeyFile, "/var/lib/pacsgw/master.key");
  ASSERT_EQ(c.workstations.size(), 2u);
  EXPECT_EQ(c.workstations[1].access, Access::Ciphertext);
}

TEST(ConfigExamples, DefaultsExampleMatchesEmbeddedDefaults) {
  const Config c = loadConfig(kExamplesDir + "/defaults.yaml");
  expectSame(c, embeddedDefaults("/var/lib/pacsgw"));
}
