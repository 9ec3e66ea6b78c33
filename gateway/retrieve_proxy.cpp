// C-MOVE and C-GET from a workstation, proxied: see retrieve_proxy.h.
#include "gateway/retrieve_proxy.h"

#include "gateway/audit/audit_trail.h"
#include "gateway/dimse_status.h"
#include "gateway/net_util.h"
#include "gateway/peer_endpoints.h"
#include "gateway/query_retrieve_authorisation.h"
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

// The PACS's pending responses, relayed to the requester while watching for its C-CANCEL.
class ProgressRelay {
 public:
  ProgressRelay(bool isGet, RetrieveRequester& requester, PacsRetrieve& pacs, RetrieveJob& job)
      : isGet_(isGet), requester_(requester), pacs_(pacs), job_(job) {}

  void onPending(const PacsProgress& pending) {
    if (broken_) return;
    // C-GET deliveries use the requester's association from another thread: take turns with them.
    std::optional<RetrieveJob::ChannelLock> io;
    if (isGet_) io.emplace(job_.channel());
    // A cancel may also have been seen by the C-GET delivery thread (inside a C-STORE exchange).
    if (!cancelRelayed_ && job_.requesterBroken()) {
      // The requester's association failed mid-exchange: nothing more can reach it, so stop the PACS.
      // Not a cancel: the requester never asked for one.
      cancelRelayed_ = true;
      broken_ = true;
      pacs_.cancel(job_.upstreamMessageId());
      spdlog::warn("retrieve {}: the association to {} failed; PACS told to stop", job_.upstreamMessageId(),
                   printable(job_.request().requesterAeTitle));
      return;
    }
    if (!cancelRelayed_ && (job_.cancelled() || requester_.cancelRequested())) {
      job_.cancel();
      cancelRelayed_ = true;
      pacs_.cancel(job_.upstreamMessageId());
      spdlog::info("retrieve {} cancelled by {}; cancel relayed to the PACS", job_.upstreamMessageId(),
                   printable(job_.request().requesterAeTitle));
    }
    if (status::isPending(pending.status)) {
      const RetrieveJob::Progress progress =
          job_.noteProgress(pending.remaining, pending.completed, pending.failed, pending.warning);
      RetrieveResponse response;
      response.status = status::kPending;
      response.remaining = progress.remaining;
      response.completed = progress.completed;
      response.failed = progress.failed;
      response.warning = progress.warning;
      if (!requester_.respond(response)) broken_ = true;
    }
  }

  // Nothing more can be sent to the requester.
  bool broken() const { return broken_; }

 private:
  const bool isGet_;
  RetrieveRequester& requester_;
  PacsRetrieve& pacs_;
  RetrieveJob& job_;
  bool broken_ = false;
  bool cancelRelayed_ = false;
};

// The identifier asking again for `uids` (some of those `identifier` names).
DcmDataset resumeQuery(DcmDataset& identifier, const std::vector<std::string>& uids, std::size_t first,
                       std::size_t count) {
  std::string list;
  for (std::size_t i = first; i < std::min(uids.size(), first + count); ++i) list += (list.empty() ? "" : "\\") + uids[i];
  DcmDataset resume;
  resume.putAndInsertString(DCM_QueryRetrieveLevel, "IMAGE");
  OFString value;
  if (identifier.findAndGetOFStringArray(DCM_PatientID, value).good()) resume.putAndInsertString(DCM_PatientID, value.c_str());
  if (identifier.findAndGetOFStringArray(DCM_StudyInstanceUID, value).good())
    resume.putAndInsertString(DCM_StudyInstanceUID, value.c_str());
  resume.putAndInsertString(DCM_SOPInstanceUID, list.c_str());
  return resume;
}

}  // namespace

RetrieveProxy::RetrieveProxy(Environment environment, const PeerIdentity& caller, RetrieveRequester& requester)
    : env_(environment), caller_(caller), requester_(requester) {}

