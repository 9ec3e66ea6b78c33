// The receiving side of the site-to-site relay (docs/relay.md): a peer gateway C-STOREs ciphertext
// objects, each with a capsule carrying its study's data key; they reach the PACS only once the
// capsule is verified, bound to the object and its key imported.
#include "gateway/audit/audit_trail.h"
#include "gateway/gateway_metrics.h"
#include "gateway/net_util.h"
#include "gateway/relay/relay_element.h"
#include "gateway/relay/relay_service.h"
#include "gateway/session.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <spdlog/spdlog.h>

namespace pacsgw::gateway {

namespace {
std::string stringOf(DcmDataset& dataset, const DcmTagKey& tag) {
  OFString value;
  dataset.findAndGetOFString(tag, value);
  return value.c_str();
}
}  // namespace

bool Session::refuseCapsuleFromNonPeer(T_DIMSE_C_StoreRQ& request, T_ASC_PresentationContextID presId,
                                       DcmDataset& dataset) {
  if (!relay::hasRelayCapsule(dataset)) return false;
  ++stats_.failed;
  const std::string sopInstance = request.AffectedSOPInstanceUID;
  spdlog::warn("audit: security alert: C-STORE {} from {}@{} refused (RelayCapsuleFromNonPeer): a relay capsule "
               "from a sender that is not a configured relay peer",
               printable(sopInstance), printable(peer_.aeTitle), peer_.address);
  audit::securityAlert("RelayCapsuleFromNonPeer", "relay capsule from a sender that is not a configured relay peer",
                       {peer_.aeTitle, peer_.address}, sopInstance);
  sendStoreResponse(presId, request, status::kNotAuthorised, "RelayCapsuleFromNonPeer");
  return true;
}

void Session::handleRelayedStore(T_DIMSE_C_StoreRQ& request, T_ASC_PresentationContextID presId,
                                 std::unique_ptr<DcmDataset> dataset) {
  const std::string sopClass = stringOf(*dataset, DCM_SOPClassUID);
  const std::string sopInstance = stringOf(*dataset, DCM_SOPInstanceUID);
  if (sopClass != request.AffectedSOPClassUID || sopInstance != request.AffectedSOPInstanceUID) {
    ++stats_.failed;
    spdlog::warn("relayed C-STORE {} from {}: SOP Class / Instance UID in the data set do not match the request; "
                 "refused", printable(request.AffectedSOPInstanceUID), printable(peer_.aeTitle));
    sendStoreResponse(presId, request, status::kDataSetDoesNotMatchSopClass, "SOP UIDs in data set differ from request");
    return;
  }
  const config::RelayPeer& from = *peer_.relayPeer;
  std::optional<relay::RelayRefusal> refused;
  try {
    refused = context_.relay->acceptRelayed(*dataset, from, context_.keys);
  } catch (const std::exception& e) {
    refused = relay::RelayRefusal{status::kProcessingFailure, "RelayFailure", e.what()};
  }
  if (refused) {
    ++stats_.failed;
    tallyStudy(*dataset, false);
    spdlog::warn("audit: security alert: relayed C-STORE {} from peer {} ({}@{}) refused ({}): {}",
                 printable(sopInstance), printable(from.name), printable(peer_.aeTitle), peer_.address,
                 refused->code, printable(refused->detail));
    audit::securityAlert(refused->code, refused->detail, {peer_.aeTitle, peer_.address}, sopInstance);
    metrics::increment("pacsgw_relay_refused_total", {{"reason", refused->code}});
    sendStoreResponse(presId, request, refused->status, refused->code);
    return;
  }
  // The ciphertext and its key-reference block go on unchanged; only the capsule was removed.
  const E_TransferSyntax xfer = contextTransferSyntax(presId);
  StoreOutcome outcome = context_.spool != nullptr ? spoolInstance(*dataset, xfer, sopClass, sopInstance)
                                                   : forwardToUpstream(*dataset, xfer, sopClass, sopInstance);
  if (outcome.delivered && status::isStored(outcome.status)) {
    ++stats_.stored;
    tallyStudy(*dataset, true);
    stats_.bytes += dataset->getLength(xfer);
    spdlog::debug("relayed C-STORE {} from peer {} -> {}: {}", sopInstance, printable(from.name),
                  context_.config.upstream.aeTitle, describeStatus(outcome.status));
  } else {
    ++stats_.failed;
    tallyStudy(*dataset, false);
    spdlog::warn("relayed C-STORE {} from peer {} -> {}: {} ({})", sopInstance, printable(from.name),
                 context_.config.upstream.aeTitle, describeStatus(outcome.status), outcome.errorComment);
  }
  sendStoreResponse(presId, request, outcome.status, outcome.errorComment);
}

}  // namespace pacsgw::gateway
