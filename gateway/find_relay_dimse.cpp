#include "gateway/find_relay_dimse.h"

#include "gateway/peer_endpoints.h"

#include <dcmtk/dcmdata/dcuid.h>

namespace pacsgw::gateway {

namespace {

void matchReceived(void* data, T_DIMSE_C_FindRQ*, int, T_DIMSE_C_FindRSP* response, DcmDataset* identifiers) {
  (*static_cast<const std::function<void(std::uint16_t, DcmDataset*)>*>(data))(response->DimseStatus, identifiers);
}

}  // namespace

std::unique_ptr<PeerAssociation> openQueryAssociation(const GatewayContext& context, const std::string& sopClass) {
  return PeerAssociation::open(
      upstreamEndpoint(context.config), context.config.gateway.aeTitle,
      {ProposedContext{sopClass, {UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax}}},
      context.timeouts, context.config.gateway.maxPduBytes);
}

bool AssociationFindRequester::cancelRequested() {
  return DIMSE_checkForCancelRQ(assoc_, presId_, request_.MessageID).good();
}

bool AssociationFindRequester::sendMatch(std::uint16_t status, DcmDataset* identifier) {
  T_DIMSE_C_FindRSP rsp{};
  rsp.MessageIDBeingRespondedTo = request_.MessageID;
  OFStandard::strlcpy(rsp.AffectedSOPClassUID, request_.AffectedSOPClassUID, sizeof(rsp.AffectedSOPClassUID));
  rsp.DimseStatus = status;
  rsp.DataSetType = identifier != nullptr ? DIMSE_DATASET_PRESENT : DIMSE_DATASET_NULL;
  rsp.opts = O_FIND_AFFECTEDSOPCLASSUID;
  return DIMSE_sendFindResponse(assoc_, presId_, &request_, &rsp, identifier, nullptr).good();
}

FindUpstream::End AssociationFindUpstream::query(DcmDataset& identifier,
                                                 const std::function<void(std::uint16_t, DcmDataset*)>& onMatch) {
  request_.MessageID = pacs_.nextMessageId();
  T_DIMSE_C_FindRSP finalResponse{};
  DcmDataset* statusDetail = nullptr;
  int responseCount = 0;
  auto callback = onMatch;
  OFCondition cond = DIMSE_findUser(pacs_.raw(), presId_, &request_, &identifier, responseCount, matchReceived,
                                    &callback, DIMSE_NONBLOCKING, pacs_.dimseTimeout(), &finalResponse, &statusDetail);
  delete statusDetail;
  End end;
  if (cond.bad()) {
    end.failed = true;
    end.error = cond.text();
  } else {
    end.status = finalResponse.DimseStatus;
  }
  return end;
}

void AssociationFindUpstream::cancel() { DIMSE_sendCancelRequest(pacs_.raw(), presId_, request_.MessageID); }

}  // namespace pacsgw::gateway
