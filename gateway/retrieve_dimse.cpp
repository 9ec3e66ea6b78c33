// The parties of a proxied retrieve over DCMTK associations: see retrieve_dimse.h.
#include "gateway/retrieve_dimse.h"

#include "gateway/delivery_syntax.h"
#include "gateway/dimse_status.h"
#include "gateway/find_relay_dimse.h"
#include "gateway/retrieve_destination.h"
#include "gateway/retrieve_jobs.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include <algorithm>

namespace pacsgw::gateway {

namespace {

// Fills the fields C-MOVE-RSP and C-GET-RSP share (DCMTK gives them identical layouts).
template <typename Response>
void fillRetrieveResponse(Response& rsp, std::uint16_t messageId, const char* sopClass, const RetrieveResponse& r) {
  rsp.MessageIDBeingRespondedTo = messageId;
  OFStandard::strlcpy(rsp.AffectedSOPClassUID, sopClass, sizeof(rsp.AffectedSOPClassUID));
  rsp.DimseStatus = r.status;
  rsp.NumberOfRemainingSubOperations = static_cast<DIC_US>(r.remaining);
  rsp.NumberOfCompletedSubOperations = static_cast<DIC_US>(r.completed);
  rsp.NumberOfFailedSubOperations = static_cast<DIC_US>(r.failed);
  rsp.NumberOfWarningSubOperations = static_cast<DIC_US>(r.warning);
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

// The gateway's association to the PACS carrying the C-MOVE.
class AssociationPacsRetrieve : public PacsRetrieve {
 public:
  AssociationPacsRetrieve(const GatewayContext& context, std::string moveModel,
                          std::unique_ptr<PeerAssociation> pacs, T_ASC_PresentationContextID presId)
      : context_(context), moveModel_(std::move(moveModel)), pacs_(std::move(pacs)), presId_(presId) {}

  PacsRetrieveEnd move(const PacsMoveCommand& command, DcmDataset& query,
                       const std::function<void(const PacsProgress&)>& onPending) override {
    T_DIMSE_C_MoveRQ request{};
    request.MessageID = command.messageId;
    OFStandard::strlcpy(request.AffectedSOPClassUID, moveModel_.c_str(), sizeof(request.AffectedSOPClassUID));
    request.Priority = static_cast<T_DIMSE_Priority>(command.priority);
    request.DataSetType = DIMSE_DATASET_PRESENT;
    OFStandard::strlcpy(request.MoveDestination, command.moveDestination.c_str(), sizeof(request.MoveDestination));
    // Pending responses are optional, so a large retrieve may stay silent for a while; wait longer
    // than for a single DIMSE message.
    const int responseTimeout = std::max(5 * pacs_->dimseTimeout(), 300);
    T_DIMSE_C_MoveRSP finalResponse{};
    DcmDataset* statusDetail = nullptr;
    DcmDataset* failedList = nullptr;
    OFCondition cond = DIMSE_moveUser(pacs_->raw(), presId_, &request, &query, relayPending,
                                      const_cast<std::function<void(const PacsProgress&)>*>(&onPending),
                                      DIMSE_NONBLOCKING, responseTimeout, nullptr, nullptr, nullptr, &finalResponse,
                                      &statusDetail, &failedList, OFFalse);
    delete statusDetail;
    std::unique_ptr<DcmDataset> failedIds(failedList);
    PacsRetrieveEnd end;
    if (cond.bad()) {
      // Stop the PACS before dropping the association under it.
      DIMSE_sendCancelRequest(pacs_->raw(), presId_, request.MessageID);
      pacs_->markBroken();
      end.associationFailed = true;
      end.error = cond.text();
    }
    end.status = finalResponse.DimseStatus;
    end.failed = finalResponse.NumberOfFailedSubOperations;
    end.remaining = finalResponse.NumberOfRemainingSubOperations;
    OFString uids;
    if (failedIds && failedIds->findAndGetOFStringArray(DCM_FailedSOPInstanceUIDList, uids).good()) {
      end.failedSopInstanceUids = splitValues(uids.c_str());
    }
    return end;
  }

  void cancel(std::uint16_t messageId) override { DIMSE_sendCancelRequest(pacs_->raw(), presId_, messageId); }

  std::vector<std::string> instancesOf(DcmDataset& identifier) override {
    std::vector<std::string> uids;
    const std::string model = findModelFor(moveModel_);
    std::unique_ptr<PeerAssociation> upstream = openQueryAssociation(context_, model);
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
    OFCondition cond =
        DIMSE_findUser(upstream->raw(), ASC_findAcceptedPresentationContextID(upstream->raw(), model.c_str()), &request,
                       &query, count, collectSopInstanceUid, &uids, DIMSE_NONBLOCKING, upstream->dimseTimeout(),
                       &response, &detail);
    delete detail;
    if (cond.bad() || response.DimseStatus != status::kSuccess) uids.clear();
    return uids;
  }

 private:
  // Called by DCMTK for every pending C-MOVE-RSP of the PACS.
  static void relayPending(void* data, T_DIMSE_C_MoveRQ*, int, T_DIMSE_C_MoveRSP* response) {
    const auto& onPending = *static_cast<const std::function<void(const PacsProgress&)>*>(data);
    onPending(PacsProgress{response->DimseStatus, response->NumberOfRemainingSubOperations,
                           response->NumberOfCompletedSubOperations, response->NumberOfFailedSubOperations,
                           response->NumberOfWarningSubOperations});
  }

  const GatewayContext& context_;
  const std::string moveModel_;
  std::unique_ptr<PeerAssociation> pacs_;
  T_ASC_PresentationContextID presId_;
};

// A PeerAssociation to a C-MOVE destination.
class PeerDestinationAssociation : public DestinationAssociation {
 public:
  explicit PeerDestinationAssociation(std::unique_ptr<PeerAssociation> association)
      : association_(std::move(association)) {}
  StoreOutcome store(DcmDataset& dataset, E_TransferSyntax xfer, const std::string& sopClass,
                     const std::string& sopInstance, const MoveOriginator& originator,
                     Transcoding transcoding) override {
    return association_->store(dataset, xfer, sopClass, sopInstance, &originator, transcoding);
  }
  bool usable() const override { return association_->usable(); }

 private:
  std::unique_ptr<PeerAssociation> association_;
};

}  // namespace

// C-GET: the requester's own association, where it plays the Storage SCP.
class AssociationRetrieveRequester::StoreBack : public InstanceDelivery {
 public:
  StoreBack(T_ASC_Association* assoc, int dimseTimeoutSeconds) : assoc_(assoc), timeout_(dimseTimeoutSeconds) {}

