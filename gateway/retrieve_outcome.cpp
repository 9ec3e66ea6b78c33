#include "gateway/retrieve_outcome.h"

#include "gateway/dimse_status.h"

#include <algorithm>

namespace pacsgw::gateway {

FinalRetrieveResponse finalRetrieveResponse(bool isGet, const PacsRetrieveEnd& pacs, const DeliveredCounts& ours) {
  FinalRetrieveResponse out;
  out.completed = ours.completed;
  out.failed = ours.failed;
  out.warning = ours.warning;
  out.failedSopInstanceUids = ours.failedSopInstanceUids;
  if (pacs.associationFailed) {
    out.status = ours.completed > 0 ? status::kSubOperationsCompleteWithFailures : status::kUnableToProcess;
  } else if (ours.cancelled || pacs.status == status::kCancel) {
    out.status = status::kCancel;
    out.remaining = pacs.remaining;
  } else if (status::isFailure(pacs.status) && ours.completed == 0 && ours.failed == 0) {
    out.status = pacs.status;  // e.g. the PACS refused the query: relay its reason
    // A C-MOVE-only status (such as A801 Move Destination unknown) means nothing to a C-GET requester.
    if (isGet && status::isMoveDestinationUnknown(out.status)) out.status = status::kUnableToProcess;
  } else {
    // Sub-operations the PACS failed before they ever reached us count as failures too (ours were
    // answered with a failure status, so the PACS counted them already).
    out.failed = std::max(out.failed, pacs.failed);
    for (const auto& uid : pacs.failedSopInstanceUids) {
      if (std::find(out.failedSopInstanceUids.begin(), out.failedSopInstanceUids.end(), uid) ==
          out.failedSopInstanceUids.end()) {
        out.failedSopInstanceUids.push_back(uid);
      }
    }
    // Sub-operations the PACS announced but never delivered (e.g. a PACS that moves asynchronously
    // after answering) must not turn into a silent success.
    const unsigned seen = out.completed + out.failed + out.warning;
    if (ours.announcedByPacs > seen) {
      out.announcedButNotDelivered = ours.announcedByPacs - seen;
      out.failed += out.announcedButNotDelivered;
    }
    out.status = (out.failed > 0 || out.warning > 0) ? status::kSubOperationsCompleteWithFailures : status::kSuccess;
    // Nothing reached the destination: a failure, not a warning (PS3.4 C.4.2.3.1, C.4.3.3.1).
    if (out.failed > 0 && out.completed + out.warning == 0) out.status = status::kUnableToPerformSubOperations;
  }
  return out;
}

std::string failedUidListValue(const std::vector<std::string>& uids) {
  std::string list;
  for (const auto& uid : uids) {
    if (list.size() + uid.size() + 1 > 65000) break;
    list += (list.empty() ? "" : "\\") + uid;
  }
  return list;
}

}  // namespace pacsgw::gateway
