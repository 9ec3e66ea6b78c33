#pragma once
// One inbound association: who the peer is, what was negotiated, and the services it may use.
#include "config/config.h"
#include "gateway/access_policy.h"
#include "gateway/dataset_receiver.h"
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

namespace pacsgw::keystore {
class Keystore;
}
namespace pacsgw::gateway::spool {
class Spool;
}
namespace pacsgw::gateway::relay {
class RelayService;
}

namespace pacsgw::gateway {

class InstanceProtector;
class StoreForwarding;
class SubOperationIntake;
class SubOperationVerifier;
class UpstreamStore;

// Shared by every association: read-only after start, or internally synchronised.
struct GatewayContext {
  const config::Config& config;
  keystore::Keystore& keys;
  const AccessPolicy& policy;
  std::atomic<bool>& stopping;
  NetworkTimeouts timeouts;
  RetrieveRegistry& retrieves;
  MemoryBudget& memory;  // data sets held by all associations together (limits.max_in_flight_mb)
  spool::Spool* spool = nullptr;  // set with upstream.forward: queued
  const relay::RelayService* relay = nullptr;  // set with a relay: section
};

class Session {
 public:
  Session(GatewayContext& context, T_ASC_Association* assoc, PeerIdentity peer);
  ~Session();
  // Serves DIMSE requests until release, abort, idle timeout or shutdown.
  void run();

 private:
  void handleEcho(T_DIMSE_Message& msg, T_ASC_PresentationContextID presId);
  void handleStore(T_DIMSE_Message& msg, T_ASC_PresentationContextID presId);
  // Retrieval path (retrieve_service.cpp).
  void handleFind(T_DIMSE_Message& msg, T_ASC_PresentationContextID presId);
  void handleRetrieve(T_DIMSE_Message& msg, T_ASC_PresentationContextID presId);  // C-MOVE and C-GET
  // The identifier of a C-FIND / C-MOVE / C-GET, refused while read when larger than a sane bound.
  ReceivedDataSet receiveIdentifier(T_ASC_PresentationContextID presId);
  bool identifierBreaksAssociation(const ReceivedDataSet& received);
  std::uint16_t identifierRefusalStatus(const ReceivedDataSet& received, std::uint16_t outOfResources);
  void handleSubOperation(T_DIMSE_C_StoreRQ& request, T_ASC_PresentationContextID presId,
                          std::unique_ptr<DcmDataset> dataset, MemoryReservation memory);
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
