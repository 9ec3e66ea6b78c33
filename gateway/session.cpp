#include "gateway/session.h"
#include "gateway/peer_endpoints.h"

#include "gateway/audit/audit_trail.h"

#include "gateway/dataset_receiver.h"
#include "gateway/gateway_metrics.h"
#include "gateway/instance_protector.h"
#include "gateway/large_object_store.h"
#include "gateway/net_util.h"
#include "gateway/sub_operation_intake.h"
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

std::string stringOf(DcmDataset& dataset, const DcmTagKey& tag) {
  OFString value;
  dataset.findAndGetOFString(tag, value);
  return value.c_str();
}

std::uint16_t statusForCryptError(codecs::CryptErrorKind kind) {
  switch (kind) {
    case codecs::CryptErrorKind::NoPixelData:
    case codecs::CryptErrorKind::MalformedObject:
    case codecs::CryptErrorKind::AlreadyEncrypted:
    case codecs::CryptErrorKind::MalformedKeyReference:
      return status::kCannotUnderstand;
    default:
      return status::kProcessingFailure;
  }
}

}  // namespace

Session::Session(GatewayContext& context, T_ASC_Association* assoc, PeerIdentity peer)
    : context_(context),
      assoc_(assoc),
      peer_(std::move(peer)),
      memory_(context.memory, std::uint64_t{context.config.limits.maxAssociationMb} << 20) {
  // The PACS's retrieve sub-operations wait for room in the total (earlier instances free it as they
  // reach their destination) instead of failing at once: a slow destination slows the PACS down. The
  // wait stays well inside the PACS's own C-STORE timeout (often 10 s).
  if (peer_.isUpstream && !peer_.isModality) {
    memory_.waitForTotalUpTo(std::chrono::seconds(std::clamp(context.timeouts.dimseSeconds / 4, 1, 5)));
  }
}