  DeliveryResult deliver(const OutgoingInstance& instance) override {
    DeliveryResult result;
    StoreOutcome& outcome = result.outcome;
    const DeliveryContext pc = chooseDeliveryContext(assoc_, instance.sopClass, instance.xfer, instance.transcoding);
    if (pc.id == 0) {
      // Fails this sub-operation alone: nothing was sent, the association is as good as before.
      const bool classAccepted = !acceptedContexts(assoc_, instance.sopClass).empty();
      outcome.status = classAccepted ? status::kNoAcceptableTransferSyntax : status::kSopClassNotSupported;
      outcome.errorComment = classAccepted ? std::string("requester accepted no transfer syntax this object (") +
                                                 DcmXfer(instance.xfer).getXferName() + ") can be converted to"
                                           : "requester negotiated no storage context for this SOP class";
      return result;
    }
    std::string why;
    if (!transcode(instance.dataset, instance.xfer, pc.xfer, why)) {
      outcome.status = status::kNoAcceptableTransferSyntax;
      outcome.errorComment = "cannot convert for the requester: " + why;
      return result;
    }
    T_DIMSE_C_StoreRQ request{};
    request.MessageID = ++nextMessageId_;
    OFStandard::strlcpy(request.AffectedSOPClassUID, instance.sopClass.c_str(), sizeof(request.AffectedSOPClassUID));
    OFStandard::strlcpy(request.AffectedSOPInstanceUID, instance.sopInstance.c_str(),
                        sizeof(request.AffectedSOPInstanceUID));
    request.DataSetType = DIMSE_DATASET_PRESENT;
    request.Priority = DIMSE_PRIORITY_MEDIUM;
    T_DIMSE_C_StoreRSP response{};
    DcmDataset* detail = nullptr;
    T_DIMSE_DetectedCancelParameters cancel{};
    OFCondition cond = DIMSE_storeUser(assoc_, pc.id, &request, nullptr, &instance.dataset, nullptr, nullptr,
                                       DIMSE_NONBLOCKING, timeout_, &response, &detail, &cancel);
    delete detail;
    result.requesterCancelled = cancel.cancelEncountered != OFFalse;  // honoured at the next progress relay
    if (cond.bad()) {
      // A late response would now be read as the answer to the next request: stop using the
      // association (the PACS is told to stop too). This is not a cancel by the requester.
      result.requesterBroken = true;
      outcome.errorComment = std::string("C-STORE to requester failed: ") + cond.text();
      return result;
    }
    outcome.delivered = true;
    outcome.status = response.DimseStatus;
    return result;
  }

