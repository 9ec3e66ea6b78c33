// Schema validation: the reference example loads, and each kind of mistake is reported at the right key.
#include "config/config.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace pacsgw::config;

namespace {

const char* const kExample =
    R"(gateway:   { ae_title: GATEWAY, bind: 127.0.0.1, port: 11113, data_dir: /var/lib/pacsgw }
upstream:  { ae_title: TESTPACS, host: 127.0.0.1, port: 14242 }
keystore:  { path: /var/lib/pacsgw/keystore.db, master_key_file: /var/lib/pacsgw/master.key }
cipher:    { backend: aes-256-gcm, key_scope: study }
modalities:
  - { ae_title: CT1, host: 127.0.0.1 }
workstations:
  - { ae_title: WS1, host: 127.0.0.1, port: 11120, access: decrypt }
  - { ae_title: WS2, host: 127.0.0.1, port: 11121, access: ciphertext }
)";

struct Parts {
  std::string gateway = "{ ae_title: GATEWAY, port: 11113 }";
  std::string upstream = "{ ae_title: PACS, host: pacs.example.org, port: 104 }";
  std::string keystore = "{ path: /srv/ks.db, master_key_file: /srv/master.key }";
  std::string rest;  // extra top-level text, appended verbatim
};

std::string document(const Parts& p) {
  return "gateway: " + p.gateway + "\nupstream: " + p.upstream + "\nkeystore: " + p.keystore + "\n" + p.rest;
}

std::vector<ConfigIssue> issuesOf(const std::string& yaml) {
  try {
    parseConfig(yaml, "test.yaml");
  } catch (const ConfigError& e) {
    return e.issues();
  }
  return {};
}

std::vector<std::string> keysOf(const std::string& yaml) {
  std::vector<std::string> keys;
  for (const ConfigIssue& issue : issuesOf(yaml)) keys.push_back(issue.key);
  return keys;
}

// Expects exactly one issue, at `key`, whose message contains `fragment`.
void expectSingleIssue(const std::string& yaml, const std::string& key, const std::string& fragment) {
  const std::vector<ConfigIssue> issues = issuesOf(yaml);
  ASSERT_EQ(issues.size(), 1u) << yaml
                               << "\nfirst: " << (issues.empty() ? "" : issues[0].key + ": " + issues[0].message);
  EXPECT_EQ(issues[0].key, key) << issues[0].message;
  EXPECT_NE(issues[0].message.find(fragment), std::string::npos)
      << "message '" << issues[0].message << "' lacks '" << fragment << "'";
}

Parts withGateway(const std::string& gateway) {
  Parts p;
  p.gateway = gateway;
  return p;
}

Parts withRest(const std::string& rest) {
  Parts p;
  p.rest = rest;
  return p;
}

}  // namespace

