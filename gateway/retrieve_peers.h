#pragma once
// The three parties a proxied C-MOVE / C-GET talks to, as interfaces: the requester (responses, its
// C-CANCEL, and for a C-GET the C-STOREs back on its own association), the PACS (the gateway's C-MOVE
// and the listing of what a retrieve names) and the destination of the instances. RetrieveProxy and
// the delivery loop only see these, so they run without sockets in unit tests; the DCMTK
// implementations are in retrieve_dimse.h.
#include "gateway/peer_association.h"
#include "gateway/retrieve_outcome.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace pacsgw::gateway {

struct RetrieveRequest;

// One verified instance leaving for the retrieve's destination.
struct OutgoingInstance {
  DcmDataset& dataset;
  E_TransferSyntax xfer;
  Transcoding transcoding;  // how far it may be re-encoded for the destination
  const std::string& sopClass;
  const std::string& sopInstance;
};

struct DeliveryResult {
  StoreOutcome outcome;
  bool destinationUnreachable = false;  // no later instance can reach it either: fail those fast
  bool requesterCancelled = false;      // C-GET: a C-CANCEL arrived during the C-STORE exchange
  bool requesterBroken = false;         // C-GET: the requester's association can carry nothing more
};

// Where a retrieve's instances go: the C-MOVE destination, or the C-GET requester's own association.
// Called by the job's delivery thread only, one instance at a time.
class InstanceDelivery {
 public:
  virtual ~InstanceDelivery() = default;
  virtual DeliveryResult deliver(const OutgoingInstance& instance) = 0;
};

// A C-MOVE-RSP / C-GET-RSP as the gateway reports it.
struct RetrieveResponse {
  std::uint16_t status = 0;
  unsigned remaining = 0;  // sent only with Pending and Cancel
  unsigned completed = 0, failed = 0, warning = 0;
  std::vector<std::string> failedSopInstanceUids;  // the Failed SOP Instance UID List, when not empty
};

// The requester's C-MOVE-RQ / C-GET-RQ, as far as the proxy needs it.
struct RetrieveCall {
  bool isGet = false;
  std::uint16_t messageId = 0;
  std::string sopClass;          // its Affected SOP Class UID (a C-MOVE or C-GET information model)
  std::uint16_t priority = 0;
  std::string moveDestination;   // C-MOVE only
};

// The workstation that sent the C-MOVE / C-GET.
class RetrieveRequester {
 public:
  virtual ~RetrieveRequester() = default;
  // Sends a response; false when the association failed (nothing more can reach the requester).
  virtual bool respond(const RetrieveResponse& response) = 0;
  // Whether a C-CANCEL for this retrieve has arrived (polled between the PACS's responses).
  virtual bool cancelRequested() = 0;
  // C-GET: delivery on the requester's own association, where it plays the Storage SCP. nullptr for
  // a C-MOVE. Used by the delivery thread, in turns with respond() (RetrieveJob::channel).
  virtual InstanceDelivery* ownAssociation() = 0;
};

// The gateway's C-MOVE to the PACS (with the gateway as move destination).
struct PacsMoveCommand {
  std::uint16_t messageId = 0;
  std::uint16_t priority = 0;
  std::string moveDestination;  // the gateway's own AE title
};

// A pending C-MOVE-RSP of the PACS.
struct PacsProgress {
  std::uint16_t status = 0;
  unsigned remaining = 0, completed = 0, failed = 0, warning = 0;
};

// An association to the PACS able to carry the retrieve's C-MOVE.
class PacsRetrieve {
 public:
  virtual ~PacsRetrieve() = default;
  // Issues the C-MOVE for `query` and blocks until its final response, calling `onPending` for each
  // pending response (the PACS's C-STORE sub-operations arrive meanwhile on another association). A
  // broken exchange ends with associationFailed set; the PACS was told to stop first.
  virtual PacsRetrieveEnd move(const PacsMoveCommand& command, DcmDataset& query,
                               const std::function<void(const PacsProgress&)>& onPending) = 0;
  // Sends a C-CANCEL for the running move (from within onPending).
  virtual void cancel(std::uint16_t messageId) = 0;
  // SOP Instance UIDs of every instance `identifier` names, asked of the PACS at IMAGE level; empty when
  // the PACS did not answer. Throws PeerUnavailable.
  virtual std::vector<std::string> instancesOf(DcmDataset& identifier) = 0;
};

// Opens what a retrieve needs beyond the requester.
class RetrieveConnections {
 public:
  virtual ~RetrieveConnections() = default;
  // An association to the PACS for `moveModel`; nullptr when the PACS accepted no context for it.
  // Throws PeerUnavailable.
  virtual std::unique_ptr<PacsRetrieve> openPacs(const std::string& moveModel) = 0;
  // Delivery to a C-MOVE's destination (request.destination); it connects when the first instance goes.
  virtual std::unique_ptr<InstanceDelivery> destination(const RetrieveRequest& request) = 0;
};

}  // namespace pacsgw::gateway
