#pragma once
// A C-MOVE's destination as the delivery loop sees it (InstanceDelivery): one association, opened when
// the first instance goes and re-opened when a new kind of object needs a presentation context it
// does not have yet. Each instance is proposed in what the gateway can deliver it in (its stored
// syntax and, when the gateway can decode it, uncompressed ones), so a destination that refuses one
// kind only fails that kind. How an association is opened is a seam (DestinationOpener): DCMTK's in
// retrieve_dimse.cpp, in-memory ones in the unit tests.
#include "gateway/peer_association.h"
#include "gateway/retrieve_jobs.h"
#include "gateway/retrieve_peers.h"

#include <functional>
#include <memory>
#include <vector>

namespace pacsgw::gateway {

// An open association to the destination.
class DestinationAssociation {
 public:
  virtual ~DestinationAssociation() = default;
  // One C-STORE with the move originator (see PeerAssociation::store).
  virtual StoreOutcome store(DcmDataset& dataset, E_TransferSyntax xfer, const std::string& sopClass,
                             const std::string& sopInstance, const MoveOriginator& originator,
                             Transcoding transcoding) = 0;
  // False once a network error has broken it.
  virtual bool usable() const = 0;
};

// Opens an association proposing `contexts`. Throws NoAcceptedContext when the destination answered
// but took none of them, PeerUnavailable when it cannot be reached.
using DestinationOpener =
    std::function<std::unique_ptr<DestinationAssociation>(const std::vector<ProposedContext>& contexts)>;

class DestinationDelivery : public InstanceDelivery {
 public:
  static constexpr std::size_t kMaxContexts = 128;  // the most an association request may carry

  // `request` (its destination and originator) must outlive this object.
  DestinationDelivery(const RetrieveRequest& request, DestinationOpener open);
  DeliveryResult deliver(const OutgoingInstance& instance) override;

 private:
  const RetrieveRequest& request_;
  DestinationOpener open_;
  std::unique_ptr<DestinationAssociation> association_;
  std::vector<ProposedContext> proposed_;
};

}  // namespace pacsgw::gateway
