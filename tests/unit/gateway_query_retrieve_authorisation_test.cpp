// Each query / retrieve authorisation decision: allowed or refused, with which status, audited how,
// and for an allowed retrieve what the receiving side may see and where the instances go.
#include "gateway/query_retrieve_authorisation.h"

#include "gateway/dimse_status.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pacsgw::gateway {
namespace {

config::Workstation workstation(const std::string& ae, config::Access access,
                                std::optional<std::vector<std::string>> moveDestinations = std::nullopt) {
  config::Workstation w;
  w.aeTitle = ae;
  w.access = access;
  w.moveDestinations = std::move(moveDestinations);
  return w;
}

PeerIdentity as(const config::Workstation* w, const std::string& ae = "CALLER") {
  PeerIdentity id;
  id.aeTitle = ae;
  id.address = "10.0.0.5";
  id.workstation = w;
  return id;
}

PeerIdentity modality() {
  PeerIdentity id;
  id.aeTitle = "CT1";
  id.address = "10.0.0.9";
  id.isModality = true;
  return id;
}

void expectRefusedSecurityAlert(const RetrieveDecision& d, std::uint16_t statusCode, const std::string& alertCode,
                                const std::string& reasonPart) {
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.status, statusCode);
  EXPECT_EQ(d.audit, RefusalAudit::SecurityAlert);
  EXPECT_EQ(d.alertCode, alertCode);
  EXPECT_NE(d.reason.find(reasonPart), std::string::npos) << d.reason;
  EXPECT_FALSE(d.auditDescription.empty());
  EXPECT_EQ(d.access, config::Access::Deny) << "a refusal grants nothing";
  EXPECT_EQ(d.destination, nullptr);
  EXPECT_EQ(d.relayPeer, nullptr);
}

// ---- C-FIND ----

TEST(QueryAuthorisation, WorkstationsWithDecryptOrCiphertextAccessMayQuery) {
  const config::Workstation decrypt = workstation("VIEWER", config::Access::Decrypt);
  const config::Workstation ciphertext = workstation("READER", config::Access::Ciphertext);
  for (const auto* w : {&decrypt, &ciphertext}) {
    const QueryDecision d = authoriseQuery(as(w));
    EXPECT_TRUE(d.allowed);
    EXPECT_EQ(d.audit, RefusalAudit::None);
  }
}

TEST(QueryAuthorisation, DeniedWorkstationModalityAndStrangerAreRefused0124AndAuditedAsARefusedQuery) {
  const config::Workstation denied = workstation("LOCKED", config::Access::Deny);
  for (const PeerIdentity& who : {as(&denied), modality(), as(nullptr)}) {
    const QueryDecision d = authoriseQuery(who);
    EXPECT_FALSE(d.allowed) << who.aeTitle;
    EXPECT_EQ(d.status, status::kNotAuthorised);
    EXPECT_EQ(d.audit, RefusalAudit::QueryRefused);
    EXPECT_EQ(d.reason, "not an authorised workstation");
  }
}

// ---- C-GET ----

TEST(RetrieveAuthorisation, GetGivesTheCallersOwnAccess) {
  const config::Workstation decrypt = workstation("VIEWER", config::Access::Decrypt);
  const config::Workstation ciphertext = workstation("READER", config::Access::Ciphertext);
  RetrieveDecision d = authoriseGet(as(&decrypt));
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.access, config::Access::Decrypt);
  EXPECT_EQ(d.destination, nullptr) << "instances go back on the caller's association";
  d = authoriseGet(as(&ciphertext));
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.access, config::Access::Ciphertext);
}

TEST(RetrieveAuthorisation, GetByADeniedWorkstationOrAModalityIsRefused0124WithASecurityAlert) {
  const config::Workstation denied = workstation("LOCKED", config::Access::Deny);
  expectRefusedSecurityAlert(authoriseGet(as(&denied)), status::kNotAuthorised, "AccessRefused",
                             "not an authorised workstation");
  const RetrieveDecision d = authoriseGet(modality());
  expectRefusedSecurityAlert(d, status::kNotAuthorised, "AccessRefused", "not an authorised workstation");
  EXPECT_EQ(d.auditDescription, "C-GET by a workstation without access");
}

// ---- C-MOVE ----

TEST(RetrieveAuthorisation, MoveToItselfIsAlwaysAllowedEvenWithARestrictiveList) {
  const config::Workstation caller = workstation("NARROW", config::Access::Decrypt, std::vector<std::string>{"OTHER"});
  const RetrieveDecision d = authoriseMove(as(&caller, "NARROW"), "NARROW", &caller, nullptr);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.destination, &caller);
}

