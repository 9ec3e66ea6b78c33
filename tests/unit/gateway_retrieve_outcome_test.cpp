// The final C-MOVE / C-GET response the gateway sends, from how the PACS ended and what reached the
// destination: every status mapping, and counts that add up.
#include "gateway/retrieve_outcome.h"

#include "gateway/dimse_status.h"

#include <gtest/gtest.h>

namespace pacsgw::gateway {
namespace {

PacsRetrieveEnd pacsSaid(std::uint16_t s, unsigned failed = 0) {
  PacsRetrieveEnd end;
  end.status = s;
  end.failed = failed;
  return end;
}

DeliveredCounts delivered(unsigned completed, unsigned failed, unsigned warning = 0) {
  DeliveredCounts counts;
  counts.completed = completed;
  counts.failed = failed;
  counts.warning = warning;
  return counts;
}

TEST(RetrieveOutcome, EverythingDeliveredIsSuccess) {
  const auto r = finalRetrieveResponse(true, pacsSaid(status::kSuccess), delivered(6, 0));
  EXPECT_EQ(r.status, status::kSuccess);
  EXPECT_EQ(r.completed, 6u);
  EXPECT_EQ(r.failed, 0u);
}

TEST(RetrieveOutcome, SomeFailedIsB000WithTheirUids) {
  auto counts = delivered(2, 1);
  counts.failedSopInstanceUids = {"1.1"};
  const auto r = finalRetrieveResponse(true, pacsSaid(status::kSuccess), counts);
  EXPECT_EQ(r.status, status::kSubOperationsCompleteWithFailures);
  EXPECT_EQ(r.failedSopInstanceUids, std::vector<std::string>{"1.1"});
}

TEST(RetrieveOutcome, NothingDeliveredIsA702ForGetAndMove) {
  for (bool isGet : {true, false}) {
    const auto r = finalRetrieveResponse(isGet, pacsSaid(status::kSuccess), delivered(0, 3));
    EXPECT_EQ(r.status, status::kUnableToPerformSubOperations);
    EXPECT_EQ(r.completed + r.failed, 3u);
  }
  // Warnings are deliveries: not A702.
  EXPECT_EQ(finalRetrieveResponse(true, pacsSaid(status::kSuccess), delivered(0, 1, 1)).status,
            status::kSubOperationsCompleteWithFailures);
}

TEST(RetrieveOutcome, PacsFailuresAndItsUidsAreMergedWithOurs) {
  auto pacs = pacsSaid(0xC000, 2);
  pacs.failedSopInstanceUids = {"1.1", "1.2"};
  auto counts = delivered(3, 1);
  counts.failedSopInstanceUids = {"1.1"};
  const auto r = finalRetrieveResponse(false, pacs, counts);
  EXPECT_EQ(r.status, status::kSubOperationsCompleteWithFailures);
  EXPECT_EQ(r.failed, 2u);
  EXPECT_EQ(r.failedSopInstanceUids, (std::vector<std::string>{"1.1", "1.2"}));
}

TEST(RetrieveOutcome, AnnouncedButNeverDeliveredCountsAsFailedNotSuccess) {
  auto counts = delivered(2, 0);
  counts.announcedByPacs = 5;
  const auto r = finalRetrieveResponse(false, pacsSaid(status::kSuccess), counts);
  EXPECT_EQ(r.status, status::kSubOperationsCompleteWithFailures);
  EXPECT_EQ(r.failed, 3u);
  EXPECT_EQ(r.announcedButNotDelivered, 3u);
}

TEST(RetrieveOutcome, CancelOnlyWhenAskedForAndWithTheRemainingCount) {
  auto counts = delivered(2, 0);
  counts.cancelled = true;
  auto pacs = pacsSaid(status::kCancel);
  pacs.remaining = 10;
  const auto r = finalRetrieveResponse(true, pacs, counts);
  EXPECT_EQ(r.status, status::kCancel);
  EXPECT_EQ(r.completed, 2u);
  EXPECT_EQ(r.remaining, 10u);
  EXPECT_EQ(finalRetrieveResponse(true, pacsSaid(status::kSuccess), delivered(2, 0)).remaining, 0u);
}

TEST(RetrieveOutcome, PacsRefusalBeforeAnySubOperationIsRelayedButNotAMoveOnlyStatusToAGet) {
  EXPECT_EQ(finalRetrieveResponse(false, pacsSaid(0xA900), delivered(0, 0)).status, 0xA900);
  EXPECT_EQ(finalRetrieveResponse(false, pacsSaid(status::kMoveDestinationUnknown), delivered(0, 0)).status,
            status::kMoveDestinationUnknown);
  EXPECT_EQ(finalRetrieveResponse(true, pacsSaid(status::kMoveDestinationUnknown), delivered(0, 0)).status,
            status::kUnableToProcess);
}

TEST(RetrieveOutcome, BrokenPacsAssociation) {
  PacsRetrieveEnd broken;
  broken.associationFailed = true;
  EXPECT_EQ(finalRetrieveResponse(true, broken, delivered(0, 0)).status, status::kUnableToProcess);
  EXPECT_EQ(finalRetrieveResponse(true, broken, delivered(2, 0)).status, status::kSubOperationsCompleteWithFailures);
}

TEST(RetrieveOutcome, FailedUidListStaysUnderTheValueLimit) {
  std::vector<std::string> uids(2000, std::string(60, '1'));
  const std::string value = failedUidListValue(uids);
  EXPECT_LE(value.size(), 65000u);
  EXPECT_GT(value.size(), 64000u);
  EXPECT_EQ(failedUidListValue({"1.2", "3.4"}), "1.2\\3.4");
}

}  // namespace
}  // namespace pacsgw::gateway