TEST(ConfigParse, ReferenceExampleLoadsWithTheRightValues) {
  const Config c = parseConfig(kExample, "gateway.yaml");
  EXPECT_EQ(c.sourcePath, "gateway.yaml");
  EXPECT_EQ(c.gateway.aeTitle, "GATEWAY");
  EXPECT_EQ(c.gateway.bind, "127.0.0.1");
  EXPECT_EQ(c.gateway.port, 11113);
  EXPECT_EQ(c.gateway.dataDir, "/var/lib/pacsgw");
  EXPECT_EQ(c.gateway.maxAssociations, 32u);
  EXPECT_EQ(c.gateway.maxPduBytes, 65536u);
  EXPECT_EQ(c.gateway.connectTimeoutSeconds, 10u);
  EXPECT_EQ(c.gateway.acseTimeoutSeconds, 30u);
  EXPECT_EQ(c.gateway.dimseTimeoutSeconds, 60u);
  EXPECT_EQ(c.gateway.logLevel, "info");
  EXPECT_EQ(c.upstream.aeTitle, "TESTPACS");
  EXPECT_EQ(c.upstream.host, "127.0.0.1");
  EXPECT_EQ(c.upstream.port, 14242);
  EXPECT_EQ(c.keystore.path, "/var/lib/pacsgw/keystore.db");
  EXPECT_EQ(c.keystore.masterKeyFile, "/var/lib/pacsgw/master.key");
  EXPECT_EQ(c.keystore.masterKeyEnv, "");
  EXPECT_EQ(c.cipher.backend, "aes-256-gcm");
  EXPECT_EQ(c.cipher.keyScope, "study");
  EXPECT_EQ(c.cipher.device, "cpu");
  EXPECT_FALSE(c.cipher.passthroughUnencrypted);
  ASSERT_EQ(c.modalities.size(), 1u);
  EXPECT_EQ(c.modalities[0].aeTitle, "CT1");
  EXPECT_EQ(c.modalities[0].host, "127.0.0.1");
  ASSERT_EQ(c.workstations.size(), 2u);
  EXPECT_EQ(c.workstations[0].aeTitle, "WS1");
  EXPECT_EQ(c.workstations[0].port, 11120);
  EXPECT_EQ(c.workstations[0].access, Access::Decrypt);
  EXPECT_EQ(c.workstations[1].aeTitle, "WS2");
  EXPECT_EQ(c.workstations[1].host, "127.0.0.1");
  EXPECT_EQ(c.workstations[1].port, 11121);
  EXPECT_EQ(c.workstations[1].access, Access::Ciphertext);
}

TEST(ConfigParse, EveryOptionalKeyIsRead) {
  const Config c = parseConfig(R"(
gateway:
  ae_title: GW
  bind: 0.0.0.0
  port: 104
  data_dir: /data
  max_associations: 8
  max_pdu_bytes: 16384
  connect_timeout_s: 5
  acse_timeout_s: 15
  dimse_timeout_s: 120
  log_level: debug
upstream: { ae_title: PACS, host: pacs, port: 11112 }
keystore: { path: /data/ks.db, master_key_env: PACSGW_MASTER_KEY }
cipher: { backend: aes-256-gcm, key_scope: series, device: auto, passthrough_unencrypted: true }
modalities: []
workstations:
  - { ae_title: WS9, host: 10.0.0.9, port: 104, access: deny }
)");
  EXPECT_EQ(c.gateway.maxAssociations, 8u);
  EXPECT_EQ(c.gateway.maxPduBytes, 16384u);
  EXPECT_EQ(c.gateway.connectTimeoutSeconds, 5u);
  EXPECT_EQ(c.gateway.acseTimeoutSeconds, 15u);
  EXPECT_EQ(c.gateway.dimseTimeoutSeconds, 120u);
  EXPECT_EQ(c.gateway.logLevel, "debug");
  EXPECT_EQ(c.keystore.masterKeyEnv, "PACSGW_MASTER_KEY");
  EXPECT_EQ(c.keystore.masterKeyFile, "");
  EXPECT_EQ(c.cipher.keyScope, "series");
  EXPECT_EQ(c.cipher.device, "auto");
  EXPECT_TRUE(c.cipher.passthroughUnencrypted);
  EXPECT_TRUE(c.modalities.empty());
  ASSERT_EQ(c.workstations.size(), 1u);
  EXPECT_EQ(c.workstations[0].access, Access::Deny);
}

TEST(ConfigParse, MinimalDocumentGetsDefaults) {
  const Config c = parseConfig(document(Parts{}));
  EXPECT_EQ(c.gateway.bind, "0.0.0.0");
  EXPECT_EQ(c.gateway.dataDir, "/var/lib/pacsgw");
  EXPECT_EQ(c.cipher.backend, "aes-256-gcm");
  EXPECT_TRUE(c.modalities.empty());
  EXPECT_TRUE(c.workstations.empty());
}

