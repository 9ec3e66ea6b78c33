// gateway.tls and the per-peer tls / certificate_identity keys: parsing, validation, defaults, and the
// security warnings that depend on them.
#include "config/config.h"
#include "config/security_review.h"

#include <gtest/gtest.h>

#include <filesystem>

using namespace pacsgw::config;

namespace {

const char* kTlsConfig = R"(
gateway:
  ae_title: GW
  tls: { port: 2762, certificate: /etc/pacsgw/tls/gw.pem, private_key: /etc/pacsgw/tls/gw.key, ca_bundle: /etc/pacsgw/tls/ca.pem }
upstream: { ae_title: PACS, host: 10.0.0.2, port: 104 }
keystore: { path: /k.db, master_key_env: K }
modalities:
  - { ae_title: CT1, host: 10.0.0.3, certificate_identity: "CN=ct1" }
  - { ae_title: OLD, host: 10.0.0.4, tls: false }
workstations:
  - { ae_title: WS1, host: 10.0.0.5, port: 2762, access: decrypt, certificate_identity: "DNS:ws1.example" }
)";

bool mentions(const std::vector<ConfigIssue>& issues, const std::string& key, const std::string& text) {
  for (const auto& i : issues)
    if (i.key == key && i.message.find(text) != std::string::npos) return true;
  return false;
}

