#pragma once
// An outgoing association (SCU role) to a PACS or a workstation, used to forward C-STOREs.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/dimse.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace pacsgw::gateway {

struct PeerEndpoint {
  std::string aeTitle;
  std::string host;
  std::uint16_t port = 0;
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

// DIMSE status codes the gateway produces itself (PS3.4 / PS3.7).
namespace status {
constexpr std::uint16_t kSuccess = 0x0000;
constexpr std::uint16_t kProcessingFailure = 0x0110;
constexpr std::uint16_t kSopClassNotSupported = 0x0122;
constexpr std::uint16_t kNotAuthorised = 0x0124;
constexpr std::uint16_t kUnableToPerformSubOperations = 0xA702;  // C-MOVE / C-GET: out of resources
constexpr std::uint16_t kOutOfResources = 0xA700;
constexpr std::uint16_t kDataSetDoesNotMatchSopClass = 0xA900;
constexpr std::uint16_t kCannotUnderstand = 0xC000;
constexpr std::uint16_t kMoveDestinationUnknown = 0xA801;
constexpr std::uint16_t kUnableToProcess = 0xC001;
constexpr std::uint16_t kSubOperationsCompleteWithFailures = 0xB000;
constexpr std::uint16_t kCancel = 0xFE00;
constexpr std::uint16_t kPending = 0xFF00;
}  // namespace status

struct StoreOutcome {
  bool delivered = false;      // a C-STORE-RSP came back from the peer
  std::uint16_t status = status::kProcessingFailure;
  std::string errorComment;    // the peer's Error Comment, or our reason when not delivered
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
  // encoding; a native dataset may go out in another native syntax the peer accepted.
  StoreOutcome store(DcmDataset& dataset, E_TransferSyntax xfer, const std::string& sopClassUid,
                     const std::string& sopInstanceUid, const MoveOriginator* originator = nullptr);
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
  T_ASC_PresentationContextID findContext(const std::string& sopClassUid, E_TransferSyntax xfer) const;

  PeerEndpoint peer_;
  NetworkTimeouts timeouts_;
  T_ASC_Network* network_ = nullptr;
  T_ASC_Association* assoc_ = nullptr;
  bool usable_ = false;
  std::uint16_t messageId_ = 0;
};

// True for the uncompressed transfer syntaxes whose pixel values survive re-encoding.
bool isNativeTransferSyntax(E_TransferSyntax xfer);
// Short text for a DIMSE status, for logs ("Success", "Refused: Out of Resources", ...).
std::string describeStatus(std::uint16_t status);

}  // namespace pacsgw::gateway