TEST(ConfigParse, BadPorts) {
  expectSingleIssue(document(withGateway("{ ae_title: GW, port: 0 }")), "gateway.port", "between 1 and 65535, got 0");
  expectSingleIssue(document(withGateway("{ ae_title: GW, port: -1 }")), "gateway.port", "got -1");
  expectSingleIssue(document(withGateway("{ ae_title: GW, port: 65536 }")), "gateway.port", "got 65536");
  expectSingleIssue(document(withGateway("{ ae_title: GW, port: 70000 }")), "gateway.port",
                    "must be between 1 and 65535, got 70000");
  expectSingleIssue(document(withGateway("{ ae_title: GW, port: 99999999999999999999999 }")), "gateway.port",
                    "got 99999999999999999999999");
  expectSingleIssue(document(withGateway("{ ae_title: GW, port: 11113.5 }")), "gateway.port",
                    "integer between 1 and 65535, got '11113.5'");
  expectSingleIssue(document(withGateway("{ ae_title: GW, port: abc }")), "gateway.port", "got 'abc'");
  expectSingleIssue(document(withGateway("{ ae_title: GW, port: 0x2b67 }")), "gateway.port", "got '0x2b67'");
  expectSingleIssue(document(withGateway("{ ae_title: GW, port: [1] }")), "gateway.port", "got a list");
  expectSingleIssue(document(withGateway("{ ae_title: GW }")), "gateway.port", "required");

  Parts p;
  p.upstream = "{ ae_title: PACS, host: pacs, port: 0 }";
  expectSingleIssue(document(p), "upstream.port", "got 0");
  expectSingleIssue(document(withRest("workstations:\n  - { ae_title: W, host: h, port: 65536, access: deny }\n")),
                    "workstations[0].port", "got 65536");
}

TEST(ConfigParse, NumericRanges) {
  expectSingleIssue(document(withGateway("{ ae_title: GW, port: 104, max_pdu_bytes: 1024 }")), "gateway.max_pdu_bytes",
                    "between 4096 and 131072, got 1024");
  expectSingleIssue(document(withGateway("{ ae_title: GW, port: 104, max_associations: 0 }")),
                    "gateway.max_associations", "got 0");
  expectSingleIssue(document(withGateway("{ ae_title: GW, port: 104, dimse_timeout_s: 0 }")), "gateway.dimse_timeout_s",
                    "got 0");
}

TEST(ConfigParse, BadAeTitles) {
  expectSingleIssue(document(withGateway("{ ae_title: ABCDEFGHIJKLMNOPQ, port: 104 }")), "gateway.ae_title",
                    "at most 16 characters, got 17");
  expectSingleIssue(document(withGateway(R"({ ae_title: 'A\B', port: 104 })")), "gateway.ae_title", "backslash");
  expectSingleIssue(document(withGateway(R"({ ae_title: "A\tB", port: 104 })")), "gateway.ae_title",
                    "control characters");
  expectSingleIssue(document(withGateway(R"({ ae_title: "   ", port: 104 })")), "gateway.ae_title", "all spaces");
  expectSingleIssue(document(withGateway(R"({ ae_title: "", port: 104 })")), "gateway.ae_title", "1 to 16");
  expectSingleIssue(document(withGateway(R"({ ae_title: "GATEWAYÄ", port: 104 })")), "gateway.ae_title", "ASCII");
  expectSingleIssue(document(withGateway("{ ae_title: ~, port: 104 }")), "gateway.ae_title", "no value");
  // 16 characters and inner spaces are fine.
  EXPECT_TRUE(issuesOf(document(withGateway("{ ae_title: ABCDEFGHIJKLMNOP, port: 104 }"))).empty());
  EXPECT_TRUE(issuesOf(document(withGateway(R"({ ae_title: "MY GW", port: 104 })"))).empty());
  expectSingleIssue(document(withRest("modalities:\n  - { ae_title: TOO_LONG_AE_TITLE_X, host: h }\n")),
                    "modalities[0].ae_title", "at most 16");
}

