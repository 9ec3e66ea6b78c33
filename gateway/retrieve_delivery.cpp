#include "gateway/retrieve_delivery.h"

#include "gateway/delivery_syntax.h"
#include "gateway/dimse_status.h"
#include "gateway/gateway_metrics.h"
#include "gateway/net_util.h"

#include <dcmtk/dcmdata/dcxfer.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace pacsgw::gateway {

namespace {

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

}  // namespace

void runDeliveries(GatewayContext& context, RetrieveJob& job) {
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

}  // namespace pacsgw::gateway
