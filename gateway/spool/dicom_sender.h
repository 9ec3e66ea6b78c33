#pragma once
// The forwarder's network side: C-STOREs spooled records to the PACS over one association, opened
// on demand and re-opened when a record needs a presentation context it did not propose.
#include "gateway/peer_association.h"
#include "gateway/spool/forwarder.h"

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace pacsgw::gateway::spool {

class DicomUpstreamSender : public UpstreamSender {
 public:
  DicomUpstreamSender(PeerEndpoint peer, std::string callingAeTitle, NetworkTimeouts timeouts, unsigned maxPduBytes);
  SendResult send(const SpoolRecordView& record) override;
  SendResult sendFile(const SpoolRecordFile& record) override;
  void idle() override { association_.reset(); }

 private:
  std::vector<ProposedContext> contexts() const;
  // C-STOREs a decoded record over the association, opening or re-opening it as needed.
  SendResult deliver(const SpoolRecordMeta& meta, E_TransferSyntax xfer, DcmDataset& dataset);
  // The same, with `store` sending the instance over the association it is given.
  SendResult deliverWith(const SpoolRecordMeta& meta, E_TransferSyntax xfer,
                         const std::function<StoreOutcome(PeerAssociation&)>& store);

  PeerEndpoint peer_;
  std::string callingAeTitle_;
  NetworkTimeouts timeouts_;
  unsigned maxPduBytes_;
  std::vector<std::pair<std::string, std::string>> wanted_;  // (SOP class, transfer syntax), most recent last
  std::unique_ptr<PeerAssociation> association_;
};

}  // namespace pacsgw::gateway::spool
