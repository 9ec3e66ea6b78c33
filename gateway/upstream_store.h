#pragma once
// Where the store path hands an encrypted instance: the PACS directly, over one association reused for
// the whole inbound association, or the durable spool (upstream.forward: queued) that a forwarder
// empties later. The StoreForwarding service only sees this interface, so it is tested without sockets.
#include "gateway/peer_association.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmnet/assoc.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pacsgw::config {
struct Config;
}
namespace pacsgw::gateway::spool {
class Spool;
struct SpoolRecordMeta;
}

namespace pacsgw::gateway {

class UpstreamStore {
 public:
  virtual ~UpstreamStore() = default;
  // Hands one instance on. `delivered` with a stored status means the PACS (or the spool) holds it;
  // anything else is a status to answer the sender with.
  virtual StoreOutcome store(DcmDataset& dataset, E_TransferSyntax xfer, const std::string& sopClass,
                             const std::string& sopInstance) = 0;
};

// The PACS, over one association opened on first use and re-opened once when the PACS closed it while idle.
class DirectUpstream : public UpstreamStore {
 public:
  // `contexts` is asked once, when the first association is opened.
  DirectUpstream(const config::Config& config, NetworkTimeouts timeouts,
                 std::function<std::vector<ProposedContext>()> contexts);
  StoreOutcome store(DcmDataset& dataset, E_TransferSyntax xfer, const std::string& sopClass,
                     const std::string& sopInstance) override;

 private:
  const config::Config& config_;
  NetworkTimeouts timeouts_;
  std::function<std::vector<ProposedContext>()> contextsFor_;
  std::optional<std::vector<ProposedContext>> contexts_;
  std::unique_ptr<PeerAssociation> association_;
};

// Queued mode: Success only once the encrypted instance is durably spooled. An instance above the
// spool's streamAboveBytes is encoded into its record file in pieces (never whole in memory).
class SpoolUpstream : public UpstreamStore {
 public:
  SpoolUpstream(spool::Spool& spool, std::string callingAeTitle);
  StoreOutcome store(DcmDataset& dataset, E_TransferSyntax xfer, const std::string& sopClass,
                     const std::string& sopInstance) override;

 private:
  StoreOutcome storeStreamed(DcmDataset& dataset, E_TransferSyntax stored, const spool::SpoolRecordMeta& meta,
                             std::uint64_t length);

  spool::Spool& spool_;
  std::string callingAeTitle_;
};

// The contexts to propose to the PACS for what a sender negotiated on `inbound`: each accepted
// (SOP class, transfer syntax), native ones with both little-endian alternatives, and for compressed
// ones a native context too when the cipher decodes them (`decodesCompressed`). At most 128.
std::vector<ProposedContext> upstreamContextsFor(T_ASC_Parameters* inbound, bool decodesCompressed);

}  // namespace pacsgw::gateway
