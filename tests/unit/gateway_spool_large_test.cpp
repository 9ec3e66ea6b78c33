// Large instances in the spool: records written in pieces (admitStreamed), checked in their file
// without being read whole (checkSpoolRecordFile), data sets whose Pixel Data stays in the record file
// while it is sent (openDatasetInFile), and the forwarder's choice between the two ways of sending.
#include "gateway/spool/dataset_bytes.h"
#include "gateway/spool/forwarder.h"
#include "gateway/spool/spool.h"
#include "gateway/spool/spool_record.h"
#include "test_support.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

namespace pacsgw::gateway::spool {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

SpoolRecordMeta meta(const std::string& uid) {
  SpoolRecordMeta m;
  m.receivedUnixMs = 1700000000123;
  m.sopClassUid = UID_CTImageStorage;
  m.sopInstanceUid = uid;
  m.transferSyntaxUid = UID_LittleEndianExplicitTransferSyntax;
  m.callingAeTitle = "CT1";
  return m;
}

SpoolLimits streamingAbove(std::uint64_t bytes, std::uint64_t maxBytes = 10ull << 30) {
  SpoolLimits limits{maxBytes, 100000, 0};
  limits.streamAboveBytes = bytes;
  return limits;
}

std::vector<fs::path> filesIn(const fs::path& dir, const std::string& suffix) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().string();
    if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      out.push_back(e.path());
    }
  }
  return out;
}

