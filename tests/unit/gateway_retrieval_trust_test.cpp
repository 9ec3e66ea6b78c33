// Retrieval must not trust the PACS: a stripped key reference is not "never encrypted", and a key
// only decrypts the study / series / instance it was created for.
#include "gateway/instance_protector.h"
#include "gateway/passthrough_policy.h"
#include "test_support.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <gtest/gtest.h>

using namespace pacsgw;

namespace {

SecretBytes masterKey() {
  SecretBytes k(32);
  for (std::size_t i = 0; i < 32; ++i) k.data()[i] = static_cast<std::uint8_t>(7 * i + 1);
  return k;
}

std::string newUid() {
  char uid[100];
  return dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT);
}

DcmDataset plainObject(const std::string& studyDate = "20190301") {
  DcmDataset ds;
  ds.putAndInsertString(DCM_SOPInstanceUID, newUid().c_str());
  ds.putAndInsertString(DCM_StudyInstanceUID, newUid().c_str());
  ds.putAndInsertString(DCM_SeriesInstanceUID, newUid().c_str());
  if (!studyDate.empty()) ds.putAndInsertString(DCM_StudyDate, studyDate.c_str());
  return ds;
}

std::string uid(DcmDataset& ds, const DcmTagKey& tag) {
  OFString v;
  ds.findAndGetOFString(tag, v);
  return v.c_str();
}

struct RetrievalTrust : ::testing::Test {
  pacsgw::testing::TempDir dir{"pacsgw-trust"};
  std::unique_ptr<keystore::Keystore> keys = keystore::Keystore::open(dir.file("keys.db"), masterKey());
  config::CipherSection cipher;
};

}  // namespace

TEST_F(RetrievalTrust, PassthroughOffRefusesEveryUnencryptedObject) {
  DcmDataset ds = plainObject();
  const auto d = gateway::decidePassthrough(cipher, *keys, ds);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.code, "NotEncrypted");
}

TEST_F(RetrievalTrust, PassthroughOnlyForStudiesTheGatewayHoldsNoKeyFor) {
  cipher.passthroughUnencrypted = true;
  DcmDataset legacy = plainObject();
  EXPECT_TRUE(gateway::decidePassthrough(cipher, *keys, legacy).allowed);
  EXPECT_FALSE(keys->hasKeyFor(keystore::KeyScope::Study, uid(legacy, DCM_StudyInstanceUID)))
      << "deciding must never create a key";

  for (const auto scope : {keystore::KeyScope::Study, keystore::KeyScope::Series, keystore::KeyScope::Instance}) {
    DcmDataset stripped = plainObject();
    const DcmTagKey tag = scope == keystore::KeyScope::Study    ? DCM_StudyInstanceUID
                          : scope == keystore::KeyScope::Series ? DCM_SeriesInstanceUID
                                                                : DCM_SOPInstanceUID;
    keys->getOrCreate(scope, uid(stripped, tag));  // the gateway encrypted something of it
    const auto d = gateway::decidePassthrough(cipher, *keys, stripped);
    EXPECT_FALSE(d.allowed) << keystore::toString(scope);
    EXPECT_EQ(d.code, "KeyReferenceRemoved") << keystore::toString(scope);
  }
}

TEST_F(RetrievalTrust, PassthroughCutoverDate) {
  cipher.passthroughUnencrypted = true;
  cipher.passthroughBefore = "20240101";
  DcmDataset before = plainObject("20231231");
  EXPECT_TRUE(gateway::decidePassthrough(cipher, *keys, before).allowed);
  DcmDataset on = plainObject("20240101");
  EXPECT_EQ(gateway::decidePassthrough(cipher, *keys, on).code, "StudyDateNotBeforeCutover");
  DcmDataset undated = plainObject("");
  EXPECT_EQ(gateway::decidePassthrough(cipher, *keys, undated).code, "StudyDateNotBeforeCutover");
  DcmDataset garbage = plainObject("2019");
  EXPECT_EQ(gateway::decidePassthrough(cipher, *keys, garbage).code, "StudyDateNotBeforeCutover");
}

TEST_F(RetrievalTrust, KeyScopeMustMatchTheObject) {
  DcmDataset ds = plainObject();
  const auto study = keys->getOrCreate(keystore::KeyScope::Study, uid(ds, DCM_StudyInstanceUID));
  EXPECT_NO_THROW(gateway::requireKeyScopeMatches(ds, study));
  const auto series = keys->getOrCreate(keystore::KeyScope::Series, uid(ds, DCM_SeriesInstanceUID));
  EXPECT_NO_THROW(gateway::requireKeyScopeMatches(ds, series));

  DcmDataset relabelled(ds);
  relabelled.putAndInsertString(DCM_StudyInstanceUID, newUid().c_str());
  try {
    gateway::requireKeyScopeMatches(relabelled, study);
    ADD_FAILURE() << "a key of another study was accepted";
  } catch (const codecs::CryptError& e) {
    EXPECT_EQ(e.kind(), codecs::CryptErrorKind::KeyScopeMismatch);
  }
  EXPECT_NO_THROW(gateway::requireKeyScopeMatches(relabelled, series));  // same series UID
  relabelled.findAndDeleteElement(DCM_SeriesInstanceUID);
  EXPECT_THROW(gateway::requireKeyScopeMatches(relabelled, series), codecs::CryptError);
}
