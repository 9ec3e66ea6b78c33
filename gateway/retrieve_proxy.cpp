// C-MOVE and C-GET from a workstation, proxied: see retrieve_proxy.h.
#include "gateway/retrieve_proxy.h"

#include "gateway/audit/audit_trail.h"
#include "gateway/find_relay_dimse.h"
#include "gateway/net_util.h"
#include "gateway/peer_endpoints.h"
#include "gateway/relay/relay_service.h"
#include "gateway/retrieve_delivery.h"
#include "gateway/retrieve_outcome.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>

namespace pacsgw::gateway {

namespace {

// The C-MOVE information model matching a C-GET one (the PACS is always asked to move to us).
std::string moveModelFor(const std::string& sopClass) {
  if (sopClass == UID_GETPatientRootQueryRetrieveInformationModel) return UID_MOVEPatientRootQueryRetrieveInformationModel;
  if (sopClass == UID_GETStudyRootQueryRetrieveInformationModel) return UID_MOVEStudyRootQueryRetrieveInformationModel;
  return sopClass;
}

std::unique_ptr<PeerAssociation> openUpstream(GatewayContext& ctx, const std::string& sopClass) {
  return openQueryAssociation(ctx, sopClass);
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

}  // namespace

bool refuseRetrieve(T_ASC_Association* assoc, T_ASC_PresentationContextID presId, T_DIMSE_Message& msg,
                    std::uint16_t statusCode) {
  RetrieveRelay relay{msg.CommandField == DIMSE_C_GET_RQ, assoc, presId, &msg, nullptr, 0, nullptr};
  const Counts none;
  return sendRetrieveResponse(relay, statusCode, 0, nullptr, &none);
}

RetrieveProxy::RetrieveProxy(GatewayContext& context, const PeerIdentity& requester, T_ASC_Association* assoc)
    : context_(context), peer_(requester), assoc_(assoc) {}

bool RetrieveProxy::serve(T_DIMSE_Message& msg, T_ASC_PresentationContextID presId, DcmDataset& identifier) {
  const bool isGet = msg.CommandField == DIMSE_C_GET_RQ;
  const char* verb = isGet ? "C-GET" : "C-MOVE";
  bool usable = true;

  RetrieveRequest request;
  request.requesterAeTitle = peer_.aeTitle;
  request.requesterMessageId = isGet ? msg.msg.CGetRQ.MessageID : msg.msg.CMoveRQ.MessageID;
  RetrieveRelay relay{isGet, assoc_, presId, &msg, nullptr, 0, nullptr};
  auto refuse = [&](std::uint16_t statusCode) {
    const Counts none;
    if (!sendRetrieveResponse(relay, statusCode, 0, nullptr, &none)) usable = false;
  };
  const std::string sopClass = isGet ? msg.msg.CGetRQ.AffectedSOPClassUID : msg.msg.CMoveRQ.AffectedSOPClassUID;
  if (peer_.workstation == nullptr || peer_.workstation->access == config::Access::Deny) {
    spdlog::warn("audit: {} from {}@{} refused: not an authorised workstation", verb, printable(peer_.aeTitle),
                 peer_.address);
    audit::securityAlert("AccessRefused", std::string(verb) + " by a workstation without access", {peer_.aeTitle, peer_.address}, "");
    refuse(status::kNotAuthorised);
    return usable;
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
        return usable;
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
      return usable;
    }
    // A caller may always move to itself; elsewhere only where its move_destinations allow.
    if (relayPeer == nullptr && !context_.policy.mayMoveTo(*peer_.workstation, destination->aeTitle)) {
      spdlog::warn("audit: C-MOVE from {}@{} refused: move destination '{}' is not among its move_destinations",
                   printable(peer_.aeTitle), peer_.address, printable(destinationAe));
      audit::securityAlert("MoveDestinationRefused", "move destination " + destinationAe +
                           " is not among the caller's move_destinations", {peer_.aeTitle, peer_.address}, "");
      refuse(status::kMoveDestinationUnknown);
      return usable;
    }
    // What the destination may see decides decryption: the images land there, not at the caller.
    if (relayPeer == nullptr) {
      request.access = destination->access;
      request.destination = workstationEndpoint(context_.config, *destination);
    }
  }
  request.patientIds = uniqueKeyValues(identifier, DCM_PatientID);
  request.studyUids = uniqueKeyValues(identifier, DCM_StudyInstanceUID);
  request.seriesUids = uniqueKeyValues(identifier, DCM_SeriesInstanceUID);
  request.instanceUids = uniqueKeyValues(identifier, DCM_SOPInstanceUID);

  std::unique_ptr<PeerAssociation> upstream;
  const std::string moveModel = moveModelFor(sopClass);
  try {
    upstream = openUpstream(context_, moveModel);
  } catch (const PeerUnavailable& e) {
    spdlog::error("{} from {}: upstream PACS unavailable: {}", verb, printable(peer_.aeTitle), e.what());
    refuse(status::kUnableToPerformSubOperations);
    return usable;
  }
  relay.upstream = upstream->raw();
  relay.upstreamPresId = ASC_findAcceptedPresentationContextID(upstream->raw(), moveModel.c_str());
  if (relay.upstreamPresId == 0) {
    refuse(status::kSopClassNotSupported);
    return usable;
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
  job->startDeliveries([this, job] { runDeliveries(context_, *job); });
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
  OFCondition cond = moveOnce(identifier);

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
      for (const auto& uid : instancesOf(context_, moveModel, identifier)) {
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
      if (identifier.findAndGetOFStringArray(DCM_PatientID, value).good()) resume.putAndInsertString(DCM_PatientID, value.c_str());
      if (identifier.findAndGetOFStringArray(DCM_StudyInstanceUID, value).good()) resume.putAndInsertString(DCM_StudyInstanceUID, value.c_str());
      resume.putAndInsertString(DCM_SOPInstanceUID, list.c_str());
      cond = moveOnce(resume);
    }
  }

  // Stop accepting sub-operations, then wait until every accepted instance has reached its
  // destination (or failed) before counting. Each delivery is bounded by the DIMSE timeout and the
  // queue is short, so this wait is bounded too.
  job->close(context_.retrieves);
  if (relay.broken || job->requesterBroken()) {
    usable = false;  // aborted: a C-GET association that failed mid-exchange cannot carry a final response
    return usable;
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
  if (!sendRetrieveResponse(relay, finalStatus, response.remaining, failedIdentifiers, &counts)) usable = false;
  return usable;
}

}  // namespace pacsgw::gateway
