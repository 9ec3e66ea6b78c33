// The intake of the PACS's C-STORE sub-operations, without sockets: which retrieve a sub-operation
// belongs to, what is refused (and counted) before it reaches the destination, what is decrypted, and
// that a queued instance keeps its bytes in the memory budget.
#include "gateway/sub_operation_intake.h"

#include "codecs/dicom_crypt.h"
#include "gateway/dimse_status.h"
#include "gateway/large_object_retrieve.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include <unistd.h>

namespace pacsgw::gateway {
namespace {

// A directory of this test's own: the spooled file's directory is made private when it is created, and
// the shared temporary directory must never be the one created.
std::string scratchDirectory() {
  return ::testing::TempDir() + "/sub-operation-intake-" + std::to_string(::getpid());
}

constexpr const char* kStudy = "1.2.3.4";

class FakeVerifier : public SubOperationVerifier {
 public:
  E_TransferSyntax restore(DcmDataset& dataset, E_TransferSyntax, audit::KeyReleases&) override {
    ++restored;
    if (failWith) throw codecs::CryptError(*failWith, "test");
    dataset.findAndDeleteElement(DcmTagKey(0x0077, 0x0010));
    return EXS_LittleEndianExplicit;
  }
  E_TransferSyntax restoreSpooled(DcmDataset& dataset, E_TransferSyntax xfer, std::shared_ptr<SpooledPixelData>,
                                  audit::KeyReleases& releases) override {
    ++spooledRestored;
    if (failWith) throw codecs::CryptError(*failWith, "test");
    dataset.findAndDeleteElement(DcmTagKey(0x0077, 0x0010));
    (void)releases;
    return xfer;
  }
  PassthroughDecision passthrough(DcmDataset&) override {
    ++asked;
    return pass;
  }
  void attachRelayCapsule(DcmDataset&, const config::RelayPeer&) override { ++capsules; }
  int restored = 0, asked = 0, capsules = 0, spooledRestored = 0;
  std::optional<codecs::CryptErrorKind> failWith;
  PassthroughDecision pass{false, "NotEncrypted", "passthrough off"};
};

std::unique_ptr<DcmDataset> image(const std::string& study, bool keyReference) {
  auto ds = std::make_unique<DcmDataset>();
  ds->putAndInsertString(DCM_StudyInstanceUID, study.c_str());
  ds->putAndInsertUint16(DCM_Rows, 2);
  ds->putAndInsertUint16(DCM_Columns, 2);
  Uint16 pixels[4] = {1, 2, 3, 4};
  ds->putAndInsertUint16Array(DCM_PixelData, pixels, 4);
  if (keyReference) ds->putAndInsertString(DcmTag(0x0077, 0x0010, EVR_LO), "PACSGW KEYREF 1");
  return ds;
}

std::unique_ptr<DcmDataset> report(const std::string& study) {
  auto ds = std::make_unique<DcmDataset>();
  ds->putAndInsertString(DCM_StudyInstanceUID, study.c_str());
  return ds;
}

SubOperation operation(const std::string& uid, std::unique_ptr<DcmDataset> dataset,
                       std::optional<std::uint16_t> originator = std::nullopt) {
  SubOperation op;
  op.sopClass = "1.2.840.10008.5.1.4.1.1.2";
  op.sopInstance = uid;
  op.originatorMessageId = originator;
  op.dataset = std::move(dataset);
  op.xfer = EXS_LittleEndianExplicit;
  return op;
}

struct SubOperationIntakeTest : ::testing::Test {
  RetrieveRegistry registry;
  FakeVerifier verifier;
  SubOperationIntake intake{registry, verifier, std::chrono::seconds(0), "PACS", "127.0.0.1"};
  std::shared_ptr<RetrieveJob> job;

