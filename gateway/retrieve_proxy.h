#pragma once
// C-MOVE and C-GET from a workstation: authorised against the access policy (who may retrieve, to which
// destination, with what access), re-issued to the PACS as a C-MOVE with the gateway as destination,
// the PACS's sub-operations taken in by SubOperationIntake and delivered by the job's delivery thread,
// progress and the final counts relayed to the requester. A PACS that stops after a refused
// sub-operation is asked again for the instances it never offered, so a bad one fails alone.
#include "gateway/access_policy.h"
#include "gateway/gateway_context.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/dimse.h>

#include <cstdint>

namespace pacsgw::gateway {

class RetrieveProxy {
 public:
  RetrieveProxy(GatewayContext& context, const PeerIdentity& requester, T_ASC_Association* assoc);
  // Serves one C-MOVE-RQ / C-GET-RQ whose identifier was received and whose context matches, up to and
  // including its final response. False when the requester's association can carry nothing more.
  bool serve(T_DIMSE_Message& msg, T_ASC_PresentationContextID presId, DcmDataset& identifier);

 private:
  GatewayContext& context_;
  const PeerIdentity& peer_;
  T_ASC_Association* assoc_;
};

// Answers a C-MOVE-RQ / C-GET-RQ with `status` and zero counts; false when the association failed.
bool refuseRetrieve(T_ASC_Association* assoc, T_ASC_PresentationContextID presId, T_DIMSE_Message& msg,
                    std::uint16_t status);

}  // namespace pacsgw::gateway