std::string errorOf(const std::string& yaml) {
  try {
    parseConfig(yaml);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(ConfigTls, TlsSectionMakesThePlainPortOptionalAndPeersTlsByDefault) {
  const Config c = parseConfig(kTlsConfig);
  EXPECT_TRUE(c.gateway.tls.enabled);
  EXPECT_EQ(c.gateway.tls.port, 2762);
  EXPECT_EQ(c.gateway.tls.profile, "bcp195-nd");
  EXPECT_EQ(c.gateway.port, 0);  // no plain listener
  EXPECT_TRUE(peerUsesTls(c, c.modalities[0].tls));
  EXPECT_FALSE(peerUsesTls(c, c.modalities[1].tls));
  EXPECT_TRUE(peerUsesTls(c, c.upstream.tls));
  EXPECT_EQ(c.workstations[0].certificateIdentity, "DNS:ws1.example");
  // Round trip through the YAML writer keeps every TLS setting.
  const Config again = parseConfig(toYaml(c));
  EXPECT_EQ(toYaml(again), toYaml(c));
  EXPECT_EQ(again.modalities[1].tls, std::optional<bool>(false));
}

TEST(ConfigTls, WithoutTlsEverythingStaysPlainAndThePortIsRequired) {
  const std::string plain = R"(
gateway: { ae_title: GW, port: 104 }
upstream: { ae_title: PACS, host: 10.0.0.2, port: 104 }
keystore: { path: /k.db, master_key_env: K }
modalities: [ { ae_title: CT1, host: 10.0.0.3 } ]
)";
  const Config c = parseConfig(plain);
  EXPECT_FALSE(c.gateway.tls.enabled);
  EXPECT_FALSE(peerUsesTls(c, c.modalities[0].tls));
  EXPECT_NE(errorOf(R"(
gateway: { ae_title: GW }
upstream: { ae_title: PACS, host: 10.0.0.2, port: 104 }
keystore: { path: /k.db, master_key_env: K }
)").find("gateway.port: is required"), std::string::npos);
}

TEST(ConfigTls, InvalidTlsSettingsAreNamed) {
  std::string yaml = kTlsConfig;
  EXPECT_NE(errorOf(std::string(kTlsConfig).replace(yaml.find("ca_bundle: /etc/pacsgw/tls/ca.pem"), 33, "profile: tls10"))
                .find("gateway.tls.ca_bundle: is required"),
            std::string::npos);
  EXPECT_NE(errorOf(yaml + "  - { ae_title: X, host: h, port: 1, access: deny, certificate_identity: ws1 }\n")
                .find("workstations[1].certificate_identity: must be CN=<name>"),
            std::string::npos);
  const std::string plainPeerWithIdentity = R"(
gateway: { ae_title: GW, port: 104 }
upstream: { ae_title: PACS, host: 10.0.0.2, port: 104 }
keystore: { path: /k.db, master_key_env: K }
modalities: [ { ae_title: CT1, host: 10.0.0.3, certificate_identity: "CN=ct1" } ]
workstations: [ { ae_title: WS1, host: 10.0.0.5, port: 1, access: decrypt, tls: true } ]
)";
  const std::string error = errorOf(plainPeerWithIdentity);
  EXPECT_NE(error.find("modalities[0].certificate_identity: a certificate identity can only be checked over TLS"),
            std::string::npos);
  EXPECT_NE(error.find("workstations[0].tls: TLS to this peer needs the gateway's own certificate"), std::string::npos);
}

TEST(ConfigTls, SecurityWarningsFollowTransportAndIdentity) {
  Config c = parseConfig(kTlsConfig);
  // TLS and a certificate identity on a dedicated address: nothing to warn about for WS1.
  EXPECT_FALSE(mentions(securityWarnings(c), "workstations[0]", "plain DICOM"));
  EXPECT_FALSE(mentions(securityWarnings(c), "workstations[0].certificate_identity", "neither"));
  // A plain decrypt workstation is named; one sharing its address without an identity too.
  c.workstations[0].tls = false;
  c.workstations[0].certificateIdentity.clear();
  c.workstations[0].host = "10.0.0.3";  // CT1's address
  const auto issues = securityWarnings(c);
  EXPECT_TRUE(mentions(issues, "workstations[0]", "receives decrypted pixels over plain DICOM"));
  EXPECT_TRUE(mentions(issues, "workstations[0]", "shares its address 10.0.0.3 with lesser grants: CT1 (modality)"));
  EXPECT_TRUE(mentions(issues, "workstations[0].certificate_identity",
                       "bound to neither a certificate identity nor a dedicated address"));
}

TEST(ConfigTls, ProductionExampleUsesTlsAndRaisesNoSecurityWarning) {
  const std::string path = (std::filesystem::path(PACSGW_TEST_DATA_DIR).parent_path().parent_path() / "config" /
                            "examples" / "production-tls.yaml")
                               .string();
  const Config c = loadConfig(path);
  EXPECT_TRUE(c.gateway.tls.enabled);
  EXPECT_TRUE(peerUsesTls(c, c.upstream.tls));
  for (const Workstation& w : c.workstations) EXPECT_TRUE(peerUsesTls(c, w.tls)) << w.aeTitle;
  const auto warnings = securityWarnings(c);
  for (const auto& w : warnings) ADD_FAILURE() << w.key << ": " << w.message;
}

TEST(ConfigTls, RelayPeersUseTlsLikeOtherPeersAndPlainOnesAreWarnedAbout) {
  const std::string relay = R"(
relay:
  certificate: /etc/pacsgw/relay.pem
  private_key: /etc/pacsgw/relay.key
  peers:
    - { name: site-b, ae_title: GWB, host: 10.1.0.2, port: 2762, certificate: /etc/pacsgw/b.pem,
        certificate_identity: "DNS:gw.site-b.example" }
    - { name: site-c, ae_title: GWC, host: 10.2.0.2, port: 104, certificate: /etc/pacsgw/c.pem, tls: false }
)";
  const Config c = parseConfig(std::string(kTlsConfig) + relay);
  ASSERT_TRUE(c.relay);
  ASSERT_EQ(c.relay->peers.size(), 2u);
  EXPECT_TRUE(peerUsesTls(c, c.relay->peers[0].tls));
  EXPECT_EQ(c.relay->peers[0].certificateIdentity, "DNS:gw.site-b.example");
  EXPECT_FALSE(peerUsesTls(c, c.relay->peers[1].tls));
  EXPECT_EQ(toYaml(parseConfig(toYaml(c))), toYaml(c));

  const auto warnings = securityWarnings(c);
  EXPECT_FALSE(mentions(warnings, "relay.peers[0]", "plain DICOM"));
  EXPECT_TRUE(mentions(warnings, "relay.peers[1]", "plain DICOM"));

  // Without gateway.tls a relay peer cannot ask for TLS or a certificate identity.
  const std::string plainGateway = R"(
gateway: { ae_title: GW, port: 11112 }
upstream: { ae_title: PACS, host: 10.0.0.2, port: 104 }
keystore: { path: /k.db, master_key_env: K }
relay:
  certificate: /r.pem
  private_key: /r.key
  peers:
    - { name: b, ae_title: GWB, host: 10.1.0.2, port: 104, certificate: /b.pem, certificate_identity: "CN=b" }
)";
  EXPECT_NE(errorOf(plainGateway).find("relay.peers[0].certificate_identity"), std::string::npos) << errorOf(plainGateway);
}
