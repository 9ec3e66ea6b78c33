#pragma once
// Label values the gateway uses with the metrics registry: closed sets, never text from the wire.
#include "gateway/access_policy.h"
#include "gateway/dimse_status.h"
#include "gateway/metrics/registry.h"
#include "gateway/peer_association.h"

#include <cstdint>
#include <cstdio>
#include <string>

namespace pacsgw::gateway {

inline const char* peerRole(const PeerIdentity& peer) {
  if (peer.isModality) return "modality";
  if (peer.workstation != nullptr) return "workstation";
  if (peer.isUpstream) return "pacs";
  return "unknown";
}


enum class Delivery { ToPacs, ToWorkstation };

// Counts one instance handed to the PACS (store path) or to a workstation (retrieve path): forwarded
// and its bytes when the peer took it, an upstream error when the PACS did not.
inline void countDelivery(Delivery where, const StoreOutcome& outcome, DcmDataset& dataset, E_TransferSyntax xfer) {
  const bool toPacs = where == Delivery::ToPacs;
  if (!outcome.delivered || !status::isStored(outcome.status)) {
    if (toPacs) metrics::increment("pacsgw_upstream_errors_total", {{"kind", "store"}});
    return;
  }
  metrics::increment("pacsgw_instances_total", {{"path", toPacs ? "store" : "retrieve"},
                                               {"outcome", "forwarded"},
                                               {"status", statusLabel(outcome.status)}});
  metrics::increment("pacsgw_bytes_total", {{"direction", toPacs ? "to_pacs" : "to_workstation"}},
                     static_cast<double>(dataset.getLength(xfer)));
}

// Keeps pacsgw_associations_active right whichever way an association ends.
class ActiveAssociationGauge {
 public:
  ActiveAssociationGauge() { metrics::increment("pacsgw_associations_active"); }
  ~ActiveAssociationGauge() { metrics::increment("pacsgw_associations_active", {}, -1); }
  ActiveAssociationGauge(const ActiveAssociationGauge&) = delete;
  ActiveAssociationGauge& operator=(const ActiveAssociationGauge&) = delete;
};

}  // namespace pacsgw::gateway
