#include "gateway/find_relay.h"

#include "gateway/dimse_status.h"

#include <spdlog/spdlog.h>

namespace pacsgw::gateway {

FindRelayResult relayFind(DcmDataset& identifier, FindRequester& requester, FindUpstream& upstream) {
  FindRelayResult result;
  bool broken = false;
  const FindUpstream::End end = upstream.query(identifier, [&](std::uint16_t pending, DcmDataset* match) {
    if (broken) return;  // the PACS finishes its answer; nothing more reaches the requester
    if (!result.cancelled && requester.cancelRequested()) {
      result.cancelled = true;
      upstream.cancel();
      spdlog::info("C-FIND cancelled by the requester; cancel relayed to the PACS");
    }
    ++result.matches;
    if (!requester.sendMatch(pending, match)) broken = true;
  });
  if (broken) {
    result.end = FindRelayResult::End::RequesterBroken;
  } else if (end.failed) {
    result.end = FindRelayResult::End::PacsFailed;
    result.status = status::kUnableToProcess;
    result.error = end.error;
  } else {
    result.status = end.status;
  }
  return result;
}

}  // namespace pacsgw::gateway