TEST(ConfigParse, DuplicateAeTitles) {
  expectSingleIssue(document(withRest("modalities:\n"
                                      "  - { ae_title: CT1, host: a }\n"
                                      "  - { ae_title: CT1, host: b }\n")),
                    "modalities[1].ae_title", "duplicate AE title 'CT1' (already used by modalities[0])");
  expectSingleIssue(document(withRest("workstations:\n"
                                      "  - { ae_title: WS1, host: a, port: 1, access: deny }\n"
                                      "  - { ae_title: WS2, host: a, port: 2, access: deny }\n"
                                      "  - { ae_title: 'WS1 ', host: b, port: 3, access: decrypt }\n")),
                    "workstations[2].ae_title", "already used by workstations[0]");
  // The same device may be both a modality and a workstation.
  EXPECT_TRUE(issuesOf(document(withRest("modalities: [ { ae_title: X1, host: a } ]\n"
                                         "workstations: [ { ae_title: X1, host: a, port: 1, access: decrypt } ]\n")))
                  .empty());
}

TEST(ConfigParse, UnknownKeysAtEveryLevel) {
  expectSingleIssue(document(withRest("colour: red\n")), "colour", "unknown key");
  expectSingleIssue(document(withRest("cipher: { backend: aes-256-gcm, colour: red }\n")), "cipher.colour",
                    "unknown key");
  expectSingleIssue(document(withRest("modalities:\n  - { ae_title: CT1, host: a, port: 104 }\n")),
                    "modalities[0].port", "allowed here: ae_title, host");
  expectSingleIssue(document(withRest("workstations:\n  - { ae_title: W, host: a, port: 1, access: deny, colour: red }\n")),
                    "workstations[0].colour", "unknown key");
  Parts p;
  p.keystore = "{ path: /srv/ks.db, master_key_file: /srv/master.key, password: x }";
  expectSingleIssue(document(p), "keystore.password", "unknown key");
  // A misspelt key gets a suggestion, and the key it was meant to be is then missing.
  const std::vector<ConfigIssue> issues = issuesOf(document(withGateway("{ aeTitle: GW, port: 104 }")));
  ASSERT_EQ(issues.size(), 2u);
  EXPECT_EQ(issues[0].key, "gateway.aeTitle");
  EXPECT_NE(issues[0].message.find("did you mean 'ae_title'?"), std::string::npos) << issues[0].message;
  EXPECT_EQ(issues[1].key, "gateway.ae_title");
  expectSingleIssue(document(withGateway("{ ae_title: GW, port: 104, log_levle: info }")), "gateway.log_levle",
                    "did you mean 'log_level'?");
}

TEST(ConfigParse, RepeatedKey) {
  expectSingleIssue(document(withGateway("\n  ae_title: GW\n  port: 104\n  port: 105")), "gateway.port",
                    "appears more than once");
}

TEST(ConfigParse, MissingSectionsAndFields) {
  EXPECT_EQ(keysOf(""), (std::vector<std::string>{"gateway", "upstream", "keystore"}));
  EXPECT_EQ(keysOf("cipher: { key_scope: study }\n"), (std::vector<std::string>{"gateway", "upstream", "keystore"}));
  Parts p;
  p.upstream = "{ ae_title: PACS }";
  EXPECT_EQ(keysOf(document(p)), (std::vector<std::string>{"upstream.host", "upstream.port"}));
  p = Parts{};
  p.keystore = "{ master_key_file: /k }";
  expectSingleIssue(document(p), "keystore.path", "required");
  expectSingleIssue(document(withRest("workstations:\n  - { ae_title: W, host: a, port: 1 }\n")),
                    "workstations[0].access", "required");
  p = Parts{};
  p.upstream = "";
  expectSingleIssue(document(p), "upstream", "required section is empty");
}

TEST(ConfigParse, MasterKeySourceIsExactlyOne) {
  Parts p;
  p.keystore = "{ path: /k.db, master_key_file: /k, master_key_env: KEY }";
  expectSingleIssue(document(p), "keystore", "set exactly one of master_key_file, master_key_env or master_key");
  p.keystore = "{ path: /k.db }";
  expectSingleIssue(document(p), "keystore", "one of master_key_file, master_key_env or master_key is required");
  p.keystore = "{ path: /k.db, master_key_env: 'MY KEY' }";
  expectSingleIssue(document(p), "keystore.master_key_env", "environment variable name");
}

