#pragma once
// C-MOVE and C-GET from a workstation: authorised (query_retrieve_authorisation.h: who may retrieve,
// to which destination, with what access), re-issued to the PACS as a C-MOVE with the gateway as
// destination, the PACS's sub-operations taken in by SubOperationIntake and delivered by the job's
// delivery thread, progress and the final counts relayed to the requester. A PACS that stops after a
// refused sub-operation is asked again for the instances it never offered, so a bad one fails alone.
// The requester, the PACS and the destination are interfaces (retrieve_peers.h): no sockets here.
#include "config/config.h"
#include "gateway/access_policy.h"
#include "gateway/retrieve_jobs.h"
#include "gateway/retrieve_peers.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>

#include <cstdint>
#include <string>

namespace pacsgw::gateway {

namespace relay {
class RelayService;
}

class RetrieveProxy {
 public:
  // What the proxy uses of the gateway: read-only configuration, the registry of outstanding retrieves
  // (where the sub-operation intake finds them) and the connections to the PACS and destinations.
  struct Environment {
    const config::Config& config;
    const AccessPolicy& policy;
    const relay::RelayService* relay;  // nullptr without a relay: section
    RetrieveRegistry& retrieves;
    RetrieveConnections& connections;
  };

  RetrieveProxy(Environment environment, const PeerIdentity& caller, RetrieveRequester& requester);
  // Serves one request whose identifier was received and whose context matches, up to and including
  // its final response. False when the requester's association can carry nothing more.
  bool serve(const RetrieveCall& call, DcmDataset& identifier);

 private:
  Environment env_;
  const PeerIdentity& caller_;
  RetrieveRequester& requester_;
};

}  // namespace pacsgw::gateway
