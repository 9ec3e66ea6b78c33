// The status predicates every service classifies DIMSE answers with: one definition, so the store,
// spool, find and retrieve paths cannot drift apart on what "stored" or "try again later" means.
#include "gateway/dimse_status.h"

#include <gtest/gtest.h>

using namespace pacsgw::gateway;

TEST(DimseStatus, StoredMeansSuccessOrWarning) {
  EXPECT_TRUE(status::isStored(0x0000));
  EXPECT_TRUE(status::isStored(0xB000));
  EXPECT_TRUE(status::isStored(0xB007));
  EXPECT_FALSE(status::isStored(0xA700));  // out of resources: the peer kept nothing
  EXPECT_FALSE(status::isStored(0xA900));
  EXPECT_FALSE(status::isStored(0xC000));
  EXPECT_FALSE(status::isStored(0xC214));
  EXPECT_FALSE(status::isStored(0x0110));
  EXPECT_FALSE(status::isStored(0xFF00));  // pending is not an outcome
  EXPECT_FALSE(status::isStored(0xFE00));
}

TEST(DimseStatus, EveryStatusIsExactlyOneKind) {
  for (unsigned s = 0; s <= 0xFFFF; ++s) {
    const auto code = static_cast<std::uint16_t>(s);
    const int kinds = status::isSuccess(code) + status::isWarning(code) + status::isPending(code) +
                      status::isCancel(code) + status::isFailure(code);
    ASSERT_EQ(kinds, 1) << std::hex << s;
  }
}

TEST(DimseStatus, OnlyOutOfResourcesIsTransient) {
  EXPECT_TRUE(status::isTransient(status::kOutOfResources));
  EXPECT_TRUE(status::isTransient(status::kUnableToCalculateMatches));
  EXPECT_TRUE(status::isTransient(status::kUnableToPerformSubOperations));
  for (std::uint16_t permanent : {status::kProcessingFailure, status::kSopClassNotSupported, status::kNotAuthorised,
                                  status::kMoveDestinationUnknown, status::kDataSetDoesNotMatchSopClass,
                                  status::kCannotUnderstand, status::kRefusedNotEncrypted}) {
    EXPECT_FALSE(status::isTransient(permanent)) << std::hex << permanent;
    EXPECT_TRUE(status::isFailure(permanent)) << std::hex << permanent;
  }
}

TEST(DimseStatus, FailureFamilies) {
  EXPECT_TRUE(status::isMoveDestinationUnknown(status::kMoveDestinationUnknown));
  EXPECT_FALSE(status::isMoveDestinationUnknown(status::kOutOfResources));
  EXPECT_TRUE(status::isDataSetMismatch(status::kDataSetDoesNotMatchSopClass));
  EXPECT_TRUE(status::isCannotUnderstand(status::kCannotUnderstand));
  EXPECT_TRUE(status::isCannotUnderstand(status::kNoAcceptableTransferSyntax));
  EXPECT_FALSE(status::isCannotUnderstand(status::kProcessingFailure));
}

TEST(DimseStatus, TrustRefusalsAreTheGatewaysOwnCodes) {
  for (std::uint16_t s = status::kRefusedAuthenticationFailed; s <= status::kRefusedMalformedKeyReference; ++s) {
    EXPECT_TRUE(status::isTrustRefusal(s)) << std::hex << s;
    EXPECT_TRUE(status::isCannotUnderstand(s));
  }
  EXPECT_FALSE(status::isTrustRefusal(status::kCannotUnderstand));
  EXPECT_FALSE(status::isTrustRefusal(status::kNoAcceptableTransferSyntax));
  EXPECT_FALSE(status::isTrustRefusal(0xC21A));
}

TEST(DimseStatus, DescriptionsAndLabels) {
  EXPECT_EQ(describeStatus(0x0000), "Success");
  EXPECT_EQ(describeStatus(0xA702), "Refused: Out of Resources");
  EXPECT_EQ(describeStatus(0xA801), "Refused: Move Destination unknown");
  EXPECT_EQ(describeStatus(0xC001), "Error: Cannot understand");
  EXPECT_EQ(describeStatus(0xB000), "Warning");
  EXPECT_EQ(describeStatus(0x1234), "Status 0x1234");
  EXPECT_EQ(statusLabel(0xA700), "a700");
  EXPECT_EQ(statusLabel(0x0000), "0000");
  EXPECT_EQ(statusLabel(0xC214), "c214");
}