std::string readFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void writeFile(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

std::string randomBytes(std::size_t size, unsigned seed = 7) {
  std::mt19937 rng(seed);
  std::string out(size, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

// A writer handing `payload` on in pieces of `piece` bytes.
PayloadWriter inPieces(const std::string& payload, std::size_t piece) {
  return [payload, piece](const PayloadSink& sink) {
    for (std::size_t at = 0; at < payload.size(); at += piece) {
      sink(payload.data() + at, std::min(piece, payload.size() - at));
    }
  };
}

TEST(SpoolStreamed, RecordIsByteForByteWhatAdmitWritesAndChecksInItsFile) {
  testing::TempDir dir("spool");
  Spool spool(dir.path().string(), streamingAbove(1000));
  const std::string payload = randomBytes(300000);
  const AdmitResult r = spool.admitStreamed(meta("1.2.3"), payload.size(), inPieces(payload, 4096));
  ASSERT_TRUE(r.stored) << r.reason;
  const auto records = filesIn(dir.path() / "queue", ".rec");
  ASSERT_EQ(records.size(), 1u);
  EXPECT_TRUE(filesIn(dir.path() / "queue", ".part").empty());
  EXPECT_EQ(readFile(records[0]), encodeSpoolRecord(meta("1.2.3"), payload));
  EXPECT_EQ(fs::status(records[0]).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
  const SpoolRecordFile file = checkSpoolRecordFile(records[0].string());
  EXPECT_EQ(file.meta.sopInstanceUid, "1.2.3");
  EXPECT_EQ(file.payloadSize, payload.size());
  EXPECT_EQ(readFile(records[0]).substr(file.payloadOffset, file.payloadSize), payload);
  EXPECT_EQ(spool.stats().queued, 1u);
  EXPECT_EQ(spool.stats().accepted, 1u);
}

TEST(SpoolStreamed, AFailedOrMisSizedWriteLeavesNothingAndIsNotStored) {
  testing::TempDir dir("spool");
  Spool spool(dir.path().string(), streamingAbove(1000, 1u << 20));
  const std::string payload = randomBytes(50000);
  const AdmitResult failing = spool.admitStreamed(meta("1.1"), payload.size(), [&](const PayloadSink& sink) {
    sink(payload.data(), 20000);
    throw std::runtime_error("the ciphertext file cannot be read");
  });
  EXPECT_FALSE(failing.stored);
  EXPECT_NE(failing.reason.find("the ciphertext file cannot be read"), std::string::npos) << failing.reason;
  const AdmitResult shorter = spool.admitStreamed(meta("1.2"), payload.size() + 1, inPieces(payload, 7000));
  EXPECT_FALSE(shorter.stored);
  EXPECT_NE(shorter.reason.find("announced"), std::string::npos) << shorter.reason;
  const AdmitResult longer = spool.admitStreamed(meta("1.3"), payload.size() - 1, inPieces(payload, 7000));
  EXPECT_FALSE(longer.stored);
  // Over the quota: refused before the writer runs.
  bool called = false;
  const AdmitResult full = spool.admitStreamed(meta("1.4"), 2u << 20, [&](const PayloadSink&) { called = true; });
  EXPECT_TRUE(full.full);
  EXPECT_FALSE(called);
  EXPECT_TRUE(filesIn(dir.path() / "queue", ".rec").empty());
  EXPECT_TRUE(filesIn(dir.path() / "queue", ".part").empty());
  const SpoolStats s = spool.stats();
  EXPECT_EQ(s.queued, 0u);
  EXPECT_EQ(s.writeErrors, 3u);
  EXPECT_EQ(s.refusedFull, 1u);
  // The quota counts nothing of the failed writes.
  EXPECT_TRUE(spool.admitStreamed(meta("1.5"), payload.size(), inPieces(payload, 7000)).stored);
}

TEST(SpoolRecordFileCheck, EveryTruncationAndFlippedBitIsRejected) {
  testing::TempDir dir("record");
  const fs::path path = dir.path() / "r.rec";
  const std::string record = encodeSpoolRecord(meta("1.2.3.4"), randomBytes(64));
  writeFile(path, record);
  EXPECT_EQ(checkSpoolRecordFile(path.string()).payloadSize, 64u);
  for (std::size_t size = 0; size < record.size(); ++size) {
    writeFile(path, record.substr(0, size));
    EXPECT_THROW(checkSpoolRecordFile(path.string()), SpoolRecordError) << "accepted the first " << size << " bytes";
  }
  writeFile(path, record + "x");
  EXPECT_THROW(checkSpoolRecordFile(path.string()), SpoolRecordError) << "accepted a padded record";
  for (std::size_t i = 0; i < record.size(); ++i) {
    std::string corrupt = record;
    corrupt[i] = static_cast<char>(corrupt[i] ^ 0x10);
    writeFile(path, corrupt);
    EXPECT_THROW(checkSpoolRecordFile(path.string()), SpoolRecordError) << "byte " << i;
  }
  EXPECT_THROW(checkSpoolRecordFile((dir.path() / "missing.rec").string()), std::runtime_error);
}

// A native image whose Pixel Data is larger than what openDatasetInFile reads into memory, with a
// header larger than its first read (a 400 KB private element) and a private element after Pixel Data.
std::unique_ptr<DcmDataset> largeImage(std::vector<Uint16>& pixels) {
  auto dataset = std::make_unique<DcmDataset>();
  dataset->putAndInsertString(DCM_SOPClassUID, UID_CTImageStorage);
  dataset->putAndInsertString(DCM_SOPInstanceUID, "1.2.3.99");
  dataset->putAndInsertUint16(DCM_Rows, 2560);
  dataset->putAndInsertUint16(DCM_Columns, 4096);  // 20 MiB of 16-bit pixels
  dataset->putAndInsertString(DcmTag(0x0029, 0x0010, EVR_LO), "ACME");
  const std::vector<Uint8> blob(400000, 0x42);
  dataset->putAndInsertUint8Array(DcmTag(0x0029, 0x1001, EVR_OB), blob.data(), blob.size());
  pixels.resize(2560u * 4096u);
  std::mt19937 rng(11);
  for (auto& p : pixels) p = static_cast<Uint16>(rng());
  dataset->putAndInsertUint16Array(DCM_PixelData, pixels.data(), pixels.size());
  dataset->putAndInsertString(DcmTag(0x7FE1, 0x0010, EVR_LO), "ACME");
  dataset->putAndInsertString(DcmTag(0x7FE1, 0x1001, EVR_LO), "after pixels");
  return dataset;
}

TEST(DatasetBytes, LargeNativePixelDataStaysInTheRecordFileAndComesBackExact) {
  testing::TempDir dir("spool");
  for (E_TransferSyntax xfer : {EXS_LittleEndianExplicit, EXS_LittleEndianImplicit}) {
    std::vector<Uint16> pixels;
    auto dataset = largeImage(pixels);
    const std::string expected = encodeDataset(*dataset, xfer);
    EXPECT_EQ(encodedLength(*dataset, xfer), expected.size());
    std::string streamed;
    std::size_t largestPiece = 0;
    writeDataset(*dataset, xfer, [&](const void* data, std::size_t size) {
      largestPiece = std::max(largestPiece, size);
      streamed.append(static_cast<const char*>(data), size);
    });
    EXPECT_EQ(streamed, expected);
    EXPECT_LE(largestPiece, std::size_t{1} << 20);

    Spool spool((dir.path() / DcmXfer(xfer).getXferID()).string(), streamingAbove(1 << 20));
    SpoolRecordMeta m = meta("1.2.3.99");
    m.transferSyntaxUid = DcmXfer(xfer).getXferID();
    ASSERT_TRUE(spool.admitStreamed(m, expected.size(), [&](const PayloadSink& sink) {
                       writeDataset(*dataset, xfer, sink);
                     }).stored);
    const auto records = filesIn(fs::path(spool.directory()) / "queue", ".rec");
    ASSERT_EQ(records.size(), 1u);
    const SpoolRecordFile file = checkSpoolRecordFile(records[0].string());
    bool pixelsInFile = false;
    auto opened = openDatasetInFile(file.path, file.payloadOffset, file.payloadSize, xfer, pixelsInFile);
    EXPECT_TRUE(pixelsInFile) << DcmXfer(xfer).getXferName();
    EXPECT_TRUE(opened->tagExists(DcmTagKey(0x7FE1, 0x1001)));  // read back after Pixel Data
    // Written again (as when it is sent), every byte is the same: Pixel Data was read from the file.
    EXPECT_EQ(encodeDataset(*opened, xfer), expected);
  }
}

TEST(DatasetBytes, SmallPayloadInAFileIsDecodedWhole) {
  testing::TempDir dir("record");
  DcmDataset dataset;
  dataset.putAndInsertString(DCM_SOPClassUID, UID_CTImageStorage);
  dataset.putAndInsertString(DCM_SOPInstanceUID, "1.2.3");
  const std::string payload = encodeDataset(dataset, EXS_LittleEndianExplicit);
  const fs::path path = dir.path() / "r.rec";
  writeFile(path, encodeSpoolRecord(meta("1.2.3"), payload));
  const SpoolRecordFile file = checkSpoolRecordFile(path.string());
  bool pixelsInFile = true;
  auto opened = openDatasetInFile(file.path, file.payloadOffset, file.payloadSize, EXS_LittleEndianExplicit,
                                  pixelsInFile);
  EXPECT_FALSE(pixelsInFile);
  OFString uid;
  EXPECT_TRUE(opened->findAndGetOFString(DCM_SOPInstanceUID, uid).good());
  EXPECT_EQ(uid, "1.2.3");
}

// Records what the forwarder handed it, and how.
class RecordingSender : public UpstreamSender {
 public:
  struct Seen {
    std::mutex mutex;
    std::vector<std::string> whole;     // uid:payload size
    std::vector<std::string> fromFile;  // uid:payload size
  };
  explicit RecordingSender(Seen& seen) : seen_(seen) {}
  SendResult send(const SpoolRecordView& record) override {
    std::lock_guard<std::mutex> lock(seen_.mutex);
    seen_.whole.push_back(record.meta.sopInstanceUid + ":" + std::to_string(record.payloadSize));
    return SendResult{SendKind::Answered, 0x0000, ""};
  }
  SendResult sendFile(const SpoolRecordFile& record) override {
    std::lock_guard<std::mutex> lock(seen_.mutex);
    seen_.fromFile.push_back(record.meta.sopInstanceUid + ":" + std::to_string(record.payloadSize));
    return SendResult{SendKind::Answered, 0x0000, ""};
  }

 private:
  Seen& seen_;
};

template <typename Predicate>
bool waitFor(Predicate done, std::chrono::milliseconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

TEST(Forwarder, LargeRecordsAreSentFromTheirFileAndCorruptOnesQuarantined) {
  testing::TempDir dir("spool");
  Spool spool(dir.path().string(), streamingAbove(10000));
  ASSERT_TRUE(spool.admit(meta("small"), randomBytes(500)).stored);
  // Admitted whole (as by a gateway with other limits before a restart), but large: sent from its file too.
  ASSERT_TRUE(spool.admit(meta("admitted-whole"), randomBytes(50000, 5)).stored);
  const std::string large = randomBytes(200000, 3);
  ASSERT_TRUE(spool.admitStreamed(meta("large"), large.size(), inPieces(large, 65536)).stored);
  const AdmitResult torn = spool.admitStreamed(meta("torn"), large.size(), inPieces(large, 65536));
  ASSERT_TRUE(torn.stored);
  {
    // A bit flipped deep inside the payload of one large record (past what any header read covers).
    const fs::path path = dir.path() / "queue" / (torn.name + ".rec");
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(150000);
    const char byte = static_cast<char>(f.get());
    f.seekp(150000);
    f.put(static_cast<char>(byte ^ 0x01));
  }
  RecordingSender::Seen seen;
  ForwarderOptions options;
  options.associations = 1;
  options.statusInterval = 0ms;
  options.sendFromFileAbove = 10000;
  Forwarder forwarder(spool, [&] { return std::make_unique<RecordingSender>(seen); }, options);
  forwarder.start();
  ASSERT_TRUE(waitFor([&] {
    const SpoolStats s = spool.stats();
    return s.queued + s.inFlight == 0;
  }));
  forwarder.stop();
  EXPECT_EQ(seen.whole, std::vector<std::string>{"small:500"});
  std::sort(seen.fromFile.begin(), seen.fromFile.end());
  EXPECT_EQ(seen.fromFile, (std::vector<std::string>{"admitted-whole:50000", "large:200000"}));
  EXPECT_EQ(spool.stats().quarantined, 1u);
  const auto reasons = filesIn(dir.path() / "quarantine", ".reason");
  ASSERT_EQ(reasons.size(), 1u);
  EXPECT_NE(readFile(reasons[0]).find("checksum mismatch"), std::string::npos) << readFile(reasons[0]);
  EXPECT_TRUE(filesIn(dir.path() / "queue", ".rec").empty());
}

}  // namespace
}  // namespace pacsgw::gateway::spool
