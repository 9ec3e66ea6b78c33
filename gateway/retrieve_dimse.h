#pragma once
// The parties of a proxied retrieve (retrieve_peers.h) over DCMTK associations: the requester's
// association, the gateway's association to the PACS, and the association to a C-MOVE destination.
#include "gateway/gateway_context.h"
#include "gateway/retrieve_peers.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/dimse.h>

#include <cstdint>
#include <memory>

namespace pacsgw::gateway {

// The requester's association and its C-MOVE-RQ / C-GET-RQ (both must outlive this object).
class AssociationRetrieveRequester : public RetrieveRequester {
 public:
  // `dimseTimeoutSeconds` bounds a C-GET's C-STORE exchanges with the requester.
  AssociationRetrieveRequester(T_ASC_Association* assoc, T_ASC_PresentationContextID presId, T_DIMSE_Message& request,
                               int dimseTimeoutSeconds);
  ~AssociationRetrieveRequester() override;
  bool respond(const RetrieveResponse& response) override;
  bool cancelRequested() override;
  InstanceDelivery* ownAssociation() override;

 private:
  class StoreBack;  // C-GET: C-STOREs on this association

  T_ASC_Association* assoc_;
  T_ASC_PresentationContextID presId_;
  T_DIMSE_Message& request_;
  int dimseTimeoutSeconds_;
  std::unique_ptr<StoreBack> storeBack_;
};

// Opens associations to the PACS and to C-MOVE destinations as the gateway's configuration says.
class DimseRetrieveConnections : public RetrieveConnections {
 public:
  explicit DimseRetrieveConnections(const GatewayContext& context) : context_(context) {}
  std::unique_ptr<PacsRetrieve> openPacs(const std::string& moveModel) override;
  std::unique_ptr<InstanceDelivery> destination(const RetrieveRequest& request) override;

 private:
  const GatewayContext& context_;
};

// What RetrieveProxy needs of a C-MOVE-RQ / C-GET-RQ.
RetrieveCall retrieveCallOf(const T_DIMSE_Message& msg);

// Answers a C-MOVE-RQ / C-GET-RQ with `status` and zero counts; false when the association failed.
bool refuseRetrieve(T_ASC_Association* assoc, T_ASC_PresentationContextID presId, T_DIMSE_Message& msg,
                    std::uint16_t status);

}  // namespace pacsgw::gateway
