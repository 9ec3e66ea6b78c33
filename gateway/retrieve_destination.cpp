#include "gateway/retrieve_destination.h"

#include "gateway/delivery_syntax.h"
#include "gateway/dimse_status.h"

#include <algorithm>

namespace pacsgw::gateway {

DestinationDelivery::DestinationDelivery(const RetrieveRequest& request, DestinationOpener open)
    : request_(request), open_(std::move(open)) {}

DeliveryResult DestinationDelivery::deliver(const OutgoingInstance& instance) {
  DeliveryResult result;
  if (!request_.destination) return result;
  bool added = false;
  for (auto& syntaxes : proposalsFor(instance.xfer, instance.transcoding)) {
    const bool known = std::any_of(proposed_.begin(), proposed_.end(), [&](const ProposedContext& c) {
      return c.abstractSyntax == instance.sopClass && c.transferSyntaxes == syntaxes;
    });
    if (!known && proposed_.size() < kMaxContexts) {
      proposed_.push_back(ProposedContext{instance.sopClass, std::move(syntaxes)});
      added = true;
    }
  }
  if (added) association_.reset();
  const MoveOriginator originator{request_.requesterAeTitle, request_.requesterMessageId};
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!association_ || !association_->usable()) {
      try {
        association_ = open_(proposed_);
      } catch (const NoAcceptedContext& e) {
        // The destination is up; it just takes none of the kinds of objects proposed so far.
        result.outcome.status = status::kNoAcceptableTransferSyntax;
        result.outcome.errorComment = e.what();
        return result;
      } catch (const PeerUnavailable& e) {
        result.destinationUnreachable = true;
        result.outcome.status = status::kUnableToPerformSubOperations;
        result.outcome.errorComment = e.what();
        return result;
      }
    }
    result.outcome = association_->store(instance.dataset, instance.xfer, instance.sopClass, instance.sopInstance,
                                         originator, instance.transcoding);
    // Only a broken association is worth a second try; a refusal would just repeat.
    if (result.outcome.delivered || association_->usable() || attempt == 1) return result;
  }
  return result;
}

}  // namespace pacsgw::gateway
