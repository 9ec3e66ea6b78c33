#include "gateway/retrieve_delivery.h"

#include "gateway/dimse_status.h"
#include "gateway/gateway_metrics.h"
#include "gateway/net_util.h"

#include <spdlog/spdlog.h>

namespace pacsgw::gateway {

namespace {

// One instance through `delivery`, in turns with the other users of the job's channel.
StoreOutcome deliverOne(RetrieveJob& job, InstanceDelivery& delivery, PendingDelivery& item, bool& destinationDown) {
  RetrieveJob::ChannelLock channel = job.channel();
  StoreOutcome outcome;
  if (job.requesterBroken()) {
    outcome.errorComment = "an earlier C-STORE to the requester failed";
    return outcome;
  }
  if (destinationDown) {  // one unreachable destination costs one timeout, not one per instance
    outcome.status = status::kUnableToPerformSubOperations;
    outcome.errorComment = "destination " + job.request().destinationAeTitle() + " unreachable";
    return outcome;
  }
  const DeliveryResult result =
      delivery.deliver(OutgoingInstance{*item.dataset, item.xfer, item.transcoding, item.sopClass, item.sopInstance});
  if (result.destinationUnreachable) destinationDown = true;
  if (result.requesterCancelled) job.cancel();  // honoured at the next progress relay
  if (result.requesterBroken) job.markRequesterBroken();
  return result.outcome;
}

}  // namespace

void runDeliveries(RetrieveJob& job, InstanceDelivery& delivery) {
  bool destinationDown = false;
  for (;;) {
    PendingDelivery item;
    if (!job.nextDelivery(item)) return;
    if (job.cancelled()) {
      job.discard();  // cancelled: what is still queued stays "remaining"
      continue;
    }
    StoreOutcome outcome;
    try {
      outcome = deliverOne(job, delivery, item, destinationDown);
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