TEST(RetrieveAuthorisation, TheDestinationsAccessDecidesDecryptionNotTheCallers) {
  const config::Workstation caller = workstation("VIEWER", config::Access::Decrypt);
  const config::Workstation reader = workstation("READER", config::Access::Ciphertext);
  RetrieveDecision d = authoriseMove(as(&caller, "VIEWER"), "READER", &reader, nullptr);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.access, config::Access::Ciphertext);
  EXPECT_EQ(d.destination, &reader);
  // And the other way round: a ciphertext caller may send the images to a decrypt destination.
  d = authoriseMove(as(&reader, "READER"), "VIEWER", &caller, nullptr);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.access, config::Access::Decrypt);
}

TEST(RetrieveAuthorisation, MoveByACallerWithoutAccessIsRefused0124) {
  const config::Workstation denied = workstation("LOCKED", config::Access::Deny);
  const config::Workstation viewer = workstation("VIEWER", config::Access::Decrypt);
  const RetrieveDecision d = authoriseMove(as(&denied, "LOCKED"), "VIEWER", &viewer, nullptr);
  expectRefusedSecurityAlert(d, status::kNotAuthorised, "AccessRefused", "not an authorised workstation");
  EXPECT_EQ(d.auditDescription, "C-MOVE by a workstation without access");
}

TEST(RetrieveAuthorisation, UnknownDeniedOrUnlistedDestinationIsRefusedA801) {
  const config::Workstation caller = workstation("NARROW", config::Access::Decrypt, std::vector<std::string>{"VIEWER"});
  const config::Workstation denied = workstation("LOCKED", config::Access::Deny);
  const config::Workstation other = workstation("READER", config::Access::Ciphertext);
  expectRefusedSecurityAlert(authoriseMove(as(&caller, "NARROW"), "NOWHERE", nullptr, nullptr),
                             status::kMoveDestinationUnknown, "MoveDestinationRefused", "not configured");
  expectRefusedSecurityAlert(authoriseMove(as(&caller, "NARROW"), "LOCKED", &denied, nullptr),
                             status::kMoveDestinationUnknown, "MoveDestinationRefused", "is denied");
  const RetrieveDecision d = authoriseMove(as(&caller, "NARROW"), "READER", &other, nullptr);
  expectRefusedSecurityAlert(d, status::kMoveDestinationUnknown, "MoveDestinationRefused",
                             "not among its move_destinations");
  EXPECT_EQ(d.auditDescription, "move destination READER is not among the caller's move_destinations");
}

TEST(RetrieveAuthorisation, NoMoveDestinationsListMeansEveryConfiguredWorkstation) {
  const config::Workstation caller = workstation("VIEWER", config::Access::Decrypt);
  const config::Workstation other = workstation("READER", config::Access::Ciphertext);
  EXPECT_TRUE(authoriseMove(as(&caller, "VIEWER"), "READER", &other, nullptr).allowed);
}

TEST(RetrieveAuthorisation, RelayPeerGetsCiphertextOnlyAndOnlyWhenListed) {
  config::RelayPeer peer;
  peer.name = "site-b";
  peer.aeTitle = "SITEB";
  const config::Workstation open = workstation("VIEWER", config::Access::Decrypt);
  RetrieveDecision d = authoriseMove(as(&open, "VIEWER"), "SITEB", nullptr, &peer);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.access, config::Access::Ciphertext) << "never decrypted for another site's gateway";
  EXPECT_EQ(d.relayPeer, &peer);
  EXPECT_EQ(d.destination, nullptr);

  const config::Workstation narrow = workstation("NARROW", config::Access::Decrypt, std::vector<std::string>{"VIEWER"});
  d = authoriseMove(as(&narrow, "NARROW"), "SITEB", nullptr, &peer);
  expectRefusedSecurityAlert(d, status::kMoveDestinationUnknown, "MoveDestinationRefused",
                             "relay peer 'SITEB' is not among its move_destinations");
}

TEST(RetrieveAuthorisation, AWorkstationNamedLikeARelayPeerIsTheDestination) {
  config::RelayPeer peer;
  peer.aeTitle = "SHARED";
  const config::Workstation caller = workstation("VIEWER", config::Access::Decrypt);
  const config::Workstation shared = workstation("SHARED", config::Access::Decrypt);
  const RetrieveDecision d = authoriseMove(as(&caller, "VIEWER"), "SHARED", &shared, &peer);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.relayPeer, nullptr);
  EXPECT_EQ(d.destination, &shared);
  EXPECT_EQ(d.access, config::Access::Decrypt);
}

TEST(RetrieveAuthorisation, DestinationFromTheWireIsMadePrintableInTheLogReason) {
  const config::Workstation caller = workstation("VIEWER", config::Access::Decrypt);
  const RetrieveDecision d = authoriseMove(as(&caller, "VIEWER"), std::string("EVIL\n\x1b[2J"), nullptr, nullptr);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason.find('\n'), std::string::npos) << d.reason;
  EXPECT_EQ(d.reason.find('\x1b'), std::string::npos) << d.reason;
}

}  // namespace
}  // namespace pacsgw::gateway
