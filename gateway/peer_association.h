#pragma once
// An outgoing association (SCU role) to a PACS or a workstation, used to forward C-STOREs.
#include "gateway/delivery_syntax.h"
#include "gateway/dimse_status.h"
#include "gateway/pdata_writer.h"
#include "gateway/tls/tls_layer.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/dimse.h>

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

namespace pacsgw::gateway {

struct PeerEndpoint {
  std::string aeTitle;
  std::string host;
  std::uint16_t port = 0;
  std::shared_ptr<const tls::OutgoingTls> tls;  // nullptr: plain DICOM
};

struct NetworkTimeouts {
  int connectSeconds = 10;
  int acseSeconds = 30;
  int dimseSeconds = 60;
};

struct ProposedContext {
  std::string abstractSyntax;
  std::vector<std::string> transferSyntaxes;  // in order of preference
};

// The peer could not be reached or refused the association.
class PeerUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The peer is up and answered, but accepted none of the proposed presentation contexts: a matter of
// what was proposed, not a reason to consider the peer down.
class NoAcceptedContext : public PeerUnavailable {
 public:
  using PeerUnavailable::PeerUnavailable;
};


struct StoreOutcome {
  bool delivered = false;      // a C-STORE-RSP came back from the peer
  std::uint16_t status = status::kProcessingFailure;
  std::string errorComment;    // the peer's Error Comment, or our reason when not delivered
  bool needsEncoding = false;  // storeEncoded: the peer did not accept the bytes' own transfer syntax
};

struct MoveOriginator {
  std::string aeTitle;
  std::uint16_t messageId = 0;
};

class PeerAssociation {
 public:
  // Opens the association; throws PeerUnavailable with the reason (connect, reject, no context).
  static std::unique_ptr<PeerAssociation> open(const PeerEndpoint& peer, const std::string& callingAeTitle,
                                               const std::vector<ProposedContext>& contexts,
                                               const NetworkTimeouts& timeouts, unsigned maxPduBytes);
  ~PeerAssociation();  // releases (or aborts) the association
  PeerAssociation(const PeerAssociation&) = delete;
  PeerAssociation& operator=(const PeerAssociation&) = delete;

  // Sends one instance and waits for the peer's C-STORE-RSP. `xfer` is the dataset's current
  // encoding; when the peer did not accept it, the dataset is re-encoded (see delivery_syntax.h)
  // for an accepted context as far as `transcoding` allows, else the instance fails with
  // status::kNoAcceptableTransferSyntax while the association stays usable.
  StoreOutcome store(DcmDataset& dataset, E_TransferSyntax xfer, const std::string& sopClassUid,
                     const std::string& sopInstanceUid, const MoveOriginator* originator = nullptr,
                     Transcoding transcoding = Transcoding::NativeOnly);
  // Sends an instance already encoded in `xfer` (a data set without meta header) exactly as it is,
  // when the peer accepted `xfer` itself for the SOP class. Otherwise nothing is sent and the outcome
  // has `needsEncoding` set: the caller decodes it and uses store() above, which converts it.
  StoreOutcome storeEncoded(const std::uint8_t* bytes, std::size_t size, E_TransferSyntax xfer,
                            const std::string& sopClassUid, const std::string& sopInstanceUid);
  // False once a network error has broken the association.
  bool usable() const { return usable_; }
  // Marks the association broken: it is aborted, not released, when destroyed.
  void markBroken() { usable_ = false; }
  // The raw association, for services that drive DIMSE themselves (C-FIND / C-MOVE relays).
  T_ASC_Association* raw() { return assoc_; }
  std::uint16_t nextMessageId() { return ++messageId_ == 0 ? ++messageId_ : messageId_; }
  int dimseTimeout() const { return timeouts_.dimseSeconds; }

 private:
  PeerAssociation() = default;

  // Refuses a TLS peer whose certificate does not carry the expected identity.
  void checkPeerIdentity(const std::string& where);

  // The accepted contexts never change during an association: the choice is made once per SOP
  // class, syntax and transcoding mode, not by walking every context for each instance.
  DeliveryContext deliveryContextFor(const std::string& sopClassUid, E_TransferSyntax xfer, Transcoding transcoding);

  // The C-STORE-RQ for `presId` (its data set is sent by `sendDataSet`), then the peer's response.
  template <typename SendDataSet>
  StoreOutcome exchangeStore(T_ASC_PresentationContextID presId, T_DIMSE_C_StoreRQ& request, SendDataSet sendDataSet);
  T_DIMSE_C_StoreRQ storeRequest(const std::string& sopClassUid, const std::string& sopInstanceUid,
                                 const MoveOriginator* originator);

  PeerEndpoint peer_;
  NetworkTimeouts timeouts_;
  std::unique_ptr<PDataWriter> writer_;
  std::map<std::tuple<std::string, E_TransferSyntax, Transcoding>, DeliveryContext> chosenContexts_;
  T_ASC_Network* network_ = nullptr;
  T_ASC_Association* assoc_ = nullptr;
  bool usable_ = false;
  std::uint16_t messageId_ = 0;
  int shutdownHandle_ = -1;  // registration in OutgoingConnections
};


}  // namespace pacsgw::gateway
