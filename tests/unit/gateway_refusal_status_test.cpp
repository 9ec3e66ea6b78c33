// Each reason a retrieved object is refused for has its own DIMSE status (Cxxx "Cannot understand"),
// so the PACS's log tells a relabelled object from a corrupted or stripped one.
#include "codecs/dicom_crypt.h"
#include "gateway/dimse_status.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

using namespace pacsgw;
using namespace pacsgw::gateway;

TEST(RefusalStatus, EachTrustReasonHasItsOwnCannotUnderstandCode) {
  const std::map<std::string, std::uint16_t> expected = {
      {"AuthenticationFailed", 0xC210},   {"BoundAttributesChanged", 0xC211},    {"KeyScopeMismatch", 0xC212},
      {"KeyReferenceRemoved", 0xC213},    {"NotEncrypted", 0xC214},              {"StudyDateNotBeforeCutover", 0xC215},
      {"UnknownKey", 0xC216},             {"KeyDestroyed", 0xC217},              {"UnknownBackend", 0xC218},
      {"MalformedKeyReference", 0xC219},
  };
  std::set<std::uint16_t> seen;
  for (const auto& [reason, code] : expected) {
    EXPECT_EQ(refusalStatus(reason), code) << reason;
    EXPECT_TRUE(status::isFailure(code));
    EXPECT_EQ(code & 0xF000, 0xC000);
    EXPECT_EQ(describeStatus(code), "Error: Cannot understand (object refused: not trustworthy)");
    seen.insert(code);
  }
  EXPECT_EQ(seen.size(), expected.size());
}

TEST(RefusalStatus, NamesMatchTheCodecErrorKinds) {
  // The reasons are the codec's own names: a renamed kind must not silently fall back to 0110.
  using K = codecs::CryptErrorKind;
  for (K kind : {K::AuthenticationFailed, K::BoundAttributesChanged, K::KeyScopeMismatch, K::NotEncrypted,
                 K::UnknownKey, K::KeyDestroyed, K::UnknownBackend, K::MalformedKeyReference}) {
    EXPECT_NE(refusalStatus(codecs::toString(kind)), status::kProcessingFailure) << codecs::toString(kind);
  }
}

TEST(RefusalStatus, OtherReasonsAreProcessingFailures) {
  EXPECT_EQ(refusalStatus("not part of this retrieve"), status::kProcessingFailure);
  EXPECT_EQ(refusalStatus("destination too slow"), status::kProcessingFailure);
  EXPECT_EQ(refusalStatus("MalformedObject"), status::kProcessingFailure);
  EXPECT_EQ(refusalStatus(""), status::kProcessingFailure);
}
