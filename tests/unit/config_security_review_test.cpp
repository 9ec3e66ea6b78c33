// `config check` security warnings: borrowed decrypt grants and plaintext reachable by C-MOVE.
#include "config/config.h"
#include "config/security_review.h"

#include <gtest/gtest.h>

using namespace pacsgw::config;

namespace {

bool mentions(const std::vector<ConfigIssue>& issues, const std::string& key, const std::string& text) {
  for (const auto& i : issues)
    if (i.key == key && i.message.find(text) != std::string::npos) return true;
  return false;
}

Config withWorkstations(std::vector<Workstation> ws, std::vector<Modality> modalities = {}) {
  Config c;
  c.workstations = std::move(ws);
  c.modalities = std::move(modalities);
  return c;
}

}  // namespace

TEST(SecurityReview, DecryptGrantSharingAnAddressWithALesserGrant) {
  auto issues = securityWarnings(withWorkstations(
      {{"WS1", "10.0.0.5", 104, Access::Decrypt}, {"WS2", "10.0.0.5", 105, Access::Ciphertext}},
      {{"CT1", "10.0.0.5"}}));
  EXPECT_TRUE(mentions(issues, "workstations[0]", "shares its address 10.0.0.5 with lesser grants: WS2 (ciphertext), CT1 (modality)"));

  issues = securityWarnings(withWorkstations(
      {{"WS1", "10.0.0.5", 104, Access::Decrypt}, {"WS2", "10.0.0.6", 105, Access::Ciphertext}}, {{"CT1", "10.0.0.7"}}));
  EXPECT_FALSE(mentions(issues, "workstations[0]", "shares its address"));
  // Two decrypt workstations on one host: same access, nothing borrowed.
  issues = securityWarnings(withWorkstations({{"WS1", "10.0.0.5", 104, Access::Decrypt}, {"WS3", "10.0.0.5", 106, Access::Decrypt}}));
  EXPECT_FALSE(mentions(issues, "workstations[0]", "shares its address"));
}

TEST(SecurityReview, PlainDecryptDestinationsAndOpenMoveDestinations) {
  Config c = withWorkstations({{"WS1", "10.0.0.5", 104, Access::Decrypt}, {"WS2", "10.0.0.6", 105, Access::Ciphertext}});
  auto issues = securityWarnings(c);
  EXPECT_TRUE(mentions(issues, "workstations[0]", "receives decrypted pixels over plain DICOM"));
  EXPECT_TRUE(mentions(issues, "workstations[1].move_destinations", "may C-MOVE to the decrypt destination(s) WS1"));

  c.workstations[1].moveDestinations = std::vector<std::string>{};
  EXPECT_FALSE(mentions(securityWarnings(c), "workstations[1].move_destinations", "C-MOVE"));
  // No decrypt grant at all: nothing to borrow.
  EXPECT_TRUE(securityWarnings(withWorkstations({{"WS2", "10.0.0.6", 105, Access::Ciphertext}})).empty());
}

TEST(SecurityReview, MoveDestinationsParse) {
  const Config c = parseConfig(R"(
gateway: { ae_title: GW, port: 104 }
upstream: { ae_title: PACS, host: pacs, port: 104 }
keystore: { path: /k.db, master_key_env: K }
workstations:
  - { ae_title: WS1, host: a, port: 1, access: decrypt }
  - { ae_title: WS2, host: b, port: 2, access: ciphertext, move_destinations: [WS3] }
  - { ae_title: WS3, host: c, port: 3, access: ciphertext, move_destinations: [] }
)");
  EXPECT_FALSE(c.workstations[0].moveDestinations.has_value());
  EXPECT_EQ(c.workstations[1].moveDestinations, std::vector<std::string>{"WS3"});
  EXPECT_EQ(c.workstations[2].moveDestinations, std::vector<std::string>{});
  EXPECT_THROW(parseConfig(R"(
gateway: { ae_title: GW, port: 104 }
upstream: { ae_title: PACS, host: pacs, port: 104 }
keystore: { path: /k.db, master_key_env: K }
workstations:
  - { ae_title: WS2, host: b, port: 2, access: ciphertext, move_destinations: WS3 }
)"),
               ConfigError);
}
