// SpoolUpstream (upstream.forward: queued) over a real spool in a temporary directory: what the
// modality hears for an instance the spool kept, for one the quota refused and for one whose write
// failed. Success means the record is on disk, complete, and found again by a spool opened afresh.
#include "gateway/upstream_store.h"

#include "gateway/dimse_status.h"
#include "gateway/spool/dataset_bytes.h"
#include "gateway/spool/spool.h"
#include "gateway/spool/spool_record.h"
#include "test_support.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace pacsgw::gateway {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

spool::SpoolLimits filePerRecord(std::uint64_t maxBytes = 10ull << 30, std::uint64_t maxInstances = 100000) {
  return spool::SpoolLimits{maxBytes, maxInstances, 0};
}

std::unique_ptr<DcmDataset> encryptedImage(const std::string& uid) {
  auto ds = std::make_unique<DcmDataset>();
  ds->putAndInsertString(DCM_SOPClassUID, UID_CTImageStorage);
  ds->putAndInsertString(DCM_SOPInstanceUID, uid.c_str());
  ds->putAndInsertString(DCM_StudyInstanceUID, "1.2.3");
  ds->putAndInsertUint16(DCM_Rows, 2);
  ds->putAndInsertUint16(DCM_Columns, 2);
  Uint16 pixels[4] = {0x1234, 0xBEEF, 0x0042, 0x7FFF};
  ds->putAndInsertUint16Array(DCM_PixelData, pixels, 4);
  ds->putAndInsertString(DcmTag(0x0077, 0x0010, EVR_LO), "PACSGW KEYREF 1");
  return ds;
}

std::size_t recordsIn(const fs::path& queue) {
  std::size_t n = 0;
  for (const auto& e : fs::directory_iterator(queue)) n += e.path().extension() == ".rec" ? 1 : 0;
  return n;
}

StoreOutcome store(UpstreamStore& upstream, const std::string& uid) {
  std::unique_ptr<DcmDataset> ds = encryptedImage(uid);
  return upstream.store(*ds, EXS_LittleEndianExplicit, UID_CTImageStorage, uid);
}

TEST(SpoolUpstream, AdmittedInstanceIsAcknowledgedAndIsOnDiskForASpoolOpenedAfresh) {
  testing::TempDir dir("spool-upstream");
  {
    spool::Spool spool(dir.path().string(), filePerRecord());
    SpoolUpstream upstream(spool, "CT1");
    const StoreOutcome outcome = store(upstream, "1.2.3.1");
    EXPECT_TRUE(outcome.delivered);
    EXPECT_EQ(outcome.status, status::kSuccess);
    EXPECT_TRUE(outcome.errorComment.empty());
    EXPECT_EQ(spool.stats().queued, 1u);
    EXPECT_EQ(spool.stats().accepted, 1u);
  }
  // As after a restart (or a crash right after the acknowledgement): the record is complete.
  spool::Spool reopened(dir.path().string(), filePerRecord());
  ASSERT_EQ(reopened.stats().queued, 1u);
  const auto claimed = reopened.claim(0ms);
  ASSERT_TRUE(claimed);
  const std::vector<std::uint8_t> bytes = reopened.read(*claimed);
  const spool::SpoolRecordView record = spool::parseSpoolRecord(bytes.data(), bytes.size());
  EXPECT_EQ(record.meta.sopInstanceUid, "1.2.3.1");
  EXPECT_EQ(record.meta.sopClassUid, UID_CTImageStorage);
  EXPECT_EQ(record.meta.callingAeTitle, "CT1");
  EXPECT_GT(record.meta.receivedUnixMs, 0);
  const E_TransferSyntax xfer = DcmXfer(record.meta.transferSyntaxUid.c_str()).getXfer();
  std::unique_ptr<DcmDataset> back = spool::decodeDataset(record.payload, record.payloadSize, xfer);
  const Uint16* pixels = nullptr;
  ASSERT_TRUE(back->findAndGetUint16Array(DCM_PixelData, pixels).good());
  EXPECT_EQ(pixels[0], 0x1234);
  EXPECT_EQ(pixels[3], 0x7FFF);
  EXPECT_TRUE(back->tagExists(DcmTagKey(0x0077, 0x0010))) << "the key reference is spooled with the ciphertext";
}

TEST(SpoolUpstream, FullSpoolIsRefusedOutOfResourcesAndWritesNothing) {
  testing::TempDir dir("spool-upstream");
  spool::Spool spool(dir.path().string(), filePerRecord(10ull << 30, 1));
  SpoolUpstream upstream(spool, "CT1");
  ASSERT_EQ(store(upstream, "1.2.3.1").status, status::kSuccess);
  const StoreOutcome refused = store(upstream, "1.2.3.2");
  EXPECT_FALSE(refused.delivered) << "never acknowledged";
  EXPECT_EQ(refused.status, status::kOutOfResources) << "A700: the modality keeps it and retries";
  EXPECT_TRUE(status::isTransient(refused.status));
  EXPECT_EQ(refused.errorComment, "gateway spool full");
  EXPECT_EQ(recordsIn(dir.path() / "queue"), 1u);
  EXPECT_EQ(spool.stats().refusedFull, 1u);

  testing::TempDir tiny("spool-upstream");
  spool::Spool small(tiny.path().string(), filePerRecord(64, 100000));  // smaller than any record
  SpoolUpstream bytesQuota(small, "CT1");
  const StoreOutcome tooBig = store(bytesQuota, "1.2.3.3");
  EXPECT_FALSE(tooBig.delivered);
  EXPECT_EQ(tooBig.status, status::kOutOfResources);
  EXPECT_EQ(tooBig.errorComment, "gateway spool full");
  EXPECT_EQ(recordsIn(tiny.path() / "queue"), 0u);
}

TEST(SpoolUpstream, FailedWriteIsNeverAcknowledged) {
  testing::TempDir dir("spool-upstream");
  spool::Spool spool(dir.path().string(), filePerRecord());
  SpoolUpstream upstream(spool, "CT1");
  // The queue directory disappears under the spool (a file in its place): no record can be written.
  fs::remove_all(dir.path() / "queue");
  std::ofstream(dir.path() / "queue") << "not a directory";
  const StoreOutcome outcome = store(upstream, "1.2.3.1");
  EXPECT_FALSE(outcome.delivered);
  EXPECT_EQ(outcome.status, status::kOutOfResources);
  EXPECT_EQ(outcome.errorComment, "gateway spool write failed");
  EXPECT_EQ(spool.stats().queued, 0u);
  EXPECT_EQ(spool.stats().accepted, 0u);
}

}  // namespace
}  // namespace pacsgw::gateway