TEST(ConfigParse, EnumeratedValues) {
  expectSingleIssue(document(withRest("cipher: { key_scope: patient }\n")), "cipher.key_scope",
                    "must be one of study, series, instance, got 'patient'");
  expectSingleIssue(document(withRest("cipher: { device: gpu }\n")), "cipher.device", "cpu, cuda, auto");
  expectSingleIssue(document(withRest("cipher: { backend: '' }\n")), "cipher.backend", "must not be empty");
  expectSingleIssue(document(withRest("cipher: { passthrough_unencrypted: yes }\n")), "cipher.passthrough_unencrypted",
                    "true or false, got 'yes'");
  expectSingleIssue(document(withRest("cipher: { passthrough_before: 2024-01-01 }\n")), "cipher.passthrough_before",
                    "must be a date YYYYMMDD");
  expectSingleIssue(document(withRest("cipher: { passthrough_before: '20241301' }\n")), "cipher.passthrough_before",
                    "must be a date YYYYMMDD");
  EXPECT_EQ(parseConfig(document(withRest("cipher: { passthrough_before: '20240101' }\n"))).cipher.passthroughBefore,
            "20240101");
  expectSingleIssue(document(withGateway("{ ae_title: GW, port: 104, log_level: verbose }")), "gateway.log_level",
                    "trace, debug, info, warn, error");
  expectSingleIssue(document(withRest("workstations:\n"
                                      "  - { ae_title: W1, host: a, port: 1, access: decrypt }\n"
                                      "  - { ae_title: W2, host: a, port: 2, access: allow }\n")),
                    "workstations[1].access", "must be one of decrypt, ciphertext, deny, got 'allow'");
}

TEST(ConfigParse, WrongShapes) {
  expectSingleIssue(document(withRest("modalities: { ae_title: CT1, host: a }\n")), "modalities", "expected a list");
  expectSingleIssue(document(withRest("modalities: [ CT1 ]\n")), "modalities[0]", "expected a map");
  expectSingleIssue(document(withGateway("GATEWAY")), "gateway", "expected a map");
  expectSingleIssue("- gateway\n- upstream\n", "", "got a list");
  Parts p;
  p.upstream = "{ ae_title: PACS, host: 'pacs host', port: 104 }";
  expectSingleIssue(document(p), "upstream.host", "without spaces");
}

TEST(ConfigParse, AllProblemsAreReportedTogetherInDocumentOrder) {
  const std::string yaml = R"(
gateway: { ae_title: THIS_AE_TITLE_IS_TOO_LONG, port: 70000, colour: blue }
upstream: { ae_title: PACS, host: pacs }
keystore: { path: /k.db, master_key_file: /k, master_key_env: K }
cipher: { key_scope: patient }
workstations:
  - { ae_title: WS1, host: a, port: 1, access: decrypt }
  - { ae_title: WS1, host: a, port: 2, access: sometimes }
)";
  EXPECT_EQ(keysOf(yaml),
            (std::vector<std::string>{"gateway.colour", "gateway.ae_title", "gateway.port", "upstream.port", "keystore",
                                      "cipher.key_scope", "workstations[1].access", "workstations[1].ae_title"}));
}

TEST(ConfigParse, SyntaxErrorsCarryLineAndColumn) {
  const std::vector<ConfigIssue> issues = issuesOf("gateway: { ae_title: GW, port: 104\nupstream: x\n");
  ASSERT_EQ(issues.size(), 1u);
  EXPECT_EQ(issues[0].key, "");
  EXPECT_NE(issues[0].message.find("YAML syntax error at line"), std::string::npos) << issues[0].message;
  EXPECT_NE(issues[0].message.find("column"), std::string::npos) << issues[0].message;

  const std::vector<ConfigIssue> tab = issuesOf("gateway:\n\t- x\n");
  ASSERT_EQ(tab.size(), 1u);
  EXPECT_NE(tab[0].message.find("line 2"), std::string::npos) << tab[0].message;

  expectSingleIssue(document(Parts{}) + "---\ngateway: {}\n", "", "one YAML document");
}

