#include "gateway/query_retrieve_authorisation.h"

#include "gateway/dimse_status.h"
#include "gateway/net_util.h"

namespace pacsgw::gateway {

namespace {

bool mayQueryOrRetrieve(const PeerIdentity& caller) {
  return caller.workstation != nullptr && caller.workstation->access != config::Access::Deny;
}

RetrieveDecision refusedRetrieve(std::uint16_t statusCode, std::string alertCode, std::string reason,
                                 std::string auditDescription) {
  RetrieveDecision d;
  d.status = statusCode;
  d.audit = RefusalAudit::SecurityAlert;
  d.alertCode = std::move(alertCode);
  d.reason = std::move(reason);
  d.auditDescription = std::move(auditDescription);
  return d;
}

RetrieveDecision notAWorkstation(const char* verb) {
  return refusedRetrieve(status::kNotAuthorised, "AccessRefused", "not an authorised workstation",
                         std::string(verb) + " by a workstation without access");
}

RetrieveDecision destinationRefused(std::string reason, std::string auditDescription) {
  return refusedRetrieve(status::kMoveDestinationUnknown, "MoveDestinationRefused", std::move(reason),
                         std::move(auditDescription));
}

}  // namespace

QueryDecision authoriseQuery(const PeerIdentity& caller) {
  QueryDecision d;
  if (mayQueryOrRetrieve(caller)) {
    d.allowed = true;
    return d;
  }
  d.status = status::kNotAuthorised;
  d.audit = RefusalAudit::QueryRefused;
  d.reason = "not an authorised workstation";
  return d;
}

RetrieveDecision authoriseGet(const PeerIdentity& caller) {
  if (!mayQueryOrRetrieve(caller)) return notAWorkstation("C-GET");
  RetrieveDecision d;
  d.allowed = true;
  d.access = caller.workstation->access;
  return d;
}

RetrieveDecision authoriseMove(const PeerIdentity& caller, const std::string& moveDestination,
                               const config::Workstation* destinationWorkstation,
                               const config::RelayPeer* destinationRelayPeer) {
  if (!mayQueryOrRetrieve(caller)) return notAWorkstation("C-MOVE");
  // A configured workstation of that AE title takes precedence over a relay peer of the same title.
  const config::RelayPeer* relayPeer = destinationWorkstation == nullptr ? destinationRelayPeer : nullptr;
  if (relayPeer != nullptr) {
    if (!AccessPolicy::mayMoveTo(*caller.workstation, relayPeer->aeTitle)) {
      return destinationRefused("relay peer '" + printable(moveDestination) + "' is not among its move_destinations",
                                "relay peer " + moveDestination + " is not among the caller's move_destinations");
    }
    RetrieveDecision d;
    d.allowed = true;
    d.access = config::Access::Ciphertext;  // the peer gateway gets ciphertext plus a key capsule for it alone
    d.relayPeer = relayPeer;
    return d;
  }
  if (destinationWorkstation == nullptr || destinationWorkstation->access == config::Access::Deny) {
    const std::string what = destinationWorkstation == nullptr ? "not configured" : "denied";
    return destinationRefused("move destination '" + printable(moveDestination) + "' is " + what,
                              "move destination " + moveDestination + " is " + what);
  }
  if (!AccessPolicy::mayMoveTo(*caller.workstation, destinationWorkstation->aeTitle)) {
    return destinationRefused("move destination '" + printable(moveDestination) + "' is not among its move_destinations",
                              "move destination " + moveDestination + " is not among the caller's move_destinations");
  }
  RetrieveDecision d;
  d.allowed = true;
  d.access = destinationWorkstation->access;  // the images land there, not at the caller
  d.destination = destinationWorkstation;
  return d;
}

}  // namespace pacsgw::gateway