Session::~Session() {
  for (const auto& [studyUid, tally] : storedStudies_)
    audit::instancesStored({peer_.aeTitle, peer_.address}, studyUid, tally.patientId, tally.stored, tally.failed);
  if (stats_.stored + stats_.failed > 0) {
    spdlog::info("association from {}@{} ended: {} instances forwarded, {} refused, {:.1f} MB", peer_.aeTitle,
                 peer_.address, stats_.stored, stats_.failed, static_cast<double>(stats_.bytes) / 1e6);
  }
}

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
  const bool streams = peer_.isModality && streamsLargeObjects(context_.config, context_.spool != nullptr,
                                                               contextTransferSyntax(presId), protector());
  StoreDataSet incoming;
  if (streams) {
    incoming = receiveStoreDataSet(assoc_, presId, contextTransferSyntax(presId), largeObjectSettings(context_.config),
                                   memory_, protector());
  } else {
    incoming.received = receiveDataSetWithinLimits(assoc_, presId,
                                                   static_cast<int>(context_.config.gateway.dimseTimeoutSeconds),
                                                   std::uint64_t{context_.config.limits.maxObjectMb} << 20, memory_);
  }
  ReceivedDataSet& received = incoming.received;
  std::unique_ptr<DcmDataset> dataset = std::move(received.dataset);
  if (incoming.cryptError) {
    ++stats_.failed;
    spdlog::warn("C-STORE {} from {} refused ({}): {}", printable(request.AffectedSOPInstanceUID),
                 printable(peer_.aeTitle), codecs::toString(*incoming.cryptError), received.reason);
    sendStoreResponse(presId, request, statusForCryptError(*incoming.cryptError),
                      codecs::toString(*incoming.cryptError));
    return;
  }
  if (received.outcome != ReceivedDataSet::Outcome::Received) {
    ++stats_.failed;
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
    ++stats_.failed;
    sendStoreResponse(presId, request, status::kSopClassNotSupported, "SOP class not negotiated on this context");
    return;
  }
  if (peer_.isUpstream && !peer_.isModality) {
    spdlog::trace("sub-operation {} received in {:.2f} ms", printable(request.AffectedSOPInstanceUID),
                  std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count());
    handleSubOperation(request, presId, std::move(dataset), std::move(received.reservation));
    return;
  }
  if (peer_.relayPeer != nullptr && !peer_.isModality && context_.relay != nullptr) {
    handleRelayedStore(request, presId, std::move(dataset));
    return;
  }
  if (refuseCapsuleFromNonPeer(request, presId, *dataset)) return;
  if (!peer_.isModality) {
    ++stats_.failed;
    spdlog::warn("audit: C-STORE from {}@{} refused: not a configured modality", peer_.aeTitle, peer_.address);
    sendStoreResponse(presId, request, status::kNotAuthorised, "not authorised to store");
    return;
  }
  const auto receivedAt = std::chrono::steady_clock::now();
  const E_TransferSyntax xfer = contextTransferSyntax(presId);
  const std::string sopClass = stringOf(*dataset, DCM_SOPClassUID);
  const std::string sopInstance = stringOf(*dataset, DCM_SOPInstanceUID);
  if (sopClass != request.AffectedSOPClassUID || sopInstance != request.AffectedSOPInstanceUID) {
    ++stats_.failed;
    spdlog::warn("C-STORE {} from {}: SOP Class / Instance UID in the data set do not match the request; refused",
                 request.AffectedSOPInstanceUID, peer_.aeTitle);
    sendStoreResponse(presId, request, status::kDataSetDoesNotMatchSopClass,
                      "SOP UIDs in data set differ from request");
    return;
  }
  ProtectResult protectedInstance;
  try {
    if (incoming.sealed) {
      protectedInstance.encrypted = true;  // while it arrived
      protectedInstance.transferSyntax = xfer;
      spdlog::info("C-STORE {} from {}: {:.1f} MB of Pixel Data encrypted as it arrived (large object)",
                   printable(sopInstance), printable(peer_.aeTitle), static_cast<double>(received.bytes) / 1e6);
    } else {
      protectedInstance = protector().protect(*dataset, xfer);
    }
  } catch (const codecs::CryptError& e) {
    ++stats_.failed;
    spdlog::warn("C-STORE {} from {} refused ({}): {}", sopInstance, peer_.aeTitle, codecs::toString(e.kind()),
                 e.what());
    sendStoreResponse(presId, request, statusForCryptError(e.kind()), codecs::toString(e.kind()));
    return;
  } catch (const std::exception& e) {
    ++stats_.failed;
    spdlog::error("C-STORE {} from {}: cannot encrypt: {}", sopInstance, peer_.aeTitle, e.what());
    sendStoreResponse(presId, request, status::kProcessingFailure, "gateway cannot encrypt this object");
    return;
  }
  if (!protectedInstance.encrypted) {
    spdlog::info("C-STORE {} from {}: no pixel data, forwarded unchanged", sopInstance, peer_.aeTitle);
  }
  const auto encryptedAt = std::chrono::steady_clock::now();
  StoreOutcome outcome =
      context_.spool != nullptr
          ? spoolInstance(*dataset, protectedInstance.transferSyntax, sopClass, sopInstance)
          : forwardToUpstream(*dataset, protectedInstance.transferSyntax, sopClass, sopInstance);
  const auto msSince = [](std::chrono::steady_clock::time_point from, std::chrono::steady_clock::time_point to) {
    return std::chrono::duration<double, std::milli>(to - from).count();
  };
  const auto forwardedAt = std::chrono::steady_clock::now();
  if (outcome.delivered && status::isStored(outcome.status)) {
    ++stats_.stored;
    tallyStudy(*dataset, true);
    stats_.bytes += dataset->getLength(xfer);
    spdlog::debug("C-STORE {} from {} -> {}: {} (receive {:.2f} ms, encrypt {:.2f} ms, forward {:.2f} ms)",
                  sopInstance, peer_.aeTitle, context_.config.upstream.aeTitle, describeStatus(outcome.status),
                  msSince(started, receivedAt), msSince(receivedAt, encryptedAt), msSince(encryptedAt, forwardedAt));
  } else {
    ++stats_.failed;
    tallyStudy(*dataset, false);
    spdlog::warn("C-STORE {} from {} -> {}: {} ({})", sopInstance, peer_.aeTitle, context_.config.upstream.aeTitle,
                 describeStatus(outcome.status), outcome.errorComment);
  }
  sendStoreResponse(presId, request, outcome.status, outcome.errorComment);
}

