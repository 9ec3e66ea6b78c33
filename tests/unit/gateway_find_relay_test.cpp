// The C-FIND relay without sockets: the requester's identifier reaches the PACS unchanged, each match
// comes back unchanged and in order, a C-CANCEL is passed on once, and the end of the exchange decides
// the final status.
#include "gateway/find_relay.h"

#include "gateway/dimse_status.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pacsgw::gateway {
namespace {

std::string stringOf(DcmDataset& ds, const DcmTagKey& tag) {
  OFString v;
  ds.findAndGetOFString(tag, v);
  return v.c_str();
}

class FakeRequester : public FindRequester {
 public:
  bool cancelRequested() override { return ++asked >= cancelAfter; }
  bool sendMatch(std::uint16_t s, DcmDataset* identifier) override {
    if (failAfter >= 0 && static_cast<int>(received.size()) >= failAfter) return false;
    statuses.push_back(s);
    received.push_back(identifier != nullptr ? stringOf(*identifier, DCM_PatientName) : "(none)");
    return true;
  }
  int asked = 0;
  int cancelAfter = 1 << 30;  // the n-th check sees a C-CANCEL
  int failAfter = -1;         // the association fails after this many responses
  std::vector<std::uint16_t> statuses;
  std::vector<std::string> received;
};

// A PACS holding `names`, answering each as a pending match, then `finalStatus` (or breaking off).
class FakePacs : public FindUpstream {
 public:
  End query(DcmDataset& identifier, const std::function<void(std::uint16_t, DcmDataset*)>& onMatch) override {
    queriedLevel = stringOf(identifier, DCM_QueryRetrieveLevel);
    queriedPatientId = stringOf(identifier, DCM_PatientID);
    for (std::size_t i = 0; i < names.size() && !(cancels > 0 && stopOnCancel); ++i) {
      DcmDataset match;
      match.putAndInsertString(DCM_PatientName, names[i].c_str());
      onMatch(i == 1 ? status::kPendingWithWarnings : status::kPending, &match);
    }
    End end;
    if (breakOff) {
      end.failed = true;
      end.error = "DIMSE read timeout";
    } else {
      end.status = cancels > 0 ? status::kCancel : finalStatus;
    }
    return end;
  }
  void cancel() override { ++cancels; }
  std::vector<std::string> names{"DOE^JANE", "ROE^RICHARD", "POE^EDGAR"};
  std::uint16_t finalStatus = status::kSuccess;
  bool breakOff = false;
  bool stopOnCancel = false;
  int cancels = 0;
  std::string queriedLevel, queriedPatientId;
};

DcmDataset query() {
  DcmDataset q;
  q.putAndInsertString(DCM_QueryRetrieveLevel, "STUDY");
  q.putAndInsertString(DCM_PatientID, "P-42");
  q.putAndInsertString(DCM_PatientName, "");
  return q;
}

TEST(FindRelay, IdentifierGoesOutAndEveryMatchComesBackInOrderWithItsStatus) {
  FakeRequester requester;
  FakePacs pacs;
  DcmDataset q = query();
  const FindRelayResult result = relayFind(q, requester, pacs);
  EXPECT_EQ(pacs.queriedLevel, "STUDY");
  EXPECT_EQ(pacs.queriedPatientId, "P-42");
  EXPECT_EQ(requester.received, (std::vector<std::string>{"DOE^JANE", "ROE^RICHARD", "POE^EDGAR"}));
  EXPECT_EQ(requester.statuses,
            (std::vector<std::uint16_t>{status::kPending, status::kPendingWithWarnings, status::kPending}));
  EXPECT_EQ(result.end, FindRelayResult::End::Answered);
  EXPECT_EQ(result.status, status::kSuccess);
  EXPECT_EQ(result.matches, 3u);
  EXPECT_FALSE(result.cancelled);
  EXPECT_EQ(pacs.cancels, 0);
}

TEST(FindRelay, ThePacsFinalStatusIsTheRequestersFinalStatus) {
  for (std::uint16_t final : {status::kOutOfResources, std::uint16_t{0xA900}, std::uint16_t{0xC000}}) {
    FakeRequester requester;
    FakePacs pacs;
    pacs.finalStatus = final;
    DcmDataset q = query();
    const FindRelayResult result = relayFind(q, requester, pacs);
    EXPECT_EQ(result.end, FindRelayResult::End::Answered);
    EXPECT_EQ(result.status, final);
  }
}

TEST(FindRelay, ACancelIsPassedOnOnce) {
  FakeRequester requester;
  requester.cancelAfter = 2;  // seen while the second match is relayed
  FakePacs pacs;
  DcmDataset q = query();
  const FindRelayResult result = relayFind(q, requester, pacs);
  EXPECT_TRUE(result.cancelled);
  EXPECT_EQ(pacs.cancels, 1) << "one C-CANCEL to the PACS, however many matches follow";
  EXPECT_EQ(result.status, status::kCancel);
}

TEST(FindRelay, NoCancelWithoutTheRequestersCCancel) {
  FakeRequester requester;
  FakePacs pacs;
  pacs.finalStatus = status::kUnableToProcess;
  DcmDataset q = query();
  EXPECT_FALSE(relayFind(q, requester, pacs).cancelled);
  EXPECT_EQ(pacs.cancels, 0);
}

TEST(FindRelay, ABrokenRequesterGetsNothingMore) {
  FakeRequester requester;
  requester.failAfter = 1;
  FakePacs pacs;
  DcmDataset q = query();
  const FindRelayResult result = relayFind(q, requester, pacs);
  EXPECT_EQ(result.end, FindRelayResult::End::RequesterBroken);
  EXPECT_EQ(requester.received.size(), 1u);
  EXPECT_EQ(result.matches, 2u) << "the failed send is counted, later matches are not relayed";
}

TEST(FindRelay, APacsThatBreaksOffIsUnableToProcess) {
  FakeRequester requester;
  FakePacs pacs;
  pacs.breakOff = true;
  DcmDataset q = query();
  const FindRelayResult result = relayFind(q, requester, pacs);
  EXPECT_EQ(result.end, FindRelayResult::End::PacsFailed);
  EXPECT_EQ(result.status, status::kUnableToProcess);
  EXPECT_EQ(result.error, "DIMSE read timeout");
  EXPECT_EQ(requester.received.size(), 3u) << "matches before the break still reached the requester";
}

}  // namespace
}  // namespace pacsgw::gateway