 private:
  T_ASC_Association* assoc_;
  int timeout_;
  std::uint16_t nextMessageId_ = 0;
};

AssociationRetrieveRequester::AssociationRetrieveRequester(T_ASC_Association* assoc, T_ASC_PresentationContextID presId,
                                                           T_DIMSE_Message& request, int dimseTimeoutSeconds)
    : assoc_(assoc), presId_(presId), request_(request), dimseTimeoutSeconds_(dimseTimeoutSeconds) {}

AssociationRetrieveRequester::~AssociationRetrieveRequester() = default;

bool AssociationRetrieveRequester::respond(const RetrieveResponse& response) {
  DcmDataset failedList;
  DcmDataset* identifiers = nullptr;
  if (!response.failedSopInstanceUids.empty()) {
    failedList.putAndInsertString(DCM_FailedSOPInstanceUIDList,
                                  failedUidListValue(response.failedSopInstanceUids).c_str());
    identifiers = &failedList;
  }
  // Remaining is only meaningful while the operation runs, or in the response to a cancel.
  const bool withRemaining = response.status == status::kPending || response.status == status::kCancel;
  if (request_.CommandField == DIMSE_C_GET_RQ) {
    T_DIMSE_C_GetRQ& rq = request_.msg.CGetRQ;
    T_DIMSE_C_GetRSP rsp{};
    fillRetrieveResponse(rsp, rq.MessageID, rq.AffectedSOPClassUID, response);
    rsp.opts = O_GET_AFFECTEDSOPCLASSUID | O_GET_NUMBEROFCOMPLETEDSUBOPERATIONS | O_GET_NUMBEROFFAILEDSUBOPERATIONS |
               O_GET_NUMBEROFWARNINGSUBOPERATIONS | (withRemaining ? O_GET_NUMBEROFREMAININGSUBOPERATIONS : 0);
    return DIMSE_sendGetResponse(assoc_, presId_, &rq, &rsp, identifiers, nullptr).good();
  }
  T_DIMSE_C_MoveRQ& rq = request_.msg.CMoveRQ;
  T_DIMSE_C_MoveRSP rsp{};
  fillRetrieveResponse(rsp, rq.MessageID, rq.AffectedSOPClassUID, response);
  rsp.opts = O_MOVE_AFFECTEDSOPCLASSUID | O_MOVE_NUMBEROFCOMPLETEDSUBOPERATIONS | O_MOVE_NUMBEROFFAILEDSUBOPERATIONS |
             O_MOVE_NUMBEROFWARNINGSUBOPERATIONS | (withRemaining ? O_MOVE_NUMBEROFREMAININGSUBOPERATIONS : 0);
  return DIMSE_sendMoveResponse(assoc_, presId_, &rq, &rsp, identifiers, nullptr).good();
}

bool AssociationRetrieveRequester::cancelRequested() {
  const std::uint16_t id =
      request_.CommandField == DIMSE_C_GET_RQ ? request_.msg.CGetRQ.MessageID : request_.msg.CMoveRQ.MessageID;
  return DIMSE_checkForCancelRQ(assoc_, presId_, id).good();
}

InstanceDelivery* AssociationRetrieveRequester::ownAssociation() {
  if (request_.CommandField != DIMSE_C_GET_RQ) return nullptr;
  if (!storeBack_) storeBack_ = std::make_unique<StoreBack>(assoc_, dimseTimeoutSeconds_);
  return storeBack_.get();
}

std::unique_ptr<PacsRetrieve> DimseRetrieveConnections::openPacs(const std::string& moveModel) {
  std::unique_ptr<PeerAssociation> pacs = openQueryAssociation(context_, moveModel);
  const T_ASC_PresentationContextID presId = ASC_findAcceptedPresentationContextID(pacs->raw(), moveModel.c_str());
  if (presId == 0) return nullptr;
  return std::make_unique<AssociationPacsRetrieve>(context_, moveModel, std::move(pacs), presId);
}

std::unique_ptr<InstanceDelivery> DimseRetrieveConnections::destination(const RetrieveRequest& request) {
  const GatewayContext& context = context_;
  return std::make_unique<DestinationDelivery>(
      request, [&context, &request](const std::vector<ProposedContext>& contexts) -> std::unique_ptr<DestinationAssociation> {
        return std::make_unique<PeerDestinationAssociation>(
            PeerAssociation::open(*request.destination, context.config.gateway.aeTitle, contexts, context.timeouts,
                                  context.config.gateway.maxPduBytes));
      });
}

RetrieveCall retrieveCallOf(const T_DIMSE_Message& msg) {
  RetrieveCall call;
  call.isGet = msg.CommandField == DIMSE_C_GET_RQ;
  if (call.isGet) {
    call.messageId = msg.msg.CGetRQ.MessageID;
    call.sopClass = msg.msg.CGetRQ.AffectedSOPClassUID;
    call.priority = static_cast<std::uint16_t>(msg.msg.CGetRQ.Priority);
  } else {
    call.messageId = msg.msg.CMoveRQ.MessageID;
    call.sopClass = msg.msg.CMoveRQ.AffectedSOPClassUID;
    call.priority = static_cast<std::uint16_t>(msg.msg.CMoveRQ.Priority);
    call.moveDestination = msg.msg.CMoveRQ.MoveDestination;
  }
  return call;
}

bool refuseRetrieve(T_ASC_Association* assoc, T_ASC_PresentationContextID presId, T_DIMSE_Message& msg,
                    std::uint16_t statusCode) {
  AssociationRetrieveRequester requester(assoc, presId, msg, 0);
  RetrieveResponse response;
  response.status = statusCode;
  return requester.respond(response);
}

}  // namespace pacsgw::gateway