  void SetUp() override { start(config::Access::Decrypt); }
  // Makes the outstanding retrieve one whose destination has `access` (nothing admitted yet).
  void start(config::Access access, const config::RelayPeer* relayPeer = nullptr) {
    if (job) registry.remove(job->upstreamMessageId());
    RetrieveRequest request;
    request.access = access;
    request.relayPeer = relayPeer;
    request.studyUids = {kStudy};
    job = std::make_shared<RetrieveJob>(std::move(request));
    registry.add(job);
  }
  unsigned failed() { return job->counts().failed; }
  std::size_t queued() { return job->queued(); }
  // The first instance waiting for delivery (there must be one).
  PendingDelivery firstQueued() {
    PendingDelivery next;
    EXPECT_TRUE(job->nextDelivery(next));
    return next;
  }
};

TEST_F(SubOperationIntakeTest, EncryptedInstanceForADecryptDestinationIsRestoredAndQueued) {
  const IntakeAnswer answer = intake.accept(operation("9.1", image(kStudy, true), job->upstreamMessageId()));
  EXPECT_EQ(answer.status, status::kSuccess) << answer.errorComment;
  EXPECT_EQ(verifier.restored, 1);
  ASSERT_EQ(queued(), 1u);
  const PendingDelivery next = firstQueued();
  EXPECT_EQ(next.transcoding, Transcoding::Lossless) << "clear pixels may be converted losslessly";
  EXPECT_EQ(next.sopInstance, "9.1");
}

TEST_F(SubOperationIntakeTest, SpooledLargeInstanceIsRestoredFromItsFileAndNeverReEncoded) {
  SubOperation op = operation("9.40", image(kStudy, true), job->upstreamMessageId());
  op.spooled = std::make_shared<SpooledPixelData>(scratchDirectory(), EVR_OW, 8);
  EXPECT_EQ(intake.accept(std::move(op)).status, status::kSuccess);
  EXPECT_EQ(verifier.spooledRestored, 1);
  EXPECT_EQ(verifier.restored, 0) << "a spooled object is never decrypted in memory";
  ASSERT_EQ(queued(), 1u);
  EXPECT_EQ(firstQueued().transcoding, Transcoding::NativeOnly) << "its pixels are decrypted as they are sent";
}

TEST_F(SubOperationIntakeTest, SpooledLargeInstanceFailingItsTagIsRefusedAndNotQueued) {
  verifier.failWith = codecs::CryptErrorKind::AuthenticationFailed;
  SubOperation op = operation("9.41", image(kStudy, true), job->upstreamMessageId());
  op.spooled = std::make_shared<SpooledPixelData>(scratchDirectory(), EVR_OW, 8);
  const IntakeAnswer answer = intake.accept(std::move(op));
  EXPECT_NE(answer.status, status::kSuccess);
  EXPECT_EQ(answer.errorComment, "AuthenticationFailed");
  EXPECT_EQ(queued(), 0u);
  EXPECT_EQ(failed(), 1u);
}

TEST_F(SubOperationIntakeTest, CiphertextDestinationGetsTheInstanceAsStored) {
  start(config::Access::Ciphertext);
  EXPECT_EQ(intake.accept(operation("9.2", image(kStudy, true))).status, status::kSuccess);
  EXPECT_EQ(verifier.restored, 0);
  ASSERT_EQ(queued(), 1u);
  EXPECT_EQ(firstQueued().transcoding, Transcoding::NativeOnly) << "ciphertext is never re-encoded";
}

TEST_F(SubOperationIntakeTest, RelayPeerGetsCiphertextWithACapsuleNeverPlaintext) {
  config::RelayPeer peer;
  start(config::Access::Ciphertext, &peer);
  EXPECT_EQ(intake.accept(operation("9.12", image(kStudy, true))).status, status::kSuccess);
  EXPECT_EQ(verifier.capsules, 1);
  EXPECT_EQ(verifier.restored, 0);
}

TEST_F(SubOperationIntakeTest, DocumentWithoutPixelsNeedsNoKey) {
  EXPECT_EQ(intake.accept(operation("9.3", report(kStudy))).status, status::kSuccess);
  EXPECT_EQ(verifier.restored + verifier.asked, 0);
  EXPECT_EQ(queued(), 1u);
}

TEST_F(SubOperationIntakeTest, PixelsWithoutKeyReferenceAreRefusedUnlessPassthroughAllowsAndTheRefusalIsCounted) {
  const IntakeAnswer refused = intake.accept(operation("9.4", image(kStudy, false)));
  EXPECT_EQ(refused.status, status::kRefusedNotEncrypted);
  EXPECT_EQ(refused.errorComment, "NotEncrypted");
  EXPECT_EQ(failed(), 1u);
  EXPECT_EQ(job->refusedByGatewayCount(), 1u) << "the retrieve asks the PACS again after its own refusals";
  verifier.pass = {true, "", "before the cutover"};
  EXPECT_EQ(intake.accept(operation("9.5", image(kStudy, false))).status, status::kSuccess);
  EXPECT_EQ(queued(), 1u);
}

TEST_F(SubOperationIntakeTest, FailedVerificationFailsThatInstanceAloneWithItsKind) {
  verifier.failWith = codecs::CryptErrorKind::AuthenticationFailed;
  const IntakeAnswer answer = intake.accept(operation("9.6", image(kStudy, true)));
  EXPECT_EQ(answer.status, status::kRefusedAuthenticationFailed);
  EXPECT_EQ(answer.errorComment, "AuthenticationFailed");
  EXPECT_EQ(failed(), 1u);
  EXPECT_EQ(queued(), 0u);
}

TEST_F(SubOperationIntakeTest, InstanceOfAnotherStudyIsNeverHandedToThisRequester) {
  const IntakeAnswer answer = intake.accept(operation("9.7", image("5.6.7", true)));
  EXPECT_EQ(answer.errorComment, "not part of this retrieve");
  EXPECT_EQ(verifier.restored, 0) << "refused before anything is decrypted";
  EXPECT_EQ(failed(), 1u);
}

TEST_F(SubOperationIntakeTest, NoOutstandingRetrieveAndLateSubOperationsAreRefusedUncounted) {
  EXPECT_EQ(intake.accept(operation("9.8", image(kStudy, true), job->upstreamMessageId() + 1)).status,
            status::kProcessingFailure);
  job->close(registry);
  const IntakeAnswer late = intake.accept(operation("9.9", image(kStudy, true), job->upstreamMessageId()));
  EXPECT_EQ(late.errorComment, "no outstanding retrieve for this instance");
  EXPECT_EQ(failed(), 0u);
}

TEST_F(SubOperationIntakeTest, FullQueueAnswersThePacsInsteadOfWaitingForever) {
  for (int i = 0; i < static_cast<int>(RetrieveJob::kMaxQueued); ++i) {
    ASSERT_EQ(intake.accept(operation("8." + std::to_string(i), report(kStudy))).status, status::kSuccess);
  }
  const IntakeAnswer answer = intake.accept(operation("8.x", report(kStudy)));
  EXPECT_EQ(answer.errorComment, "destination too slow");
  EXPECT_EQ(failed(), 1u);
}

TEST_F(SubOperationIntakeTest, DataSetRefusedWhileReadCountsAsAFailedSubOperation) {
  const IntakeAnswer answer = intake.refuse("9.10", std::nullopt, status::kOutOfResources, "memory limit reached");
  EXPECT_EQ(answer.status, status::kOutOfResources);
  EXPECT_EQ(failed(), 1u);
  EXPECT_EQ(job->counts().failedSopInstanceUids, std::vector<std::string>{"9.10"});
}

TEST_F(SubOperationIntakeTest, QueuedInstanceKeepsItsBytesInTheBudget) {
  MemoryBudget total(1 << 20);
  AssociationMemory pacs(total, 1 << 20);
  SubOperation op = operation("9.11", report(kStudy));
  op.memory = MemoryReservation(pacs);
  ASSERT_EQ(op.memory.grow(4096), AssociationMemory::Refusal::None);
  ASSERT_EQ(intake.accept(std::move(op)).status, status::kSuccess);
  EXPECT_EQ(pacs.held(), 0u);
  EXPECT_EQ(total.inUse(), 4096u);
  PendingDelivery next;
  ASSERT_TRUE(job->nextDelivery(next));
  next = PendingDelivery{};
  EXPECT_EQ(total.inUse(), 0u);
}

}  // namespace
}  // namespace pacsgw::gateway
