#pragma once
// Who may query and retrieve, where retrieved instances may go and what they may see there, decided
// from the caller's identity and the configuration alone: pure functions, each decision unit-tested.
// The caller logs, audits and answers as the decision says.
#include "config/config.h"
#include "gateway/access_policy.h"

#include <cstdint>
#include <string>

namespace pacsgw::gateway {

// How a refusal is audited.
enum class RefusalAudit {
  None,           // allowed
  QueryRefused,   // audit::query(..., allowed = false, reason)
  SecurityAlert,  // audit::securityAlert(alertCode, reason)
};

struct QueryDecision {
  bool allowed = false;
  std::uint16_t status = 0;  // the C-FIND-RSP status when refused
  RefusalAudit audit = RefusalAudit::None;
  std::string reason;        // for the "audit:" log line and the audit record
};

// C-FIND: configured workstations whose access is not deny.
QueryDecision authoriseQuery(const PeerIdentity& caller);

struct RetrieveDecision {
  bool allowed = false;
  std::uint16_t status = 0;  // the C-MOVE-RSP / C-GET-RSP status when refused
  RefusalAudit audit = RefusalAudit::None;
  std::string alertCode;     // AccessRefused | MoveDestinationRefused
  std::string reason;            // why, for the "audit:" log line (values from the wire made printable)
  std::string auditDescription;  // the Security Alert's description (the audit trail escapes it)
  // When allowed: what the receiving side may see (decrypt, ciphertext) and where the instances go.
  config::Access access = config::Access::Deny;
  const config::Workstation* destination = nullptr;  // C-MOVE to a configured workstation
  const config::RelayPeer* relayPeer = nullptr;      // C-MOVE to a relay peer (always ciphertext)
};

// C-GET: the caller's own access decides. C-MOVE: the destination must be a configured workstation
// with access, or a relay peer, and among the caller's move_destinations (itself always); the
// destination's access decides decryption, since the images land there. `destinationWorkstation` and
// `destinationRelayPeer` are what the destination AE title names (nullptr when nothing).
RetrieveDecision authoriseGet(const PeerIdentity& caller);
RetrieveDecision authoriseMove(const PeerIdentity& caller, const std::string& moveDestination,
                               const config::Workstation* destinationWorkstation,
                               const config::RelayPeer* destinationRelayPeer);

}  // namespace pacsgw::gateway
