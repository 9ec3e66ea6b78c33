#pragma once
// C-FIND relay: the requester's query goes to the PACS unchanged and every match comes back unchanged,
// a C-CANCEL is passed on once, and the PACS's final status ends the requester's query. Both ends are
// seams (the session's association, an association to the PACS), so the relay is tested without sockets.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>

#include <cstdint>
#include <functional>
#include <string>

namespace pacsgw::gateway {

// The requester's end of a C-FIND.
class FindRequester {
 public:
  virtual ~FindRequester() = default;
  // True once the requester sent C-CANCEL for this query.
  virtual bool cancelRequested() = 0;
  // Sends one pending response carrying a match; false when the association failed.
  virtual bool sendMatch(std::uint16_t status, DcmDataset* identifier) = 0;
};

// The PACS's end of a C-FIND.
class FindUpstream {
 public:
  virtual ~FindUpstream() = default;
  struct End {
    bool failed = false;         // the exchange broke off: no final response
    std::string error;           // why, when it did
    std::uint16_t status = 0;    // the PACS's final status
  };
  // Sends the query and calls `onMatch` for each pending response, in order.
  virtual End query(DcmDataset& identifier, const std::function<void(std::uint16_t, DcmDataset*)>& onMatch) = 0;
  // Sends C-CANCEL for the query in progress (from inside onMatch).
  virtual void cancel() = 0;
};

struct FindRelayResult {
  enum class End {
    Answered,         // send `status` to the requester as the final response
    RequesterBroken,  // the requester's association failed: nothing more can be sent on it
    PacsFailed,       // the PACS exchange broke off: answer Unable to process (C001)
  };
  End end = End::Answered;
  std::uint16_t status = 0;
  unsigned matches = 0;
  bool cancelled = false;  // the requester's C-CANCEL was passed on
  std::string error;
};

FindRelayResult relayFind(DcmDataset& identifier, FindRequester& requester, FindUpstream& upstream);

}  // namespace pacsgw::gateway
