// The store path without sockets: a real keystore and cipher, an upstream that records what it was
// handed and answers as told. What matters: the PACS gets ciphertext, the modality hears "stored" only
// when the PACS (or the spool) kept the instance, and every refusal reaches the modality unchanged.
#include "gateway/store_forwarding.h"

#include "codecs/dicom_crypt.h"
#include "gateway/dimse_status.h"
#include "gateway/instance_protector.h"
#include "gateway/relay/relay_element.h"
#include "gateway/store_tally.h"
#include "gateway/upstream_store.h"
#include "test_support.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace pacsgw::gateway {
namespace {

SecretBytes masterKey() {
  SecretBytes k(32);
  for (std::size_t i = 0; i < 32; ++i) k.data()[i] = static_cast<std::uint8_t>(3 * i + 5);
  return k;
}

std::string newUid() {
  char uid[100];
  return dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT);
}

constexpr Uint16 kPixels[16] = {10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160};

// A 4x4 16-bit CT image.
std::unique_ptr<DcmDataset> ctImage() {
  auto ds = std::make_unique<DcmDataset>();
  ds->putAndInsertString(DCM_SOPClassUID, UID_CTImageStorage);
  ds->putAndInsertString(DCM_SOPInstanceUID, newUid().c_str());
  ds->putAndInsertString(DCM_StudyInstanceUID, newUid().c_str());
  ds->putAndInsertString(DCM_SeriesInstanceUID, newUid().c_str());
  ds->putAndInsertString(DCM_PatientID, "P-STORE-1");
  ds->putAndInsertString(DCM_Modality, "CT");
  ds->putAndInsertUint16(DCM_SamplesPerPixel, 1);
  ds->putAndInsertString(DCM_PhotometricInterpretation, "MONOCHROME2");
  ds->putAndInsertUint16(DCM_Rows, 4);
  ds->putAndInsertUint16(DCM_Columns, 4);
  ds->putAndInsertUint16(DCM_BitsAllocated, 16);
  ds->putAndInsertUint16(DCM_BitsStored, 16);
  ds->putAndInsertUint16(DCM_HighBit, 15);
  ds->putAndInsertUint16(DCM_PixelRepresentation, 0);
  ds->putAndInsertUint16Array(DCM_PixelData, kPixels, 16);
  return ds;
}

std::string stringOf(DcmDataset& ds, const DcmTagKey& tag) {
  OFString v;
  ds.findAndGetOFString(tag, v);
  return v.c_str();
}

StoreRequest requestFor(DcmDataset& ds) {
  return {stringOf(ds, DCM_SOPClassUID), stringOf(ds, DCM_SOPInstanceUID), EXS_LittleEndianExplicit};
}

// Records what it was handed and answers with `answer`.
class RecordingUpstream : public UpstreamStore {
 public:
  StoreOutcome store(DcmDataset& dataset, E_TransferSyntax, const std::string&, const std::string& sopInstance) override {
    handed.push_back(sopInstance);
    handedHadKeyReference = codecs::hasKeyReference(dataset);
    const Uint16* pixels = nullptr;
    unsigned long count = 0;
    handedClearPixels = dataset.findAndGetUint16Array(DCM_PixelData, pixels, &count).good() && count == 16 &&
                        std::equal(pixels, pixels + 16, kPixels);
    return answer;
  }
  StoreOutcome answer{true, status::kSuccess, ""};
  std::vector<std::string> handed;
  bool handedHadKeyReference = false;
  bool handedClearPixels = true;
};

StoreOutcome pacsAnswered(std::uint16_t s, const std::string& comment = "") { return {true, s, comment}; }

struct StoreForwardingTest : ::testing::Test {
  pacsgw::testing::TempDir dir{"pacsgw-store"};
  std::unique_ptr<keystore::Keystore> keys = keystore::Keystore::open(dir.file("keys.db"), masterKey());
  config::CipherSection cipher;
  InstanceProtector protector{*keys, cipher};
  RecordingUpstream upstream;
  std::unique_ptr<StoreTally> tally = std::make_unique<StoreTally>("CT1", "127.0.0.1");
  std::unique_ptr<StoreForwarding> store = forwardingFor(true);

  std::unique_ptr<StoreForwarding> forwardingFor(bool isModality) {
    return std::make_unique<StoreForwarding>(
        StoreSender{"CT1", "127.0.0.1", isModality}, [this]() -> InstanceProtector& { return protector; }, upstream,
        *tally, "ORTHANC", nullptr, *keys);
  }
};

TEST_F(StoreForwardingTest, ThePacsGetsCiphertextAndTheModalityHearsSuccessOnlyOnceItIsKept) {
  auto ds = ctImage();
  const StoreAnswer answer = store->storeFromModality(requestFor(*ds), *ds);
  EXPECT_EQ(answer.status, status::kSuccess) << answer.errorComment;
  ASSERT_EQ(upstream.handed.size(), 1u);
  EXPECT_TRUE(upstream.handedHadKeyReference) << "the PACS must receive the key-reference block";
  EXPECT_FALSE(upstream.handedClearPixels) << "the PACS must not receive the pixels in the clear";
  EXPECT_EQ(tally->storedCount(), 1u);
  EXPECT_EQ(tally->refusedCount(), 0u);
}

TEST_F(StoreForwardingTest, APacsWarningIsPassedOnAndCountsAsStored) {
  upstream.answer = pacsAnswered(0xB007, "coerced");
  auto ds = ctImage();
  EXPECT_EQ(store->storeFromModality(requestFor(*ds), *ds).status, 0xB007);
  EXPECT_EQ(tally->storedCount(), 1u);
}

