#pragma once
// One inbound association: who the peer is, what was negotiated, and the services it may use.
#include "gateway/access_policy.h"
#include "gateway/dataset_receiver.h"
#include "gateway/gateway_context.h"
#include "gateway/memory_budget.h"
#include "gateway/peer_association.h"
#include "gateway/retrieve_jobs.h"
#include "gateway/store_tally.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/dimse.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>


namespace pacsgw::gateway {

class InstanceProtector;
class SpooledPixelData;
class StoreForwarding;
class SubOperationIntake;
class SubOperationVerifier;
class UpstreamStore;

class Session {
 public:
  Session(GatewayContext& context, T_ASC_Association* assoc, PeerIdentity peer);
  ~Session();
  // Serves DIMSE requests until release, abort, idle timeout or shutdown.
  void run();

 private:
  void handleEcho(T_DIMSE_Message& msg, T_ASC_PresentationContextID presId);
  void handleStore(T_DIMSE_Message& msg, T_ASC_PresentationContextID presId);
  // Query / retrieve: the identifier is received here, the work done by relayFind and RetrieveProxy.
  void handleFind(T_DIMSE_Message& msg, T_ASC_PresentationContextID presId);
  void handleRetrieve(T_DIMSE_Message& msg, T_ASC_PresentationContextID presId);  // C-MOVE and C-GET
  // The identifier of a C-FIND / C-MOVE / C-GET, refused while read when larger than a sane bound.
  ReceivedDataSet receiveIdentifier(T_ASC_PresentationContextID presId);
  bool identifierBreaksAssociation(const ReceivedDataSet& received);
  std::uint16_t identifierRefusalStatus(const ReceivedDataSet& received, std::uint16_t outOfResources);
  void handleSubOperation(T_DIMSE_C_StoreRQ& request, T_ASC_PresentationContextID presId,
                          std::unique_ptr<DcmDataset> dataset, MemoryReservation memory,
                          std::shared_ptr<SpooledPixelData> spooled);
  // A sub-operation whose data set was refused while it was read (too large, no memory, malformed):
  // counted as a failure of its retrieve, so the requester's counts add up.
  void refuseSubOperation(T_DIMSE_C_StoreRQ& request, T_ASC_PresentationContextID presId, std::uint16_t statusCode,
                          const std::string& reason);
  SubOperationIntake& intake();
  InstanceProtector& protector();
  // The store path (modalities and relay peers): the PACS directly, or the spool in queued mode.
  StoreForwarding& storeForwarding();
  void sendStoreResponse(T_ASC_PresentationContextID presId, const T_DIMSE_C_StoreRQ& request,
                         std::uint16_t status, const std::string& comment);
  E_TransferSyntax contextTransferSyntax(T_ASC_PresentationContextID presId) const;
  // DCMTK does not check that a command's SOP class is the one its presentation context negotiated.
  bool requestMatchesContext(T_ASC_PresentationContextID presId, const std::string& sopClassUid) const;

  GatewayContext& context_;
  T_ASC_Association* assoc_;
  PeerIdentity peer_;
  StoreTally tally_;  // outlives the services below, which count into it
  std::unique_ptr<InstanceProtector> protector_;
  std::unique_ptr<UpstreamStore> upstream_;
  std::unique_ptr<StoreForwarding> storeForwarding_;
  std::unique_ptr<SubOperationVerifier> verifier_;  // for intake_: sub-operations when the peer is the PACS
  std::unique_ptr<SubOperationIntake> intake_;
  AssociationMemory memory_;  // this association's share of context_.memory
  bool broken_ = false;
};

}  // namespace pacsgw::gateway
