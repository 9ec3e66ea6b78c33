#include "gateway/session.h"
#include "gateway/peer_endpoints.h"

#include "gateway/audit/audit_trail.h"

#include "gateway/dataset_receiver.h"
#include "gateway/gateway_metrics.h"
#include "gateway/instance_protector.h"
#include "gateway/large_object_retrieve.h"
#include "gateway/large_object_store.h"
#include "gateway/net_util.h"
#include "gateway/find_relay_dimse.h"
#include "gateway/keystore_verifier.h"
#include "gateway/query_retrieve_authorisation.h"
#include "gateway/retrieve_dimse.h"
#include "gateway/retrieve_proxy.h"
#include "gateway/store_forwarding.h"
#include "gateway/sub_operation_intake.h"
#include "gateway/upstream_store.h"
#include "keystore/keystore.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>

namespace pacsgw::gateway {

namespace {

constexpr int kPollSeconds = 1;  // how often an idle association checks for shutdown

// C-FIND / C-MOVE / C-GET identifiers are keys and UID lists: a few KiB, a long UID list some hundred.
// A larger one is refused while it is read, before it is held whole.
constexpr std::uint64_t kMaxIdentifierBytes = std::uint64_t{1} << 20;

}  // namespace

Session::Session(GatewayContext& context, T_ASC_Association* assoc, PeerIdentity peer)
    : context_(context),
      assoc_(assoc),
      peer_(std::move(peer)),
      tally_(peer_.aeTitle, peer_.address),
      memory_(context.memory, std::uint64_t{context.config.limits.maxAssociationMb} << 20) {
  // The PACS's retrieve sub-operations wait for room in the total (earlier instances free it as they
  // reach their destination) instead of failing at once: a slow destination slows the PACS down. The
  // wait stays well inside the PACS's own C-STORE timeout (often 10 s).
  if (peer_.isUpstream && !peer_.isModality) {
    memory_.waitForTotalUpTo(std::chrono::seconds(std::clamp(context.timeouts.dimseSeconds / 4, 1, 5)));
  }
}

Session::~Session() = default;  // the tally writes the association's audit records and summary

void Session::run() {
  int idleSeconds = 0;
  while (!broken_) {
    T_ASC_PresentationContextID presId = 0;
    T_DIMSE_Message msg{};
    DcmDataset* statusDetail = nullptr;
    OFCondition cond = DIMSE_receiveCommand(assoc_, DIMSE_NONBLOCKING, kPollSeconds, &presId, &msg, &statusDetail);
    delete statusDetail;
    if (cond == DIMSE_NODATAAVAILABLE) {
      idleSeconds += kPollSeconds;
      if (context_.stopping.load() || idleSeconds >= static_cast<int>(context_.config.gateway.dimseTimeoutSeconds)) {
        spdlog::info("association from {}@{} aborted: {}", peer_.aeTitle, peer_.address,
                     context_.stopping.load() ? "gateway shutting down" : "idle timeout");
        ASC_abortAssociation(assoc_);
        return;
      }
      continue;
    }
    idleSeconds = 0;
    if (cond == DUL_PEERREQUESTEDRELEASE) {
      ASC_acknowledgeRelease(assoc_);
      return;
    }
    if (cond == DUL_PEERABORTEDASSOCIATION) {
      spdlog::info("association from {}@{} aborted by the peer", peer_.aeTitle, peer_.address);
      return;
    }
    if (cond.bad()) {
      spdlog::warn("association from {}@{}: cannot read command: {}", peer_.aeTitle, peer_.address, cond.text());
      ASC_abortAssociation(assoc_);
      return;
    }
    try {
      switch (msg.CommandField) {
        case DIMSE_C_ECHO_RQ:
          handleEcho(msg, presId);
          break;
        case DIMSE_C_STORE_RQ:
          handleStore(msg, presId);
          break;
        case DIMSE_C_FIND_RQ:
          handleFind(msg, presId);
          break;
        case DIMSE_C_MOVE_RQ:
        case DIMSE_C_GET_RQ:
          handleRetrieve(msg, presId);
          break;
        case DIMSE_C_CANCEL_RQ:
          break;  // a cancel that crossed our final response: nothing left to cancel
        default:
          spdlog::warn("association from {}@{}: unsupported DIMSE command 0x{:04x}; aborting",
                       printable(peer_.aeTitle), peer_.address, static_cast<unsigned>(msg.CommandField));
          ASC_abortAssociation(assoc_);
          return;
      }
    } catch (const std::exception& e) {
      spdlog::error("association from {}@{}: {}; aborting", printable(peer_.aeTitle), peer_.address, e.what());
      ASC_abortAssociation(assoc_);
      return;
    }
  }
  ASC_abortAssociation(assoc_);
}

void Session::handleEcho(T_DIMSE_Message& msg, T_ASC_PresentationContextID presId) {
  OFCondition cond = DIMSE_sendEchoResponse(assoc_, presId, &msg.msg.CEchoRQ, status::kSuccess, nullptr);
  if (cond.bad()) broken_ = true;
}

bool Session::requestMatchesContext(T_ASC_PresentationContextID presId, const std::string& sopClassUid) const {
  T_ASC_PresentationContext pc;
  if (ASC_findAcceptedPresentationContext(assoc_->params, presId, &pc).bad()) return false;
  if (sopClassUid == pc.abstractSyntax) return true;
  spdlog::warn("association from {}@{}: SOP class {} sent on a context negotiated for {}; refused",
               printable(peer_.aeTitle), peer_.address, printable(sopClassUid), pc.abstractSyntax);
  return false;
}

InstanceProtector& Session::protector() {
  if (!protector_) protector_ = std::make_unique<InstanceProtector>(context_.keys, context_.config.cipher);
  return *protector_;
}

E_TransferSyntax Session::contextTransferSyntax(T_ASC_PresentationContextID presId) const {
  T_ASC_PresentationContext pc;
  if (ASC_findAcceptedPresentationContext(assoc_->params, presId, &pc).bad()) return EXS_Unknown;
  return DcmXfer(pc.acceptedTransferSyntax).getXfer();
}

void Session::handleStore(T_DIMSE_Message& msg, T_ASC_PresentationContextID presId) {
  T_DIMSE_C_StoreRQ& request = msg.msg.CStoreRQ;
  const auto started = std::chrono::steady_clock::now();
  // A modality's large native object is encrypted while it arrives (gateway/large_object_store.h).
  const bool streams =
      peer_.isModality && streamsLargeObjects(context_.config, contextTransferSyntax(presId), protector());
  // A large object retrieved from the PACS keeps its Pixel Data in a file (gateway/large_object_retrieve.h).
  const bool spools = peer_.isUpstream && !peer_.isModality &&
                      streamsRetrievedObjects(context_.config, contextTransferSyntax(presId));
  StoreDataSet incoming;
  std::shared_ptr<SpooledPixelData> spooled;
  if (streams) {
    incoming = receiveStoreDataSet(assoc_, presId, contextTransferSyntax(presId), largeObjectSettings(context_.config),
                                   memory_, protector());
  } else if (spools) {
    RetrievedDataSet retrieved = receiveRetrievedDataSet(assoc_, presId, contextTransferSyntax(presId),
                                                         largeObjectSettings(context_.config), memory_);
    incoming.received = std::move(retrieved.received);
    spooled = std::move(retrieved.spooled);
  } else {
    incoming.received = receiveDataSetWithinLimits(assoc_, presId,
                                                   static_cast<int>(context_.config.gateway.dimseTimeoutSeconds),
                                                   std::uint64_t{context_.config.limits.maxObjectMb} << 20, memory_);
  }
  ReceivedDataSet& received = incoming.received;
  std::unique_ptr<DcmDataset> dataset = std::move(received.dataset);
  if (incoming.cryptError) {
    tally_.refused();
    spdlog::warn("C-STORE {} from {} refused ({}): {}", printable(request.AffectedSOPInstanceUID),
                 printable(peer_.aeTitle), codecs::toString(*incoming.cryptError), received.reason);
    sendStoreResponse(presId, request, statusForCryptError(*incoming.cryptError),
                      codecs::toString(*incoming.cryptError));
    return;
  }
  if (received.outcome != ReceivedDataSet::Outcome::Received) {
    tally_.refused();
    spdlog::warn("C-STORE {} from {}@{}: data set refused: {}", printable(request.AffectedSOPInstanceUID),
                 printable(peer_.aeTitle), peer_.address, received.reason);
    const char* reason = received.outcome == ReceivedDataSet::Outcome::TooLarge   ? "too_large"
                         : received.outcome == ReceivedDataSet::Outcome::NoMemory ? "no_memory"
                         : received.outcome == ReceivedDataSet::Outcome::Malformed ? "malformed"
                                                                                    : nullptr;
    if (reason != nullptr) metrics::increment("pacsgw_data_sets_refused_total", {{"reason", reason}});
    const bool subOperation = peer_.isUpstream && !peer_.isModality;
    switch (received.outcome) {
      case ReceivedDataSet::Outcome::TooLarge:
      case ReceivedDataSet::Outcome::NoMemory:
        if (subOperation) return refuseSubOperation(request, presId, status::kOutOfResources, received.reason);
        sendStoreResponse(presId, request, status::kOutOfResources, received.reason);
        return;
      case ReceivedDataSet::Outcome::Malformed:
        if (subOperation) return refuseSubOperation(request, presId, status::kCannotUnderstand, received.reason);
        sendStoreResponse(presId, request, status::kCannotUnderstand, received.reason);
        return;
      default:  // the association itself is unusable
        if (received.outcome == ReceivedDataSet::Outcome::ProtocolError) ASC_abortAssociation(assoc_);
        broken_ = true;
        return;
    }
  }
  if (!requestMatchesContext(presId, request.AffectedSOPClassUID)) {
    tally_.refused();
    sendStoreResponse(presId, request, status::kSopClassNotSupported, "SOP class not negotiated on this context");
    return;
  }
  if (peer_.isUpstream && !peer_.isModality) {
    spdlog::trace("sub-operation {} received in {:.2f} ms", printable(request.AffectedSOPInstanceUID),
                  std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count());
    handleSubOperation(request, presId, std::move(dataset), std::move(received.reservation), std::move(spooled));
    return;
  }
  StoreRequest store{request.AffectedSOPClassUID, request.AffectedSOPInstanceUID, contextTransferSyntax(presId)};
  store.encryptedOnArrival = incoming.sealed;
  store.receivedBytes = received.bytes;
  const bool fromRelayPeer = peer_.relayPeer != nullptr && !peer_.isModality && context_.relay != nullptr;
  const StoreAnswer answer = fromRelayPeer ? storeForwarding().storeFromRelayPeer(store, *dataset, *peer_.relayPeer)
                                           : storeForwarding().storeFromModality(store, *dataset);
  sendStoreResponse(presId, request, answer.status, answer.errorComment);
}

StoreForwarding& Session::storeForwarding() {
  if (!storeForwarding_) {
    if (context_.spool != nullptr) {
      upstream_ = std::make_unique<SpoolUpstream>(*context_.spool, peer_.aeTitle);
    } else {
      // One upstream association per inbound association, proposing what the sender negotiated.
      upstream_ = std::make_unique<DirectUpstream>(context_.config, context_.timeouts, [this] {
        return upstreamContextsFor(assoc_->params, protector().decodesCompressed());
      });
    }
    storeForwarding_ = std::make_unique<StoreForwarding>(
        StoreSender{peer_.aeTitle, peer_.address, peer_.isModality},
        [this]() -> InstanceProtector& { return protector(); }, *upstream_, tally_, context_.config.upstream.aeTitle,
        context_.relay, context_.keys);
  }
  return *storeForwarding_;
}

void Session::sendStoreResponse(T_ASC_PresentationContextID presId, const T_DIMSE_C_StoreRQ& request,
                                std::uint16_t statusCode, const std::string& comment) {
  T_DIMSE_C_StoreRSP response{};
  response.MessageIDBeingRespondedTo = request.MessageID;
  response.DimseStatus = statusCode;
  response.DataSetType = DIMSE_DATASET_NULL;
  OFStandard::strlcpy(response.AffectedSOPClassUID, request.AffectedSOPClassUID, sizeof(response.AffectedSOPClassUID));
  OFStandard::strlcpy(response.AffectedSOPInstanceUID, request.AffectedSOPInstanceUID,
                      sizeof(response.AffectedSOPInstanceUID));
  response.opts = O_STORE_AFFECTEDSOPCLASSUID | O_STORE_AFFECTEDSOPINSTANCEUID;
  DcmDataset detail;
  DcmDataset* detailPtr = nullptr;
  if (statusCode != status::kSuccess && !comment.empty()) {
    // Error Comment is LO: at most 64 characters.
    detail.putAndInsertString(DCM_ErrorComment, printable(comment).c_str());
    detailPtr = &detail;
  }
  metrics::increment("pacsgw_instances_total", {{"path", peer_.isModality ? "store" : "retrieve"},
                                               {"outcome", !status::isStored(statusCode) ? "refused" : peer_.isModality ? "stored" : "received"},
                                               {"status", statusLabel(statusCode)}});
  OFCondition cond = DIMSE_sendStoreResponse(assoc_, presId, &request, &response, detailPtr);
  if (cond.bad()) {
    spdlog::warn("cannot send C-STORE response to {}: {}", peer_.aeTitle, cond.text());
    broken_ = true;
  }
}


// ---- query / retrieve ----------------------------------------------------------------------

ReceivedDataSet Session::receiveIdentifier(T_ASC_PresentationContextID presId) {
  return receiveDataSetWithinLimits(assoc_, presId, static_cast<int>(context_.config.gateway.dimseTimeoutSeconds),
                                    kMaxIdentifierBytes, memory_);
}

bool Session::identifierBreaksAssociation(const ReceivedDataSet& received) {
  using Outcome = ReceivedDataSet::Outcome;
  if (received.outcome != Outcome::NetworkError && received.outcome != Outcome::ProtocolError) return false;
  spdlog::warn("{}@{}: identifier not received: {}", printable(peer_.aeTitle), peer_.address, received.reason);
  if (received.outcome == Outcome::ProtocolError) ASC_abortAssociation(assoc_);
  broken_ = true;
  return true;
}

std::uint16_t Session::identifierRefusalStatus(const ReceivedDataSet& received, std::uint16_t outOfResources) {
  const bool tooBig = received.outcome == ReceivedDataSet::Outcome::TooLarge ||
                      received.outcome == ReceivedDataSet::Outcome::NoMemory;
  metrics::increment("pacsgw_data_sets_refused_total", {{"reason", tooBig ? "too_large" : "malformed"}});
  return tooBig ? outOfResources : status::kCannotUnderstand;
}

void Session::handleFind(T_DIMSE_Message& msg, T_ASC_PresentationContextID presId) {
  T_DIMSE_C_FindRQ& request = msg.msg.CFindRQ;
  ReceivedDataSet received = receiveIdentifier(presId);
  std::unique_ptr<DcmDataset> identifier = std::move(received.dataset);
  AssociationFindRequester requester(assoc_, presId, request);
  auto reply = [&](std::uint16_t statusCode) {
    if (!requester.sendFinal(statusCode)) broken_ = true;
  };
  if (received.outcome != ReceivedDataSet::Outcome::Received) {
    if (identifierBreaksAssociation(received)) return;
    spdlog::warn("C-FIND from {}@{}: identifier refused: {}", printable(peer_.aeTitle), peer_.address, received.reason);
    reply(identifierRefusalStatus(received, status::kOutOfResources));
    return;
  }
  if (!requestMatchesContext(presId, request.AffectedSOPClassUID)) {
    reply(status::kSopClassNotSupported);
    return;
  }
  const QueryDecision decision = authoriseQuery(peer_);
  if (!decision.allowed) {
    spdlog::warn("audit: C-FIND from {}@{} refused: {}", printable(peer_.aeTitle), peer_.address, decision.reason);
    audit::query({peer_.aeTitle, peer_.address}, "C-FIND", false, decision.reason);
    reply(decision.status);
    return;
  }
  std::unique_ptr<PeerAssociation> pacs;
  try {
    pacs = openQueryAssociation(context_, request.AffectedSOPClassUID);
  } catch (const PeerUnavailable& e) {
    spdlog::error("C-FIND from {}: upstream PACS unavailable: {}", peer_.aeTitle, e.what());
    reply(status::kOutOfResources);
    return;
  }
  {
    OFString level;
    identifier->findAndGetOFString(DCM_QueryRetrieveLevel, level);
    audit::query({peer_.aeTitle, peer_.address}, level.c_str(), true, "");
  }
  const T_ASC_PresentationContextID pacsPresId =
      ASC_findAcceptedPresentationContextID(pacs->raw(), request.AffectedSOPClassUID);
  if (pacsPresId == 0) {
    reply(status::kSopClassNotSupported);
    return;
  }
  AssociationFindUpstream upstream(*pacs, pacsPresId, request);
  const FindRelayResult result = relayFind(*identifier, requester, upstream);
  switch (result.end) {
    case FindRelayResult::End::RequesterBroken:
      broken_ = true;
      return;
    case FindRelayResult::End::PacsFailed:
      spdlog::error("C-FIND from {}: PACS query failed: {}", peer_.aeTitle, result.error);
      break;
    case FindRelayResult::End::Answered:
      spdlog::info("C-FIND from {}: {} matches relayed, final {}", peer_.aeTitle, result.matches,
                   describeStatus(result.status));
      break;
  }
  reply(result.status);
}

void Session::handleRetrieve(T_DIMSE_Message& msg, T_ASC_PresentationContextID presId) {
  const bool isGet = msg.CommandField == DIMSE_C_GET_RQ;
  ReceivedDataSet received = receiveIdentifier(presId);
  if (received.outcome != ReceivedDataSet::Outcome::Received) {
    if (identifierBreaksAssociation(received)) return;
    spdlog::warn("{} from {}@{}: identifier refused: {}", isGet ? "C-GET" : "C-MOVE", printable(peer_.aeTitle),
                 peer_.address, received.reason);
    if (!refuseRetrieve(assoc_, presId, msg, identifierRefusalStatus(received, status::kUnableToCalculateMatches)))
      broken_ = true;
    return;
  }
  const std::string sopClass = isGet ? msg.msg.CGetRQ.AffectedSOPClassUID : msg.msg.CMoveRQ.AffectedSOPClassUID;
  if (!requestMatchesContext(presId, sopClass)) {
    if (!refuseRetrieve(assoc_, presId, msg, status::kSopClassNotSupported)) broken_ = true;
    return;
  }
  AssociationRetrieveRequester requester(assoc_, presId, msg, context_.timeouts.dimseSeconds);
  DimseRetrieveConnections connections(context_);
  RetrieveProxy proxy({context_.config, context_.policy, context_.relay, context_.retrieves, connections}, peer_,
                      requester);
  if (!proxy.serve(retrieveCallOf(msg), *received.dataset)) broken_ = true;
}

// ---- the PACS's sub-operations ----------------------------------------------------------------

namespace {

// The PACS's Move Originator Message ID, when it names the gateway as the move originator.
std::optional<std::uint16_t> moveOriginatorOf(const T_DIMSE_C_StoreRQ& request, const std::string& gatewayAeTitle) {
  if ((request.opts & O_STORE_MOVEORIGINATORID) != 0 && gatewayAeTitle == request.MoveOriginatorApplicationEntityTitle) {
    return request.MoveOriginatorID;
  }
  return std::nullopt;
}

}  // namespace

SubOperationIntake& Session::intake() {
  if (!intake_) {
    verifier_ = std::make_unique<KeystoreVerifier>(context_, [this]() -> InstanceProtector& { return protector(); });
    // Answer the PACS well within its own timeout, even when the destination is slow.
    intake_ = std::make_unique<SubOperationIntake>(context_.retrieves, *verifier_,
                                                   std::chrono::seconds(std::max(1, context_.timeouts.dimseSeconds / 2)),
                                                   peer_.aeTitle, peer_.address);
  }
  return *intake_;
}

void Session::refuseSubOperation(T_DIMSE_C_StoreRQ& request, T_ASC_PresentationContextID presId,
                                 std::uint16_t statusCode, const std::string& reason) {
  const IntakeAnswer answer = intake().refuse(request.AffectedSOPInstanceUID,
                                              moveOriginatorOf(request, context_.config.gateway.aeTitle), statusCode,
                                              reason);
  sendStoreResponse(presId, request, answer.status, answer.errorComment);
}

void Session::handleSubOperation(T_DIMSE_C_StoreRQ& request, T_ASC_PresentationContextID presId,
                                 std::unique_ptr<DcmDataset> dataset, MemoryReservation memory,
                                 std::shared_ptr<SpooledPixelData> spooled) {
  SubOperation operation;
  operation.sopClass = request.AffectedSOPClassUID;
  operation.sopInstance = request.AffectedSOPInstanceUID;
  operation.originatorMessageId = moveOriginatorOf(request, context_.config.gateway.aeTitle);
  operation.dataset = std::move(dataset);
  operation.xfer = contextTransferSyntax(presId);
  operation.memory = std::move(memory);
  operation.spooled = std::move(spooled);
  const IntakeAnswer answer = intake().accept(std::move(operation));
  sendStoreResponse(presId, request, answer.status, answer.errorComment);
}

}  // namespace pacsgw::gateway