TEST_F(StoreForwardingTest, EveryPacsRefusalReachesTheModalityAndIsNeverCountedAsStored) {
  for (std::uint16_t refusal : {status::kOutOfResources, std::uint16_t{0xA710}, status::kDataSetDoesNotMatchSopClass,
                                status::kCannotUnderstand, std::uint16_t{0xC123}, status::kProcessingFailure,
                                status::kSopClassNotSupported, status::kNotAuthorised}) {
    upstream.answer = pacsAnswered(refusal, "PACS says no");
    auto ds = ctImage();
    const StoreAnswer answer = store->storeFromModality(requestFor(*ds), *ds);
    EXPECT_EQ(answer.status, refusal) << std::hex << refusal;
    EXPECT_EQ(answer.errorComment, "PACS says no");
    EXPECT_FALSE(status::isStored(answer.status));
  }
  EXPECT_EQ(tally->storedCount(), 0u);
  EXPECT_EQ(tally->refusedCount(), 8u);
}

TEST_F(StoreForwardingTest, AnUnreachablePacsIsOutOfResourcesSoTheModalityRetries) {
  upstream.answer = StoreOutcome{false, status::kOutOfResources, "upstream PACS unavailable"};
  auto ds = ctImage();
  const StoreAnswer answer = store->storeFromModality(requestFor(*ds), *ds);
  EXPECT_EQ(answer.status, status::kOutOfResources);
  EXPECT_EQ(answer.errorComment, "upstream PACS unavailable");
  EXPECT_EQ(tally->storedCount(), 0u);
}

TEST_F(StoreForwardingTest, NoAnswerIsNeverSuccessWhateverTheStatusField) {
  upstream.answer = StoreOutcome{false, status::kSuccess, ""};
  auto ds = ctImage();
  const StoreAnswer answer = store->storeFromModality(requestFor(*ds), *ds);
  EXPECT_EQ(answer.status, status::kOutOfResources);
  EXPECT_EQ(tally->storedCount(), 0u);
  EXPECT_EQ(answerFor(StoreOutcome{false, 0xB000, ""}).status, status::kOutOfResources);
  EXPECT_EQ(answerFor(StoreOutcome{false, status::kCannotUnderstand, "x"}).status, status::kCannotUnderstand);
}

TEST_F(StoreForwardingTest, ASenderThatIsNoModalityIsRefusedBeforeAnythingIsEncrypted) {
  store = forwardingFor(false);
  auto ds = ctImage();
  const StoreAnswer answer = store->storeFromModality(requestFor(*ds), *ds);
  EXPECT_EQ(answer.status, status::kNotAuthorised);
  EXPECT_TRUE(upstream.handed.empty());
  EXPECT_FALSE(codecs::hasKeyReference(*ds));
  EXPECT_FALSE(keys->hasKeyFor(keystore::KeyScope::Study, stringOf(*ds, DCM_StudyInstanceUID)))
      << "no data key for a refused sender";
}

TEST_F(StoreForwardingTest, DataSetThatDoesNotMatchTheRequestIsRefused) {
  auto ds = ctImage();
  StoreRequest request = requestFor(*ds);
  request.sopInstance = "1.2.3.999";
  const StoreAnswer answer = store->storeFromModality(request, *ds);
  EXPECT_EQ(answer.status, status::kDataSetDoesNotMatchSopClass);
  EXPECT_TRUE(upstream.handed.empty());
  EXPECT_EQ(tally->refusedCount(), 1u);
}

TEST_F(StoreForwardingTest, AnAlreadyEncryptedObjectIsCannotUnderstand) {
  auto ds = ctImage();
  ASSERT_EQ(store->storeFromModality(requestFor(*ds), *ds).status, status::kSuccess);
  // The same (now encrypted) object sent again, as a looping configuration would.
  const StoreAnswer again = store->storeFromModality(requestFor(*ds), *ds);
  EXPECT_EQ(again.status, status::kCannotUnderstand);
  EXPECT_EQ(again.errorComment, "AlreadyEncrypted");
  EXPECT_EQ(upstream.handed.size(), 1u);
}

TEST_F(StoreForwardingTest, ARelayCapsuleFromAModalityIsRefusedAndNeverForwarded) {
  auto ds = ctImage();
  relay::writeRelayCapsule(*ds, std::vector<std::uint8_t>(48, 0x5a));
  const StoreAnswer answer = store->storeFromModality(requestFor(*ds), *ds);
  EXPECT_EQ(answer.status, status::kNotAuthorised);
  EXPECT_EQ(answer.errorComment, "RelayCapsuleFromNonPeer");
  EXPECT_TRUE(upstream.handed.empty());
}

TEST_F(StoreForwardingTest, AnObjectWithoutPixelDataGoesOnUnchanged) {
  auto ds = std::make_unique<DcmDataset>();
  ds->putAndInsertString(DCM_SOPClassUID, UID_BasicTextSRStorage);
  ds->putAndInsertString(DCM_SOPInstanceUID, newUid().c_str());
  ds->putAndInsertString(DCM_StudyInstanceUID, newUid().c_str());
  const StoreAnswer answer = store->storeFromModality(requestFor(*ds), *ds);
  EXPECT_EQ(answer.status, status::kSuccess) << answer.errorComment;
  ASSERT_EQ(upstream.handed.size(), 1u);
  EXPECT_FALSE(upstream.handedHadKeyReference);
}

}  // namespace
}  // namespace pacsgw::gateway