TEST(ConfigParse, ErrorTextListsOneProblemPerLineWithFileAndKey) {
  try {
    parseConfig(document(withGateway("{ ae_title: GW, port: 70000, colour: blue }")), "/etc/pacsgw/gateway.yaml");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.sourcePath(), "/etc/pacsgw/gateway.yaml");
    const std::string text = e.what();
    EXPECT_EQ(text, "/etc/pacsgw/gateway.yaml: gateway.colour: " + e.issues()[0].message + "\n" +
                        "/etc/pacsgw/gateway.yaml: gateway.port: must be between 1 and 65535, got 70000 (line 1)");
  }
  try {
    parseConfig("gateway: [", "broken.yaml");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("broken.yaml: YAML syntax error", 0), 0u) << e.what();
  }
  // Without a source path there is no file prefix.
  const ConfigError bare(std::vector<ConfigIssue>{{"gateway.port", "must be between 1 and 65535, got 0"}});
  EXPECT_STREQ(bare.what(), "gateway.port: must be between 1 and 65535, got 0");
}

TEST(ConfigParse, LoadConfigReportsUnreadableFile) {
  try {
    loadConfig("/nonexistent/pacsgw/gateway.yaml");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    ASSERT_EQ(e.issues().size(), 1u);
    EXPECT_EQ(e.sourcePath(), "/nonexistent/pacsgw/gateway.yaml");
    EXPECT_NE(std::string(e.what()).find("/nonexistent/pacsgw/gateway.yaml: cannot open"), std::string::npos)
        << e.what();
  }
}

TEST(ConfigAccess, TextConversions) {
  for (Access a : {Access::Decrypt, Access::Ciphertext, Access::Deny}) EXPECT_EQ(accessFromString(toString(a)), a);
  EXPECT_STREQ(toString(Access::Ciphertext), "ciphertext");
  EXPECT_THROW(accessFromString("Decrypt"), std::invalid_argument);
  EXPECT_THROW(accessFromString(""), std::invalid_argument);
}

TEST(ConfigParse, MetricsSectionIsOptionalAndValidated) {
  const Config none = parseConfig(document(Parts{}));
  EXPECT_FALSE(none.metrics.enabled);
  EXPECT_EQ(none.gateway.logFormat, "text");

  const Config with = parseConfig(document(withRest("metrics: { bind: 10.0.0.5, port: 9090 }\n")));
  EXPECT_TRUE(with.metrics.enabled);
  EXPECT_EQ(with.metrics.bind, "10.0.0.5");
  EXPECT_EQ(with.metrics.port, 9090);
  EXPECT_NE(toYaml(with).find("metrics:\n  bind: 10.0.0.5\n  port: 9090\n"), std::string::npos) << toYaml(with);
  EXPECT_EQ(toYaml(none).find("metrics:"), std::string::npos);

  expectSingleIssue(document(withRest("metrics: { bind: 127.0.0.1 }\n")), "metrics.port", "required");
  expectSingleIssue(document(withRest("metrics: { port: 70000 }\n")), "metrics.port", "got 70000");
  expectSingleIssue(document(withRest("metrics: { port: 9090, path: /m }\n")), "metrics.path", "unknown key");
  expectSingleIssue(document(withGateway("{ ae_title: GW, port: 104, log_format: xml }")), "gateway.log_format",
                    "must be one of text, json, got 'xml'");
  EXPECT_EQ(parseConfig(document(withGateway("{ ae_title: GW, port: 104, log_format: json }"))).gateway.logFormat,
            "json");
}
