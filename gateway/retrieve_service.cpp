// The retrieval path: C-FIND relayed to the PACS, C-MOVE / C-GET re-issued to the PACS with the
// gateway as destination, and the PACS's C-STORE sub-operations decrypted (per the destination's
// access) and delivered to the real destination.
#include "gateway/audit/audit_trail.h"
#include "gateway/dataset_receiver.h"
#include "gateway/find_relay_dimse.h"
#include "gateway/peer_endpoints.h"
#include "gateway/instance_protector.h"
#include "gateway/gateway_metrics.h"
#include "gateway/net_util.h"
#include "gateway/passthrough_policy.h"
#include "gateway/relay/relay_service.h"
#include "gateway/retrieve_outcome.h"
#include "gateway/session.h"
#include "gateway/sub_operation_intake.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <functional>
#include <chrono>
#include <thread>

namespace pacsgw::gateway {

namespace {

// C-FIND / C-MOVE / C-GET identifiers are keys and UID lists: a few KiB, a long UID list some hundred.
// A larger one is refused while it is read, before it is held whole.
constexpr std::uint64_t kMaxIdentifierBytes = std::uint64_t{1} << 20;

std::vector<std::string> queryTransferSyntaxes() {
  return {UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax};
}

// The C-MOVE information model matching a C-GET one (the PACS is always asked to move to us).
std::string moveModelFor(const std::string& sopClass) {
  if (sopClass == UID_GETPatientRootQueryRetrieveInformationModel) return UID_MOVEPatientRootQueryRetrieveInformationModel;
  if (sopClass == UID_GETStudyRootQueryRetrieveInformationModel) return UID_MOVEStudyRootQueryRetrieveInformationModel;
  return sopClass;
}

std::unique_ptr<PeerAssociation> openUpstream(GatewayContext& ctx, const std::string& sopClass) {
  return PeerAssociation::open(upstreamEndpoint(ctx.config), ctx.config.gateway.aeTitle,
                               {ProposedContext{sopClass, queryTransferSyntaxes()}}, ctx.timeouts,
                               ctx.config.gateway.maxPduBytes);
}

std::vector<std::string> splitValues(const std::string& all) {
  std::vector<std::string> out;
  for (std::size_t start = 0; start <= all.size();) {
    std::size_t end = all.find('\\', start);
    if (end == std::string::npos) end = all.size();
    if (end > start) out.push_back(all.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// Values of a retrieve identifier's key, ignoring empty values and wildcard patterns (which do not
// restrict a retrieve).
std::vector<std::string> uniqueKeyValues(DcmDataset& identifier, const DcmTagKey& tag) {
  OFString all;
  if (identifier.findAndGetOFStringArray(tag, all).bad()) return {};
  std::vector<std::string> values = splitValues(all.c_str());
  for (const auto& v : values) {
    if (v.find_first_of("*?") != std::string::npos) return {};
  }
  return values;
}

// ---- C-MOVE / C-GET -----------------------------------------------------------------------

struct RetrieveRelay {
  bool isGet;
  T_ASC_Association* requester;
  T_ASC_PresentationContextID requesterPresId;
  T_DIMSE_Message* request;  // the requester's C-MOVE-RQ or C-GET-RQ
  T_ASC_Association* upstream;
  T_ASC_PresentationContextID upstreamPresId;
  RetrieveJob* job;
  bool broken = false;
  bool cancelRelayed = false;
};

std::uint16_t requestMessageId(const RetrieveRelay& r) {
  return r.isGet ? r.request->msg.CGetRQ.MessageID : r.request->msg.CMoveRQ.MessageID;
}

struct Counts {
  unsigned completed = 0, failed = 0, warning = 0;
};

// Fills the fields C-MOVE-RSP and C-GET-RSP share (DCMTK gives them identical layouts).
template <typename Response>
void fillRetrieveResponse(Response& rsp, std::uint16_t messageId, const char* sopClass, std::uint16_t statusCode,
                          unsigned remaining, const Counts& counts) {
  rsp.MessageIDBeingRespondedTo = messageId;
  OFStandard::strlcpy(rsp.AffectedSOPClassUID, sopClass, sizeof(rsp.AffectedSOPClassUID));
  rsp.DimseStatus = statusCode;
  rsp.NumberOfRemainingSubOperations = static_cast<DIC_US>(remaining);
  rsp.NumberOfCompletedSubOperations = static_cast<DIC_US>(counts.completed);
  rsp.NumberOfFailedSubOperations = static_cast<DIC_US>(counts.failed);
  rsp.NumberOfWarningSubOperations = static_cast<DIC_US>(counts.warning);
}

// Sends a C-MOVE-RSP or C-GET-RSP with our own sub-operation counts (the job's, unless given).
bool sendRetrieveResponse(RetrieveRelay& r, std::uint16_t statusCode, unsigned remaining, DcmDataset* identifiers,
                          const Counts* snapshot = nullptr) {
  Counts counts;
  if (snapshot != nullptr) {
    counts = *snapshot;
  } else {
    const DeliveredCounts now = r.job->counts();
    counts = {now.completed, now.failed, now.warning};
  }
  // Remaining is only meaningful while the operation runs, or in the response to a cancel.
  const bool withRemaining = statusCode == status::kPending || statusCode == status::kCancel;
  if (r.isGet) {
    T_DIMSE_C_GetRQ& rq = r.request->msg.CGetRQ;
    T_DIMSE_C_GetRSP rsp{};
    fillRetrieveResponse(rsp, rq.MessageID, rq.AffectedSOPClassUID, statusCode, remaining, counts);
    rsp.opts = O_GET_AFFECTEDSOPCLASSUID | O_GET_NUMBEROFCOMPLETEDSUBOPERATIONS | O_GET_NUMBEROFFAILEDSUBOPERATIONS |
               O_GET_NUMBEROFWARNINGSUBOPERATIONS | (withRemaining ? O_GET_NUMBEROFREMAININGSUBOPERATIONS : 0);
    return DIMSE_sendGetResponse(r.requester, r.requesterPresId, &rq, &rsp, identifiers, nullptr).good();
  }
  T_DIMSE_C_MoveRQ& rq = r.request->msg.CMoveRQ;
  T_DIMSE_C_MoveRSP rsp{};
  fillRetrieveResponse(rsp, rq.MessageID, rq.AffectedSOPClassUID, statusCode, remaining, counts);
  rsp.opts = O_MOVE_AFFECTEDSOPCLASSUID | O_MOVE_NUMBEROFCOMPLETEDSUBOPERATIONS | O_MOVE_NUMBEROFFAILEDSUBOPERATIONS |
             O_MOVE_NUMBEROFWARNINGSUBOPERATIONS | (withRemaining ? O_MOVE_NUMBEROFREMAININGSUBOPERATIONS : 0);
  return DIMSE_sendMoveResponse(r.requester, r.requesterPresId, &rq, &rsp, identifiers, nullptr).good();
}

// Called by DCMTK for every pending C-MOVE-RSP from the PACS: relay progress and watch for cancel.
void relayMoveProgress(void* data, T_DIMSE_C_MoveRQ*, int, T_DIMSE_C_MoveRSP* response) {
  auto* r = static_cast<RetrieveRelay*>(data);
  if (r->broken) return;
  // C-GET deliveries use the requester's association from other threads: take turns with them.
  std::optional<RetrieveJob::ChannelLock> io;
  if (r->isGet) io.emplace(r->job->channel());
  // A cancel may also have been seen by the C-GET delivery thread (inside a C-STORE exchange).
  if (!r->cancelRelayed && r->job->requesterBroken()) {
    // The requester's association failed mid-exchange: nothing more can reach it, so stop the PACS.
    // Not a cancel: the requester never asked for one.
    r->cancelRelayed = true;
    r->broken = true;
    DIMSE_sendCancelRequest(r->upstream, r->upstreamPresId, r->job->upstreamMessageId());
    spdlog::warn("retrieve {}: the association to {} failed; PACS told to stop", r->job->upstreamMessageId(),
                 r->job->request().requesterAeTitle);
    return;
  }
  if (!r->cancelRelayed &&
      (r->job->cancelled() ||
       DIMSE_checkForCancelRQ(r->requester, r->requesterPresId, requestMessageId(*r)).good())) {
    r->job->cancel();
    r->cancelRelayed = true;
    DIMSE_sendCancelRequest(r->upstream, r->upstreamPresId, r->job->upstreamMessageId());
    spdlog::info("retrieve {} cancelled by {}; cancel relayed to the PACS", r->job->upstreamMessageId(),
                 r->job->request().requesterAeTitle);
  }
  if (status::isPending(response->DimseStatus)) {
    const RetrieveJob::Progress progress =
        r->job->noteProgress(response->NumberOfRemainingSubOperations, response->NumberOfCompletedSubOperations,
                             response->NumberOfFailedSubOperations, response->NumberOfWarningSubOperations);
    const Counts counts{progress.completed, progress.failed, progress.warning};
    if (!sendRetrieveResponse(*r, status::kPending, progress.remaining, nullptr, &counts)) r->broken = true;
  }
}

// The C-FIND model to enumerate what a C-MOVE model retrieves.
std::string findModelFor(const std::string& moveModel) {
  if (moveModel == UID_MOVEPatientRootQueryRetrieveInformationModel) return UID_FINDPatientRootQueryRetrieveInformationModel;
  return UID_FINDStudyRootQueryRetrieveInformationModel;
}

void collectSopInstanceUid(void* data, T_DIMSE_C_FindRQ*, int, T_DIMSE_C_FindRSP*, DcmDataset* identifiers) {
  OFString uid;
  if (identifiers != nullptr && identifiers->findAndGetOFString(DCM_SOPInstanceUID, uid).good() && !uid.empty()) {
    static_cast<std::vector<std::string>*>(data)->push_back(uid.c_str());
  }
}

// SOP Instance UIDs of every instance the retrieve identifier names, asked of the PACS at IMAGE level.
std::vector<std::string> instancesOf(GatewayContext& ctx, const std::string& moveModel, DcmDataset& identifier) {
  std::vector<std::string> uids;
  const std::string model = findModelFor(moveModel);
  std::unique_ptr<PeerAssociation> upstream = openUpstream(ctx, model);
  DcmDataset query;
  query.putAndInsertString(DCM_QueryRetrieveLevel, "IMAGE");
  for (const DcmTagKey& key : {DCM_PatientID, DCM_StudyInstanceUID, DCM_SeriesInstanceUID, DCM_SOPInstanceUID}) {
    OFString value;
    identifier.findAndGetOFStringArray(key, value);
    query.putAndInsertString(key, value.c_str());
  }
  T_DIMSE_C_FindRQ request{};
  request.MessageID = upstream->nextMessageId();
  OFStandard::strlcpy(request.AffectedSOPClassUID, model.c_str(), sizeof(request.AffectedSOPClassUID));
  request.Priority = DIMSE_PRIORITY_MEDIUM;
  request.DataSetType = DIMSE_DATASET_PRESENT;
  T_DIMSE_C_FindRSP response{};
  DcmDataset* detail = nullptr;
  int count = 0;
  OFCondition cond = DIMSE_findUser(upstream->raw(), ASC_findAcceptedPresentationContextID(upstream->raw(), model.c_str()),
                                    &request, &query, count, collectSopInstanceUid, &uids, DIMSE_NONBLOCKING,
                                    upstream->dimseTimeout(), &response, &detail);
  delete detail;
  if (cond.bad() || response.DimseStatus != status::kSuccess) uids.clear();
  return uids;
}

StoreOutcome deliver(GatewayContext& context, RetrieveJob& job, DcmDataset& dataset, E_TransferSyntax xfer,
                     Transcoding transcoding, const std::string& sopClass, const std::string& sopInstance) {
  RetrieveJob::ChannelLock channel = job.channel();
  if (channel->requester != nullptr) {
    // C-GET: the requester's own association, where it plays the Storage SCP.
    StoreOutcome outcome;
    if (job.requesterBroken()) {
      outcome.errorComment = "an earlier C-STORE to the requester failed";
      return outcome;
    }
    const DeliveryContext pc = chooseDeliveryContext(channel->requester, sopClass, xfer, transcoding);
    if (pc.id == 0) {
      // Fails this sub-operation alone: nothing was sent, the association is as good as before.
      const bool classAccepted = !acceptedContexts(channel->requester, sopClass).empty();
      outcome.status = classAccepted ? status::kNoAcceptableTransferSyntax : status::kSopClassNotSupported;
      outcome.errorComment = classAccepted ? std::string("requester accepted no transfer syntax this object (") +
                                                 DcmXfer(xfer).getXferName() + ") can be converted to"
                                           : "requester negotiated no storage context for this SOP class";
      return outcome;
    }
    std::string why;
    if (!transcode(dataset, xfer, pc.xfer, why)) {
      outcome.status = status::kNoAcceptableTransferSyntax;
      outcome.errorComment = "cannot convert for the requester: " + why;
      return outcome;
    }
    T_DIMSE_C_StoreRQ request{};
    request.MessageID = ++channel->nextStoreMessageId;
    OFStandard::strlcpy(request.AffectedSOPClassUID, sopClass.c_str(), sizeof(request.AffectedSOPClassUID));
    OFStandard::strlcpy(request.AffectedSOPInstanceUID, sopInstance.c_str(), sizeof(request.AffectedSOPInstanceUID));
    request.DataSetType = DIMSE_DATASET_PRESENT;
    request.Priority = DIMSE_PRIORITY_MEDIUM;
    T_DIMSE_C_StoreRSP response{};
    DcmDataset* detail = nullptr;
    T_DIMSE_DetectedCancelParameters cancel{};
    OFCondition cond = DIMSE_storeUser(channel->requester, pc.id, &request, nullptr, &dataset, nullptr, nullptr,
                                       DIMSE_NONBLOCKING, context.timeouts.dimseSeconds, &response, &detail, &cancel);
    delete detail;
    if (cancel.cancelEncountered) job.cancel();  // honoured at the next progress relay
    if (cond.bad()) {
      // A late response would now be read as the answer to the next request: stop using the
      // association (the PACS is told to stop too). This is not a cancel by the requester.
      job.markRequesterBroken();
      outcome.errorComment = std::string("C-STORE to requester failed: ") + cond.text();
      return outcome;
    }
    outcome.delivered = true;
    outcome.status = response.DimseStatus;
    return outcome;
  }
  const RetrieveRequest& request = job.request();
  if (!request.destination) return StoreOutcome{};
  // C-MOVE: an association to the destination workstation, re-opened when a new kind of object
  // needs a presentation context it does not have yet.
  // Propose what this instance can go out in: its stored syntax and, when the gateway can convert
  // it, uncompressed syntaxes in a context of their own.
  bool added = false;
  for (auto& syntaxes : proposalsFor(xfer, transcoding)) {
    const bool known = std::any_of(channel->proposed.begin(), channel->proposed.end(),
                                   [&](const ProposedContext& c) {
                                     return c.abstractSyntax == sopClass && c.transferSyntaxes == syntaxes;
                                   });
    if (!known && channel->proposed.size() < 128) {
      channel->proposed.push_back(ProposedContext{sopClass, std::move(syntaxes)});
      added = true;
    }
  }
  if (added) channel->destination.reset();
  MoveOriginator originator{request.requesterAeTitle, request.requesterMessageId};
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!channel->destination || !channel->destination->usable()) {
      if (channel->destinationDown) {  // one unreachable destination costs one timeout, not one per instance
        StoreOutcome outcome;
        outcome.status = status::kUnableToPerformSubOperations;
        outcome.errorComment = "destination " + request.destination->aeTitle + " unreachable";
        return outcome;
      }
      try {
        channel->destination = PeerAssociation::open(*request.destination, context.config.gateway.aeTitle,
                                                     channel->proposed, context.timeouts,
                                                     context.config.gateway.maxPduBytes);
      } catch (const NoAcceptedContext& e) {
        // The destination is up; it just takes none of the kinds of objects proposed so far.
        StoreOutcome outcome;
        outcome.status = status::kNoAcceptableTransferSyntax;
        outcome.errorComment = e.what();
        return outcome;
      } catch (const PeerUnavailable& e) {
        channel->destinationDown = true;
        StoreOutcome outcome;
        outcome.status = status::kUnableToPerformSubOperations;
        outcome.errorComment = e.what();
        return outcome;
      }
    }
    StoreOutcome outcome =
        channel->destination->store(dataset, xfer, sopClass, sopInstance, &originator, transcoding);
    // Only a broken association is worth a second try; a refusal would just repeat.
    if (outcome.delivered || channel->destination->usable() || attempt == 1) return outcome;
  }
  return StoreOutcome{};
}

// The job's delivery thread: sends verified instances to the destination in arrival order.
void deliveryLoop(GatewayContext& context, RetrieveJob& job) {
  for (;;) {
    PendingDelivery item;
    if (!job.nextDelivery(item)) return;
    if (job.cancelled()) {
      job.discard();  // cancelled: what is still queued stays "remaining"
      continue;
    }
    StoreOutcome outcome;
    try {
      outcome = deliver(context, job, *item.dataset, item.xfer, item.transcoding, item.sopClass, item.sopInstance);
      countDelivery(Delivery::ToWorkstation, outcome, *item.dataset, item.xfer);
    } catch (const std::exception& e) {
      outcome = StoreOutcome{};
      outcome.errorComment = e.what();
    }
    try {
      if (!(outcome.delivered && status::isStored(outcome.status))) {
        spdlog::warn("retrieve {}: instance {} not accepted by {}: {} ({})", job.upstreamMessageId(),
                     printable(item.sopInstance), job.request().destinationAeTitle(), describeStatus(outcome.status),
                     outcome.errorComment);
      } else {
        spdlog::debug("retrieve {}: instance {} delivered to {} ({} access)", job.upstreamMessageId(),
                      printable(item.sopInstance), job.request().destinationAeTitle(),
                      config::toString(job.request().access));
      }
      job.record(item.sopInstance, outcome);
    } catch (const std::exception& e) {
      spdlog::error("retrieve {}: cannot record an outcome: {}", job.upstreamMessageId(), e.what());
      job.discard();
    }
  }
}

}  // namespace

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
  if (peer_.workstation == nullptr || peer_.workstation->access == config::Access::Deny) {
    spdlog::warn("audit: C-FIND from {}@{} refused: not an authorised workstation", printable(peer_.aeTitle),
                 peer_.address);
    audit::query({peer_.aeTitle, peer_.address}, "C-FIND", false, "not an authorised workstation");
    reply(status::kNotAuthorised);
    return;
  }
  std::unique_ptr<PeerAssociation> pacs;
  try {
    pacs = openUpstream(context_, request.AffectedSOPClassUID);
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
  const char* verb = isGet ? "C-GET" : "C-MOVE";
  ReceivedDataSet received = receiveIdentifier(presId);
  std::unique_ptr<DcmDataset> identifier = std::move(received.dataset);

  RetrieveRequest request;
  request.requesterAeTitle = peer_.aeTitle;
  request.requesterMessageId = isGet ? msg.msg.CGetRQ.MessageID : msg.msg.CMoveRQ.MessageID;
  RetrieveRelay relay{isGet, assoc_, presId, &msg, nullptr, 0, nullptr};
  auto refuse = [&](std::uint16_t statusCode) {
    const Counts none;
    if (!sendRetrieveResponse(relay, statusCode, 0, nullptr, &none)) broken_ = true;
  };
  if (received.outcome != ReceivedDataSet::Outcome::Received) {
    if (identifierBreaksAssociation(received)) return;
    spdlog::warn("{} from {}@{}: identifier refused: {}", verb, printable(peer_.aeTitle), peer_.address,
                 received.reason);
    refuse(identifierRefusalStatus(received, status::kUnableToCalculateMatches));
    return;
  }
  const std::string sopClass = isGet ? msg.msg.CGetRQ.AffectedSOPClassUID : msg.msg.CMoveRQ.AffectedSOPClassUID;
  if (!requestMatchesContext(presId, sopClass)) {
    refuse(status::kSopClassNotSupported);
    return;
  }
  if (peer_.workstation == nullptr || peer_.workstation->access == config::Access::Deny) {
    spdlog::warn("audit: {} from {}@{} refused: not an authorised workstation", verb, printable(peer_.aeTitle),
                 peer_.address);
    audit::securityAlert("AccessRefused", std::string(verb) + " by a workstation without access", {peer_.aeTitle, peer_.address}, "");
    refuse(status::kNotAuthorised);
    return;
  }
  if (isGet) {
    request.access = peer_.workstation->access;
  } else {
    const std::string destinationAe = msg.msg.CMoveRQ.MoveDestination;
    const config::Workstation* destination = context_.policy.workstationByAeTitle(destinationAe);
    const config::RelayPeer* relayPeer =
        destination == nullptr && context_.relay != nullptr ? context_.relay->peerByAeTitle(destinationAe) : nullptr;
    if (relayPeer != nullptr) {
      if (!context_.policy.mayMoveTo(*peer_.workstation, relayPeer->aeTitle)) {
        spdlog::warn("audit: C-MOVE from {}@{} refused: relay peer '{}' is not among its move_destinations",
                     printable(peer_.aeTitle), peer_.address, printable(destinationAe));
        audit::securityAlert("MoveDestinationRefused", "relay peer " + destinationAe +
                             " is not among the caller's move_destinations", {peer_.aeTitle, peer_.address}, "");
        refuse(status::kMoveDestinationUnknown);
        return;
      }
      // The peer gateway gets the ciphertext as the PACS holds it, plus a key capsule for it alone.
      request.access = config::Access::Ciphertext;
      request.relayPeer = relayPeer;
      request.destination = relayPeerEndpoint(context_.config, *relayPeer);
    } else if (destination == nullptr || destination->access == config::Access::Deny) {
      spdlog::warn("audit: C-MOVE from {}@{} refused: move destination '{}' is {}", printable(peer_.aeTitle),
                   peer_.address, printable(destinationAe), destination == nullptr ? "not configured" : "denied");
      audit::securityAlert("MoveDestinationRefused", "move destination " + destinationAe + " is " +
                           (destination == nullptr ? "not configured" : "denied"), {peer_.aeTitle, peer_.address}, "");
      refuse(status::kMoveDestinationUnknown);
      return;
    }
    // A caller may always move to itself; elsewhere only where its move_destinations allow.
    if (relayPeer == nullptr && !context_.policy.mayMoveTo(*peer_.workstation, destination->aeTitle)) {
      spdlog::warn("audit: C-MOVE from {}@{} refused: move destination '{}' is not among its move_destinations",
                   printable(peer_.aeTitle), peer_.address, printable(destinationAe));
      audit::securityAlert("MoveDestinationRefused", "move destination " + destinationAe +
                           " is not among the caller's move_destinations", {peer_.aeTitle, peer_.address}, "");
      refuse(status::kMoveDestinationUnknown);
      return;
    }
    // What the destination may see decides decryption: the images land there, not at the caller.
    if (relayPeer == nullptr) {
      request.access = destination->access;
      request.destination = workstationEndpoint(context_.config, *destination);
    }
  }
  request.patientIds = uniqueKeyValues(*identifier, DCM_PatientID);
  request.studyUids = uniqueKeyValues(*identifier, DCM_StudyInstanceUID);
  request.seriesUids = uniqueKeyValues(*identifier, DCM_SeriesInstanceUID);
  request.instanceUids = uniqueKeyValues(*identifier, DCM_SOPInstanceUID);

  std::unique_ptr<PeerAssociation> upstream;
  const std::string moveModel = moveModelFor(sopClass);
  try {
    upstream = openUpstream(context_, moveModel);
  } catch (const PeerUnavailable& e) {
    spdlog::error("{} from {}: upstream PACS unavailable: {}", verb, printable(peer_.aeTitle), e.what());
    refuse(status::kUnableToPerformSubOperations);
    return;
  }
  relay.upstream = upstream->raw();
  relay.upstreamPresId = ASC_findAcceptedPresentationContextID(upstream->raw(), moveModel.c_str());
  if (relay.upstreamPresId == 0) {
    refuse(status::kSopClassNotSupported);
    return;
  }
  auto job = std::make_shared<RetrieveJob>(std::move(request));
  relay.job = job.get();
  if (isGet) job->deliverToRequester(assoc_);
  // However this ends, the job must leave the registry, deliver what it accepted, and no delivery
  // may touch it afterwards.
  struct Closer {
    GatewayContext& context;
    RetrieveJob& job;
    ~Closer() {
      job.close(context.retrieves);
      job.stopDeliveries();
    }
  };
  job->startDeliveries([this, job] { deliveryLoop(context_, *job); });
  Closer closer{context_, *job};
  context_.retrieves.add(job);
  spdlog::info("audit: {} from {}@{} accepted: {} access, destination {}, PACS move id {}", verb,
               printable(peer_.aeTitle), peer_.address, config::toString(job->request().access),
               job->request().destinationAeTitle(), job->upstreamMessageId());

  T_DIMSE_C_MoveRQ forwarded{};
  forwarded.MessageID = job->upstreamMessageId();
  OFStandard::strlcpy(forwarded.AffectedSOPClassUID, moveModel.c_str(), sizeof(forwarded.AffectedSOPClassUID));
  forwarded.Priority = isGet ? msg.msg.CGetRQ.Priority : msg.msg.CMoveRQ.Priority;
  forwarded.DataSetType = DIMSE_DATASET_PRESENT;
  OFStandard::strlcpy(forwarded.MoveDestination, context_.config.gateway.aeTitle.c_str(), sizeof(forwarded.MoveDestination));
  // Pending responses are optional, so a large retrieve may stay silent for a while; wait longer than
  // for a single DIMSE message.
  const int responseTimeout = std::max(5 * upstream->dimseTimeout(), 300);
  T_DIMSE_C_MoveRSP finalResponse{};
  std::unique_ptr<DcmDataset> pacsFailedIds;
  auto moveOnce = [&](DcmDataset& query) {
    DcmDataset* statusDetail = nullptr;
    DcmDataset* failedList = nullptr;
    finalResponse = T_DIMSE_C_MoveRSP{};
    OFCondition c = DIMSE_moveUser(upstream->raw(), relay.upstreamPresId, &forwarded, &query, relayMoveProgress,
                                   &relay, DIMSE_NONBLOCKING, responseTimeout, nullptr, nullptr, nullptr,
                                   &finalResponse, &statusDetail, &failedList, OFFalse);
    delete statusDetail;
    pacsFailedIds.reset(failedList);
    if (c.bad()) {
      // Stop the PACS before dropping the association under it.
      DIMSE_sendCancelRequest(upstream->raw(), relay.upstreamPresId, forwarded.MessageID);
      upstream->markBroken();
    }
    return c;
  };
  OFCondition cond = moveOnce(*identifier);

  // Some PACS (Orthanc >= 1.6) abort the whole C-MOVE with a failure status as soon as one
  // sub-operation is answered with a failure. Ask again for the instances it never offered, so a
  // bad instance fails only its own sub-operation.
  for (unsigned failedBefore = 0; cond.good() && !job->cancelled() && !job->requesterBroken() &&
                                  status::isFailure(finalResponse.DimseStatus);) {
    std::vector<std::string> rest;
    // Only our own refusals make a PACS stop early; without a new one it stopped for its own reasons.
    const unsigned refusedNow = job->refusedByGatewayCount();
    if (refusedNow == failedBefore) break;
    failedBefore = refusedNow;
    try {
      for (const auto& uid : instancesOf(context_, moveModel, *identifier)) {
        if (!job->wasOffered(uid)) rest.push_back(uid);
      }
    } catch (const PeerUnavailable& e) {
      spdlog::warn("{} from {}: cannot list the remaining instances: {}", verb, printable(peer_.aeTitle), e.what());
    }
    if (rest.empty()) break;
    spdlog::info("{} from {}: PACS stopped after a failed sub-operation; asking again for {} instances", verb,
                 printable(peer_.aeTitle), rest.size());
    // UI values are limited to 64 KiB: ask in batches.
    constexpr std::size_t kBatch = 400;
    for (std::size_t first = 0; first < rest.size() && cond.good() && !job->cancelled(); first += kBatch) {
      std::string list;
      for (std::size_t i = first; i < std::min(rest.size(), first + kBatch); ++i) list += (list.empty() ? "" : "\\") + rest[i];
      DcmDataset resume;
      resume.putAndInsertString(DCM_QueryRetrieveLevel, "IMAGE");
      OFString value;
      if (identifier->findAndGetOFStringArray(DCM_PatientID, value).good()) resume.putAndInsertString(DCM_PatientID, value.c_str());
      if (identifier->findAndGetOFStringArray(DCM_StudyInstanceUID, value).good()) resume.putAndInsertString(DCM_StudyInstanceUID, value.c_str());
      resume.putAndInsertString(DCM_SOPInstanceUID, list.c_str());
      cond = moveOnce(resume);
    }
  }

  // Stop accepting sub-operations, then wait until every accepted instance has reached its
  // destination (or failed) before counting. Each delivery is bounded by the DIMSE timeout and the
  // queue is short, so this wait is bounded too.
  job->close(context_.retrieves);
  if (relay.broken || job->requesterBroken()) {
    broken_ = true;  // aborted: a C-GET association that failed mid-exchange cannot carry a final response
    return;
  }
  if (cond.bad()) spdlog::error("{} from {}: PACS retrieve failed: {}", verb, printable(peer_.aeTitle), cond.text());
  PacsRetrieveEnd pacsEnd;
  pacsEnd.associationFailed = cond.bad();
  pacsEnd.status = finalResponse.DimseStatus;
  pacsEnd.failed = finalResponse.NumberOfFailedSubOperations;
  pacsEnd.remaining = finalResponse.NumberOfRemainingSubOperations;
  OFString pacsList;
  if (pacsFailedIds && pacsFailedIds->findAndGetOFStringArray(DCM_FailedSOPInstanceUIDList, pacsList).good()) {
    pacsEnd.failedSopInstanceUids = splitValues(pacsList.c_str());
  }
  const DeliveredCounts delivered = job->counts();
  const FinalRetrieveResponse response = finalRetrieveResponse(isGet, pacsEnd, delivered);
  if (response.announcedButNotDelivered > 0) {
    spdlog::warn("{} from {}: the PACS announced {} sub-operations but delivered {}", verb, printable(peer_.aeTitle),
                 delivered.announcedByPacs, delivered.announcedByPacs - response.announcedButNotDelivered);
  }
  const std::uint16_t finalStatus = response.status;
  const unsigned completed = response.completed, failed = response.failed, warning = response.warning;
  DcmDataset failedList;
  DcmDataset* failedIdentifiers = nullptr;
  if (!response.failedSopInstanceUids.empty()) {
    failedList.putAndInsertString(DCM_FailedSOPInstanceUIDList,
                                  failedUidListValue(response.failedSopInstanceUids).c_str());
    failedIdentifiers = &failedList;
  }
  spdlog::info("{} from {} done: {} completed, {} failed, {} warning; final {}", verb, printable(peer_.aeTitle),
               completed, failed, warning, describeStatus(finalStatus));
  {
    std::string studies;
    const RetrieveRequest& asked = job->request();
    for (const auto& uid : asked.studyUids) studies += (studies.empty() ? "" : "\\") + uid;
    audit::Peer destination{asked.destinationAeTitle(), asked.destination ? asked.destination->host : peer_.address};
    audit::instancesTransferred({peer_.aeTitle, peer_.address}, destination, studies, completed + warning, failed,
                                asked.access == config::Access::Decrypt);
    job->keyReleases().record({peer_.aeTitle, peer_.address}, destination);
    if (const std::size_t unencrypted = job->passthroughCount())
      audit::passthroughDelivered({peer_.aeTitle, peer_.address}, destination, studies, unencrypted);
  }
  const Counts counts{completed, failed, warning};
  std::optional<RetrieveJob::ChannelLock> io;
  if (isGet) io.emplace(job->channel());
  if (!sendRetrieveResponse(relay, finalStatus, response.remaining, failedIdentifiers, &counts)) broken_ = true;
}

namespace {

// The PACS's Move Originator Message ID, when it names the gateway as the move originator.
std::optional<std::uint16_t> moveOriginatorOf(const T_DIMSE_C_StoreRQ& request, const std::string& gatewayAeTitle) {
  if ((request.opts & O_STORE_MOVEORIGINATORID) != 0 && gatewayAeTitle == request.MoveOriginatorApplicationEntityTitle) {
    return request.MoveOriginatorID;
  }
  return std::nullopt;
}

// The key side of the sub-operation intake: the session's InstanceProtector and the passthrough policy.
class KeystoreVerifier : public SubOperationVerifier {
 public:
  KeystoreVerifier(GatewayContext& context, std::function<InstanceProtector&()> protector)
      : context_(context), protector_(std::move(protector)) {}
  E_TransferSyntax restore(DcmDataset& dataset, E_TransferSyntax xfer, audit::KeyReleases& releases) override {
    return protector_().restore(dataset, xfer, &releases);
  }
  PassthroughDecision passthrough(DcmDataset& dataset) override {
    return decidePassthrough(context_.config.cipher, context_.keys, dataset);
  }
  void attachRelayCapsule(DcmDataset& dataset, const config::RelayPeer& peer) override {
    context_.relay->attachCapsule(dataset, peer, context_.keys);
  }

 private:
  GatewayContext& context_;
  std::function<InstanceProtector&()> protector_;
};

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
                                 std::unique_ptr<DcmDataset> dataset, MemoryReservation memory) {
  SubOperation operation;
  operation.sopClass = request.AffectedSOPClassUID;
  operation.sopInstance = request.AffectedSOPInstanceUID;
  operation.originatorMessageId = moveOriginatorOf(request, context_.config.gateway.aeTitle);
  operation.dataset = std::move(dataset);
  operation.xfer = contextTransferSyntax(presId);
  operation.memory = std::move(memory);
  const IntakeAnswer answer = intake().accept(std::move(operation));
  sendStoreResponse(presId, request, answer.status, answer.errorComment);
}

}  // namespace pacsgw::gateway