bool RetrieveProxy::serve(const RetrieveCall& call, DcmDataset& identifier) {
  const bool isGet = call.isGet;
  const char* verb = isGet ? "C-GET" : "C-MOVE";
  bool usable = true;
  auto refuse = [&](std::uint16_t statusCode) {
    RetrieveResponse response;
    response.status = statusCode;
    if (!requester_.respond(response)) usable = false;
  };

  const RetrieveDecision decision =
      isGet ? authoriseGet(caller_)
            : authoriseMove(caller_, call.moveDestination, env_.policy.workstationByAeTitle(call.moveDestination),
                            env_.relay != nullptr ? env_.relay->peerByAeTitle(call.moveDestination) : nullptr);
  if (!decision.allowed) {
    spdlog::warn("audit: {} from {}@{} refused: {}", verb, printable(caller_.aeTitle), caller_.address, decision.reason);
    audit::securityAlert(decision.alertCode, decision.auditDescription, {caller_.aeTitle, caller_.address}, "");
    refuse(decision.status);
    return usable;
  }
  RetrieveRequest request;
  request.requesterAeTitle = caller_.aeTitle;
  request.requesterMessageId = call.messageId;
  request.access = decision.access;
  request.relayPeer = decision.relayPeer;
  if (decision.relayPeer != nullptr) request.destination = relayPeerEndpoint(env_.config, *decision.relayPeer);
  if (decision.destination != nullptr) request.destination = workstationEndpoint(env_.config, *decision.destination);
  request.patientIds = uniqueKeyValues(identifier, DCM_PatientID);
  request.studyUids = uniqueKeyValues(identifier, DCM_StudyInstanceUID);
  request.seriesUids = uniqueKeyValues(identifier, DCM_SeriesInstanceUID);
  request.instanceUids = uniqueKeyValues(identifier, DCM_SOPInstanceUID);

  std::unique_ptr<PacsRetrieve> pacs;
  const std::string moveModel = moveModelFor(call.sopClass);
  try {
    pacs = env_.connections.openPacs(moveModel);
  } catch (const PeerUnavailable& e) {
    spdlog::error("{} from {}: upstream PACS unavailable: {}", verb, printable(caller_.aeTitle), e.what());
    refuse(status::kUnableToPerformSubOperations);
    return usable;
  }
  if (!pacs) {
    refuse(status::kSopClassNotSupported);
    return usable;
  }
  auto job = std::make_shared<RetrieveJob>(std::move(request));
  // Where the instances go: back on the requester's association (C-GET) or to the destination.
  std::unique_ptr<InstanceDelivery> destination;
  InstanceDelivery* delivery = requester_.ownAssociation();
  if (delivery == nullptr) {
    destination = env_.connections.destination(job->request());
    delivery = destination.get();
  }
  // However this ends, the job must leave the registry, deliver what it accepted, and no delivery
  // may touch it afterwards (the destination outlives the delivery thread).
  struct Closer {
    RetrieveRegistry& retrieves;
    RetrieveJob& job;
    ~Closer() {
      job.close(retrieves);
      job.stopDeliveries();
    }
  };
  job->startDeliveries([job, delivery] { runDeliveries(*job, *delivery); });
  Closer closer{env_.retrieves, *job};
  env_.retrieves.add(job);
  spdlog::info("audit: {} from {}@{} accepted: {} access, destination {}, PACS move id {}", verb,
               printable(caller_.aeTitle), caller_.address, config::toString(job->request().access),
               job->request().destinationAeTitle(), job->upstreamMessageId());

  const PacsMoveCommand command{job->upstreamMessageId(), call.priority, env_.config.gateway.aeTitle};
  ProgressRelay relay(isGet, requester_, *pacs, *job);
  const auto onPending = [&relay](const PacsProgress& pending) { relay.onPending(pending); };
  PacsRetrieveEnd pacsEnd = pacs->move(command, identifier, onPending);

  // Some PACS (Orthanc >= 1.6) abort the whole C-MOVE with a failure status as soon as one
  // sub-operation is answered with a failure. Ask again for the instances it never offered, so a
  // bad instance fails only its own sub-operation.
  for (unsigned failedBefore = 0; !pacsEnd.associationFailed && !job->cancelled() && !job->requesterBroken() &&
                                  status::isFailure(pacsEnd.status);) {
    // Only our own refusals make a PACS stop early; without a new one it stopped for its own reasons.
    const unsigned refusedNow = job->refusedByGatewayCount();
    if (refusedNow == failedBefore) break;
    failedBefore = refusedNow;
    std::vector<std::string> rest;
    try {
      for (const auto& uid : pacs->instancesOf(identifier)) {
        if (!job->wasOffered(uid)) rest.push_back(uid);
      }
    } catch (const PeerUnavailable& e) {
      spdlog::warn("{} from {}: cannot list the remaining instances: {}", verb, printable(caller_.aeTitle), e.what());
    }
    if (rest.empty()) break;
    spdlog::info("{} from {}: PACS stopped after a failed sub-operation; asking again for {} instances", verb,
                 printable(caller_.aeTitle), rest.size());
    // UI values are limited to 64 KiB: ask in batches.
    constexpr std::size_t kBatch = 400;
    for (std::size_t first = 0; first < rest.size() && !pacsEnd.associationFailed && !job->cancelled();
         first += kBatch) {
      DcmDataset resume = resumeQuery(identifier, rest, first, kBatch);
      pacsEnd = pacs->move(command, resume, onPending);
    }
  }

  // Stop accepting sub-operations, then wait until every accepted instance has reached its
  // destination (or failed) before counting. Each delivery is bounded by the DIMSE timeout and the
  // queue is short, so this wait is bounded too.
  job->close(env_.retrieves);
  if (relay.broken() || job->requesterBroken()) {
    return false;  // aborted: a C-GET association that failed mid-exchange cannot carry a final response
  }
  if (pacsEnd.associationFailed)
    spdlog::error("{} from {}: PACS retrieve failed: {}", verb, printable(caller_.aeTitle), pacsEnd.error);
  const DeliveredCounts delivered = job->counts();
  const FinalRetrieveResponse outcome = finalRetrieveResponse(isGet, pacsEnd, delivered);
  if (outcome.announcedButNotDelivered > 0) {
    spdlog::warn("{} from {}: the PACS announced {} sub-operations but delivered {}", verb, printable(caller_.aeTitle),
                 delivered.announcedByPacs, delivered.announcedByPacs - outcome.announcedButNotDelivered);
  }
  spdlog::info("{} from {} done: {} completed, {} failed, {} warning; final {}", verb, printable(caller_.aeTitle),
               outcome.completed, outcome.failed, outcome.warning, describeStatus(outcome.status));
  {
    std::string studies;
    const RetrieveRequest& asked = job->request();
    for (const auto& uid : asked.studyUids) studies += (studies.empty() ? "" : "\\") + uid;
    audit::Peer destinationPeer{asked.destinationAeTitle(), asked.destination ? asked.destination->host : caller_.address};
    audit::instancesTransferred({caller_.aeTitle, caller_.address}, destinationPeer, studies,
                                outcome.completed + outcome.warning, outcome.failed,
                                asked.access == config::Access::Decrypt);
    job->keyReleases().record({caller_.aeTitle, caller_.address}, destinationPeer);
    if (const std::size_t unencrypted = job->passthroughCount())
      audit::passthroughDelivered({caller_.aeTitle, caller_.address}, destinationPeer, studies, unencrypted);
  }
  RetrieveResponse response;
  response.status = outcome.status;
  response.remaining = outcome.remaining;
  response.completed = outcome.completed;
  response.failed = outcome.failed;
  response.warning = outcome.warning;
  response.failedSopInstanceUids = outcome.failedSopInstanceUids;
  std::optional<RetrieveJob::ChannelLock> io;
  if (isGet) io.emplace(job->channel());
  if (!requester_.respond(response)) usable = false;
  return usable;
}

}  // namespace pacsgw::gateway
