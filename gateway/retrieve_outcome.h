#pragma once
// The final response of a C-MOVE / C-GET the gateway proxied: its status and counts, from what the
// PACS answered and what actually reached the destination. Pure, so every mapping is unit-tested.
#include <cstdint>
#include <string>
#include <vector>

namespace pacsgw::gateway {

// How the gateway's own C-MOVE to the PACS ended.
struct PacsRetrieveEnd {
  bool associationFailed = false;  // the exchange broke off (no final response)
  std::string error;               // why it broke off, for the log
  std::uint16_t status = 0;        // the PACS's final status
  unsigned failed = 0;             // sub-operations the PACS counted as failed
  unsigned remaining = 0;          // the PACS's remaining count (meaningful after a cancel)
  std::vector<std::string> failedSopInstanceUids;  // the PACS's Failed SOP Instance UID List
};

// What the gateway counted for the retrieve once every admitted instance was delivered or failed.
struct DeliveredCounts {
  unsigned completed = 0, failed = 0, warning = 0;
  unsigned announcedByPacs = 0;  // the largest total the PACS's pending responses announced
  bool cancelled = false;        // the requester sent C-CANCEL
  std::vector<std::string> failedSopInstanceUids;
};

struct FinalRetrieveResponse {
  std::uint16_t status = 0;
  unsigned completed = 0, failed = 0, warning = 0, remaining = 0;
  std::vector<std::string> failedSopInstanceUids;
  unsigned announcedButNotDelivered = 0;  // counted as failed; worth a log line
};

FinalRetrieveResponse finalRetrieveResponse(bool isGet, const PacsRetrieveEnd& pacs, const DeliveredCounts& ours);

// The Failed SOP Instance UID List as one UI value, kept under the 64 KiB value limit.
std::string failedUidListValue(const std::vector<std::string>& uids);

}  // namespace pacsgw::gateway
