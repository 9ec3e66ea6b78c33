#pragma once
// The two ends of a C-FIND relay over DIMSE: the requester's association and an association to the PACS.
#include "gateway/find_relay.h"
#include "gateway/gateway_context.h"
#include "gateway/peer_association.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/dimse.h>

namespace pacsgw::gateway {

// An association to the PACS for one query/retrieve SOP class (uncompressed little endian).
std::unique_ptr<PeerAssociation> openQueryAssociation(const GatewayContext& context, const std::string& sopClass);

class AssociationFindRequester : public FindRequester {
 public:
  AssociationFindRequester(T_ASC_Association* assoc, T_ASC_PresentationContextID presId, T_DIMSE_C_FindRQ& request)
      : assoc_(assoc), presId_(presId), request_(request) {}
  bool cancelRequested() override;
  bool sendMatch(std::uint16_t status, DcmDataset* identifier) override;
  // The final response (no identifier); false when the association failed.
  bool sendFinal(std::uint16_t status) { return sendMatch(status, nullptr); }

 private:
  T_ASC_Association* assoc_;
  T_ASC_PresentationContextID presId_;
  T_DIMSE_C_FindRQ& request_;
};

class AssociationFindUpstream : public FindUpstream {
 public:
  // `presId`: the PACS's accepted context for the request's SOP class.
  AssociationFindUpstream(PeerAssociation& pacs, T_ASC_PresentationContextID presId, const T_DIMSE_C_FindRQ& request)
      : pacs_(pacs), presId_(presId), request_(request) {}
  End query(DcmDataset& identifier, const std::function<void(std::uint16_t, DcmDataset*)>& onMatch) override;
  void cancel() override;

 private:
  PeerAssociation& pacs_;
  T_ASC_PresentationContextID presId_;
  T_DIMSE_C_FindRQ request_;
};

}  // namespace pacsgw::gateway