void Session::tallyStudy(DcmDataset& dataset, bool stored) {
  OFString study, patient;
  dataset.findAndGetOFString(DCM_StudyInstanceUID, study);
  dataset.findAndGetOFString(DCM_PatientID, patient);
  StudyTally& tally = storedStudies_[study.c_str()];
  tally.patientId = patient.c_str();
  ++(stored ? tally.stored : tally.failed);
}

StoreOutcome Session::forwardToUpstream(DcmDataset& dataset, E_TransferSyntax xfer, const std::string& sopClass,
                                        const std::string& sopInstance) {
  // One upstream association per inbound association, proposing what the modality negotiated.
  for (int attempt = 0; attempt < 2; ++attempt) {
    const bool reused = upstream_ && upstream_->usable();
    if (!reused) {
      upstream_.reset();
      std::vector<ProposedContext> contexts;
      std::set<std::pair<std::string, std::string>> seen;
      const int count = ASC_countPresentationContexts(assoc_->params);
      for (int i = 0; i < count; ++i) {
        T_ASC_PresentationContext pc;
        if (ASC_getPresentationContext(assoc_->params, i, &pc).bad()) continue;
        if (pc.resultReason != ASC_P_ACCEPTANCE) continue;
        if (std::string(pc.abstractSyntax) == UID_VerificationSOPClass) continue;
        const std::string ts = pc.acceptedTransferSyntax;
        if (!seen.insert({pc.abstractSyntax, ts}).second) continue;
        ProposedContext ctx{pc.abstractSyntax, {ts}};
        const bool native = isNativeTransferSyntax(DcmXfer(ts.c_str()).getXfer());
        if (native) {
          for (const char* alt : {UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax}) {
            if (ts != alt) ctx.transferSyntaxes.push_back(alt);
          }
        }
        contexts.push_back(ctx);
        // Compressed objects leave decoded when the backend needs pixel values: offer native too.
        if (!native && protector().decodesCompressed() && seen.insert({pc.abstractSyntax, "native"}).second &&
            contexts.size() < 128) {
          contexts.push_back(ProposedContext{pc.abstractSyntax, {UID_LittleEndianExplicitTransferSyntax,
                                                                 UID_LittleEndianImplicitTransferSyntax}});
        }
        if (contexts.size() == 128) break;
      }
      try {
        upstream_ = PeerAssociation::open(upstreamEndpoint(context_.config), context_.config.gateway.aeTitle,
                                          contexts, context_.timeouts, context_.config.gateway.maxPduBytes);
      } catch (const PeerUnavailable& e) {
        spdlog::error("upstream PACS unavailable: {}", e.what());
        metrics::increment("pacsgw_upstream_errors_total", {{"kind", "connect"}});
        StoreOutcome outcome;
        outcome.status = status::kOutOfResources;
        outcome.errorComment = "upstream PACS unavailable";
        return outcome;
      }
    }
    StoreOutcome outcome = upstream_->store(dataset, xfer, sopClass, sopInstance);
    countDelivery(Delivery::ToPacs, outcome, dataset, xfer);
    // A reused association may have been closed by the PACS while idle: retry once on a fresh one.
    if (outcome.delivered || !reused) {
      if (!outcome.delivered) {
        outcome.status = status::kOutOfResources;
      }
      return outcome;
    }
  }
  StoreOutcome failed;
  failed.status = status::kOutOfResources;
  failed.errorComment = "upstream PACS unavailable";
  return failed;
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

}  // namespace pacsgw::gateway
