// The durable spool and the forwarder, without sockets: record format, crash leftovers, quota,
// delivery rules (what counts as delivered, what is retried, what is quarantined).
#include "gateway/spool/crc32.h"
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
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <thread>

namespace pacsgw::gateway::spool {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

SpoolRecordMeta meta(const std::string& uid = "1.2.3.4.5") {
  SpoolRecordMeta m;
  m.receivedUnixMs = 1700000000123;
  m.sopClassUid = UID_CTImageStorage;
  m.sopInstanceUid = uid;
  m.transferSyntaxUid = UID_LittleEndianExplicitTransferSyntax;
  m.callingAeTitle = "CT1";
  return m;
}

// A record file per instance (what the spool falls back to), and small segments for the tests.
SpoolLimits filePerRecord(std::uint64_t maxBytes = 10ull << 30, std::uint64_t maxInstances = 100000) {
  return SpoolLimits{maxBytes, maxInstances, 0};
}
SpoolLimits smallSegments(std::uint64_t segmentBytes = 64 << 10) {
  return SpoolLimits{10ull << 30, 100000, segmentBytes};
}

SpoolRecordView parse(const std::string& bytes) {
  return parseSpoolRecord(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
}

std::vector<fs::path> filesIn(const fs::path& dir, const std::string& suffix) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().string().size() >= suffix.size() &&
        e.path().string().compare(e.path().string().size() - suffix.size(), suffix.size(), suffix) == 0) {
      out.push_back(e.path());
    }
  }
  return out;
}

std::string readAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// ---- record format ------------------------------------------------------------------------------

TEST(SpoolChecksum, SameValueAsZlibForEveryLengthAlignmentAndStart) {
  // Records written by earlier releases carry zlib's CRC-32: the fast path must give the same value.
  std::mt19937 random(7);
  std::vector<std::uint8_t> bytes(600000);
  for (auto& b : bytes) b = static_cast<std::uint8_t>(random());
  std::vector<std::size_t> lengths;
  for (std::size_t n = 0; n <= 300; ++n) lengths.push_back(n);
  for (std::size_t n : {1023u, 4096u, 65537u, 530011u, 599990u}) lengths.push_back(n);
  for (const std::size_t n : lengths) {
    for (const std::size_t offset : {0u, 1u, 5u, 8u}) {
      for (const std::uint32_t start : {0u, 0xDEADBEEFu}) {
        ASSERT_EQ(crc32(start, bytes.data() + offset, n), crc32Portable(start, bytes.data() + offset, n))
            << n << " bytes at offset " << offset;
      }
    }
  }
  // Chained in pieces as the spool does (prefix, then payload).
  EXPECT_EQ(crc32(crc32(0, bytes.data(), 77), bytes.data() + 77, 500000), crc32Portable(0, bytes.data(), 500077));
  EXPECT_EQ(crc32(0, "123456789", 9), 0xCBF43926u);  // the CRC-32 check value
}

TEST(SpoolRecord, RoundTrip) {
  const std::string payload = std::string("\x08\x00\x18\x00", 4) + std::string(1000, 'x');
  const std::string bytes = encodeSpoolRecord(meta(), payload);
  const SpoolRecordView view = parse(bytes);
  EXPECT_EQ(view.meta.receivedUnixMs, 1700000000123);
  EXPECT_EQ(view.meta.sopClassUid, UID_CTImageStorage);
  EXPECT_EQ(view.meta.sopInstanceUid, "1.2.3.4.5");
  EXPECT_EQ(view.meta.transferSyntaxUid, UID_LittleEndianExplicitTransferSyntax);
  EXPECT_EQ(view.meta.callingAeTitle, "CT1");
  ASSERT_EQ(view.payloadSize, payload.size());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(view.payload), view.payloadSize), payload);
}

TEST(SpoolRecord, EveryTruncationIsRejected) {
  const std::string bytes = encodeSpoolRecord(meta(), std::string(300, 'p'));
  for (std::size_t size = 0; size < bytes.size(); ++size) {
    EXPECT_THROW(parse(bytes.substr(0, size)), SpoolRecordError) << "accepted the first " << size << " bytes";
  }
  EXPECT_THROW(parse(bytes + "x"), SpoolRecordError) << "accepted a padded record";
}

TEST(SpoolRecord, EveryFlippedBitIsRejected) {
  const std::string bytes = encodeSpoolRecord(meta(), std::string(64, 'p'));
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string corrupt = bytes;
      corrupt[i] = static_cast<char>(corrupt[i] ^ (1 << bit));
      EXPECT_THROW(parse(corrupt), SpoolRecordError) << "byte " << i << " bit " << bit;
    }
  }
}

TEST(SpoolRecord, LengthsAreValidatedBeforeUse) {
  std::string bytes = encodeSpoolRecord(meta(), "payload");
  // Header length claiming more than the whole file.
  std::string huge = bytes;
  huge[8] = '\xff';
  huge[9] = '\xff';
  EXPECT_THROW(parse(huge), SpoolRecordError);
  // A UID length field beyond the 64-byte limit.
  std::string longUid = bytes;
  longUid[12 + 8] = 65;
  EXPECT_THROW(parse(longUid), SpoolRecordError);
  // Over-long fields are refused when writing too.
  SpoolRecordMeta m = meta(std::string(65, '1'));
  EXPECT_THROW(encodeSpoolRecordPrefix(m, 1), SpoolRecordError);
  EXPECT_THROW(parseSpoolRecord(nullptr, 5), SpoolRecordError);
  EXPECT_THROW(parseSpoolRecord(nullptr, 0), SpoolRecordError);
}

TEST(DatasetBytes, RoundTripKeepsPixelBytes) {
  DcmDataset dataset;
  dataset.putAndInsertString(DCM_SOPClassUID, UID_CTImageStorage);
  dataset.putAndInsertString(DCM_SOPInstanceUID, "1.2.3");
  dataset.putAndInsertUint16(DCM_Rows, 4);
  dataset.putAndInsertUint16(DCM_Columns, 4);
  std::vector<Uint16> pixels(16);
  for (int i = 0; i < 16; ++i) pixels[i] = static_cast<Uint16>(i * 1000 + 7);
  dataset.putAndInsertUint16Array(DCM_PixelData, pixels.data(), pixels.size());
  for (E_TransferSyntax xfer : {EXS_LittleEndianExplicit, EXS_LittleEndianImplicit, EXS_BigEndianExplicit}) {
    const std::string bytes = encodeDataset(dataset, xfer);
    auto decoded = decodeDataset(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(), xfer);
    const Uint16* values = nullptr;
    unsigned long count = 0;
    ASSERT_TRUE(decoded->findAndGetUint16Array(DCM_PixelData, values, &count).good());
    ASSERT_EQ(count, 16u);
    EXPECT_EQ(std::vector<Uint16>(values, values + count), pixels);
  }
  EXPECT_EQ(spoolTransferSyntax(EXS_DeflatedLittleEndianExplicit), EXS_LittleEndianExplicit);
  EXPECT_THROW(decodeDataset(reinterpret_cast<const std::uint8_t*>("\x08\x00\x18"), 3, EXS_LittleEndianExplicit),
               std::runtime_error);
}

// ---- spool ------------------------------------------------------------------------------------

TEST(Spool, AdmitWritesACompleteRecordAndNothingElse) {
  testing::TempDir dir("spool");
  Spool spool(dir.path().string(), filePerRecord());
  const AdmitResult r = spool.admit(meta(), "encrypted-bytes");
  ASSERT_TRUE(r.stored) << r.reason;
  const auto records = filesIn(dir.path() / "queue", ".rec");
  ASSERT_EQ(records.size(), 1u);
  EXPECT_TRUE(filesIn(dir.path() / "queue", ".part").empty());
  EXPECT_EQ(parse(readAll(records[0])).meta.sopInstanceUid, "1.2.3.4.5");
  EXPECT_EQ(fs::status(records[0]).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
  const SpoolStats s = spool.stats();
  EXPECT_EQ(s.queued, 1u);
  EXPECT_EQ(s.accepted, 1u);
  EXPECT_GT(s.oldestReceivedUnixMs, 0);
}

TEST(Spool, RestartKeepsRecordsAndDropsIncompleteWrites) {
  testing::TempDir dir("spool");
  {
    Spool spool(dir.path().string(), filePerRecord());
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(spool.admit(meta("1.2." + std::to_string(i)), "x").stored);
  }
  // What a SIGKILL during a write leaves: a .part file that was never acknowledged.
  const std::string torn = encodeSpoolRecord(meta("9.9.9"), std::string(100, 'y')).substr(0, 50);
  std::ofstream(dir.path() / "queue" / "0000000000001-00000000-00000000.part", std::ios::binary) << torn;
  Spool spool(dir.path().string(), filePerRecord());
  EXPECT_EQ(spool.stats().queued, 3u);
  EXPECT_TRUE(filesIn(dir.path() / "queue", ".part").empty());
  std::vector<std::string> uids;
  while (auto claimed = spool.claim(0ms)) {
    const auto bytes = spool.read(*claimed);
    uids.push_back(parseSpoolRecord(bytes.data(), bytes.size()).meta.sopInstanceUid);
    spool.delivered(*claimed);
  }
  EXPECT_EQ(uids, (std::vector<std::string>{"1.2.0", "1.2.1", "1.2.2"}));  // oldest first, torn one never
  EXPECT_TRUE(filesIn(dir.path() / "queue", ".rec").empty());
}

TEST(Spool, QuotaRefusesWithoutWriting) {
  testing::TempDir dir("spool");
  Spool byCount(dir.file("count"), filePerRecord(1ull << 30, 2));
  EXPECT_TRUE(byCount.admit(meta("1"), "a").stored);
  EXPECT_TRUE(byCount.admit(meta("2"), "b").stored);
  const AdmitResult refused = byCount.admit(meta("3"), "c");
  EXPECT_FALSE(refused.stored);
  EXPECT_TRUE(refused.full);
  EXPECT_EQ(filesIn(fs::path(dir.file("count")) / "queue", ".rec").size(), 2u);
  EXPECT_EQ(byCount.stats().refusedFull, 1u);
  // Delivering one makes room again.
  auto claimed = byCount.claim(0ms);
  ASSERT_TRUE(claimed);
  byCount.delivered(*claimed);
  EXPECT_TRUE(byCount.admit(meta("4"), "d").stored);

  Spool byBytes(dir.file("bytes"), filePerRecord(3000, 1000));
  EXPECT_TRUE(byBytes.admit(meta("1"), std::string(1000, 'a')).stored);
  EXPECT_TRUE(byBytes.admit(meta("2"), std::string(1000, 'a')).stored);
  EXPECT_TRUE(byBytes.admit(meta("3"), std::string(2000, 'a')).full);
}

TEST(Spool, ConcurrentWritersAllLandIntact) {
  testing::TempDir dir("spool");
  Spool spool(dir.path().string(), filePerRecord());
  std::vector<std::thread> writers;
  std::atomic<int> stored{0};
  for (int t = 0; t < 8; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        if (spool.admit(meta(std::to_string(t) + "." + std::to_string(i)), std::string(5000 + i, 'z')).stored) {
          ++stored;
        }
      }
    });
  }
  for (auto& w : writers) w.join();
  EXPECT_EQ(stored.load(), 160);
  const auto records = filesIn(dir.path() / "queue", ".rec");
  ASSERT_EQ(records.size(), 160u);
  for (const auto& path : records) EXPECT_NO_THROW(parse(readAll(path))) << path;
}

// ---- delivery rules ---------------------------------------------------------------------------

SendResult answered(std::uint16_t status) { return SendResult{SendKind::Answered, status, ""}; }

TEST(Classify, WhatCountsAsDelivered) {
  EXPECT_EQ(classify(answered(0x0000), 0, 3), Verdict::Delivered);
  EXPECT_EQ(classify(answered(0xB000), 0, 3), Verdict::Delivered);
  EXPECT_EQ(classify(answered(0xB007), 0, 3), Verdict::Delivered);
  EXPECT_EQ(classify(answered(0x0111), 0, 3), Verdict::Delivered);  // duplicate: the PACS already has it
  EXPECT_EQ(classify(answered(0xA700), 0, 3), Verdict::RetryLater);
  EXPECT_EQ(classify(answered(0xA7FF), 9, 3), Verdict::RetryLater);
  EXPECT_EQ(classify(answered(0x0110), 0, 3), Verdict::RetryLater);
  EXPECT_EQ(classify(answered(0x0110), 2, 3), Verdict::Quarantine);
  for (std::uint16_t s : {0xA900, 0xC000, 0xC123, 0x0122, 0x0124, 0x0211, 0xFE00}) {
    EXPECT_EQ(classify(answered(s), 0, 3), Verdict::Quarantine) << std::hex << s;
  }
  EXPECT_EQ(classify(SendResult{SendKind::Unreachable, 0, ""}, 0, 3), Verdict::PeerDown);
  EXPECT_EQ(classify(SendResult{SendKind::Broken, 0, ""}, 50, 3), Verdict::PeerDown);
  EXPECT_EQ(classify(SendResult{SendKind::NoContext, 0, ""}, 0, 3), Verdict::Quarantine);
  EXPECT_EQ(classify(SendResult{SendKind::Undecodable, 0, ""}, 0, 3), Verdict::Quarantine);
}

TEST(Classify, AnInstanceThatBreaksEveryAssociationIsQuarantinedAtTheLimit) {
  const SendResult broken{SendKind::Broken, 0, "association aborted"};
  EXPECT_EQ(classify(broken, 0, 3, 1, 10), Verdict::PeerDown);
  EXPECT_EQ(classify(broken, 8, 3, 9, 10), Verdict::PeerDown);
  EXPECT_EQ(classify(broken, 9, 3, 10, 10), Verdict::Quarantine);
  EXPECT_EQ(classify(broken, 500, 3, 500, 0), Verdict::PeerDown);  // limit 0: retried forever
  // Failing to connect says nothing about the instance and never counts.
  EXPECT_EQ(classify(SendResult{SendKind::Unreachable, 0, ""}, 50, 3, 50, 10), Verdict::PeerDown);
}

// A PACS stand-in: answers from a script per SOP Instance UID, then Success; records every call.
class ScriptedPacs {
 public:
  void script(const std::string& uid, std::deque<SendResult> answers) {
    std::lock_guard<std::mutex> lock(mutex_);
    scripts_[uid] = std::move(answers);
  }
  void setDown(bool down) { down_ = down; }
  SendResult send(const SpoolRecordView& record) {
    std::lock_guard<std::mutex> lock(mutex_);
    const std::string uid = record.meta.sopInstanceUid;
    calls_[uid]++;
    if (down_) return SendResult{SendKind::Unreachable, 0, "connection refused"};
    auto& answers = scripts_[uid];
    SendResult result = answers.empty() ? answered(0x0000) : answers.front();
    if (!answers.empty()) answers.pop_front();
    if (result.kind == SendKind::Answered && (result.status == 0 || result.status == 0x0111)) {
      stored_.push_back(uid + ":" + std::string(reinterpret_cast<const char*>(record.payload), record.payloadSize));
    }
    return result;
  }
  int calls(const std::string& uid) {
    std::lock_guard<std::mutex> lock(mutex_);
    return calls_[uid];
  }
  std::vector<std::string> stored() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stored_;
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::deque<SendResult>> scripts_;
  std::map<std::string, int> calls_;
  std::vector<std::string> stored_;
  std::atomic<bool> down_{false};
};

class Sender : public UpstreamSender {
 public:
  explicit Sender(ScriptedPacs& pacs) : pacs_(pacs) {}
  SendResult send(const SpoolRecordView& record) override { return pacs_.send(record); }

 private:
  ScriptedPacs& pacs_;
};

ForwarderOptions fastOptions() {
  ForwarderOptions o;
  o.associations = 2;
  o.retryInitial = 10ms;
  o.retryMax = 40ms;
  o.statusInterval = 0ms;
  return o;
}

template <typename Predicate>
bool waitFor(Predicate done, std::chrono::milliseconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

TEST(Forwarder, PoisonInstanceIsQuarantinedAfterBrokenAssociationsInARow) {
  testing::TempDir dir("spool");
  Spool spool(dir.path().string(), smallSegments());
  ScriptedPacs pacs;
  const SendResult broken{SendKind::Broken, 0, "association aborted by the PACS"};
  pacs.script("poison", std::deque<SendResult>(20, broken));
  // Two broken attempts, then success: the streak restarts, the instance is delivered.
  pacs.script("flaky", {broken, broken});
  for (const char* uid : {"poison", "flaky", "ok"}) {
    ASSERT_TRUE(spool.admit(meta(uid), std::string("payload-") + uid).stored);
  }
  ForwarderOptions options = fastOptions();
  options.brokenAssociationAttempts = 4;
  Forwarder forwarder(spool, [&] { return std::make_unique<Sender>(pacs); }, options);
  forwarder.start();
  ASSERT_TRUE(waitFor([&] {
    const SpoolStats s = spool.stats();
    return s.queued + s.inFlight == 0 && s.quarantined == 1;
  })) << "queued " << spool.stats().queued << " quarantined " << spool.stats().quarantined;
  forwarder.stop();
  EXPECT_EQ(pacs.calls("poison"), 4);
  EXPECT_EQ(pacs.calls("flaky"), 3);
  EXPECT_EQ(forwarder.stats().delivered, 2u);
  const auto reasons = filesIn(dir.path() / "quarantine", ".reason");
  ASSERT_EQ(reasons.size(), 1u);
  const std::string reason = readAll(reasons.front());
  EXPECT_NE(reason.find("poison"), std::string::npos) << reason;
  EXPECT_NE(reason.find("4 times in a row"), std::string::npos) << reason;
}

TEST(Forwarder, DeliversRetriesAndQuarantines) {
  testing::TempDir dir("spool");
  Spool spool(dir.path().string(), smallSegments());
  ScriptedPacs pacs;
  pacs.script("busy", {answered(0xA700), answered(0xA701)});
  pacs.script("refused", {answered(0xC000)});
  pacs.script("failing", {answered(0x0110), answered(0x0110), answered(0x0110), answered(0x0110)});
  pacs.script("duplicate", {answered(0x0111)});
  for (const char* uid : {"ok", "busy", "refused", "failing", "duplicate"}) {
    ASSERT_TRUE(spool.admit(meta(uid), std::string("payload-") + uid).stored);
  }
  Forwarder forwarder(spool, [&] { return std::make_unique<Sender>(pacs); }, fastOptions());
  forwarder.start();
  ASSERT_TRUE(waitFor([&] {
    const SpoolStats s = spool.stats();
    return s.queued + s.inFlight == 0 && s.quarantined == 2;
  })) << "queued " << spool.stats().queued << " quarantined " << spool.stats().quarantined;
  forwarder.stop();
  const auto stored = pacs.stored();
  EXPECT_EQ(stored.size(), 3u);
  for (const char* uid : {"ok", "busy", "duplicate"}) {
    EXPECT_NE(std::find(stored.begin(), stored.end(), std::string(uid) + ":payload-" + uid), stored.end()) << uid;
  }
  EXPECT_EQ(pacs.calls("busy"), 3);     // two Out of Resources, then delivered
  EXPECT_EQ(pacs.calls("refused"), 1);  // a Cxxx refusal is not retried
  EXPECT_EQ(pacs.calls("failing"), 3);  // 0110 retried processing_failure_attempts times in all
  EXPECT_EQ(forwarder.stats().delivered, 3u);
  EXPECT_EQ(forwarder.stats().quarantined, 2u);
  const auto reasons = filesIn(dir.path() / "quarantine", ".reason");
  ASSERT_EQ(reasons.size(), 2u);
  std::string allReasons;
  for (const auto& r : reasons) allReasons += readAll(r);
  EXPECT_NE(allReasons.find("C000"), std::string::npos) << allReasons;
  EXPECT_NE(allReasons.find("0110"), std::string::npos) << allReasons;
  EXPECT_EQ(filesIn(dir.path() / "quarantine", ".rec").size(), 2u);
  EXPECT_TRUE(filesIn(dir.path() / "queue", ".rec").empty());
  // `spool retry` puts them back; with the PACS now accepting, they are delivered.
  EXPECT_EQ(requeueQuarantined(dir.path().string()), 2u);
  Forwarder again(spool, [&] { return std::make_unique<Sender>(pacs); }, [] {
    ForwarderOptions o = fastOptions();
    o.statusInterval = 10ms;  // the status thread also picks up the retry request
    return o;
  }());
  again.start();
  EXPECT_TRUE(waitFor([&] { return pacs.stored().size() == 5u; }));
  again.stop();
  EXPECT_EQ(spool.stats().quarantined, 0u);
  const SpoolSnapshot snapshot = inspectSpool(dir.path().string());
  EXPECT_EQ(snapshot.queued, 0u);
  EXPECT_TRUE(snapshot.quarantined.empty());
}

TEST(Forwarder, PacsDownKeepsEverythingAndDeliversWhenBack) {
  testing::TempDir dir("spool");
  Spool spool(dir.path().string(), smallSegments());
  ScriptedPacs pacs;
  pacs.setDown(true);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(spool.admit(meta("u" + std::to_string(i)), "p").stored);
  Forwarder forwarder(spool, [&] { return std::make_unique<Sender>(pacs); }, fastOptions());
  forwarder.start();
  ASSERT_TRUE(waitFor([&] { return pacs.calls("u0") >= 3; }));
  EXPECT_EQ(spool.stats().quarantined, 0u) << "an unreachable PACS must never quarantine";
  EXPECT_TRUE(pacs.stored().empty());
  pacs.setDown(false);
  ASSERT_TRUE(waitFor([&] { return pacs.stored().size() == 20u; }));
  forwarder.stop();
  EXPECT_EQ(spool.stats().queued, 0u);
  EXPECT_TRUE(filesIn(dir.path() / "queue", ".rec").empty());
}

TEST(Forwarder, CorruptRecordIsQuarantinedNeverSent) {
  testing::TempDir dir("spool");
  {
    Spool spool(dir.path().string(), filePerRecord());
    ASSERT_TRUE(spool.admit(meta("good"), "p").stored);
  }
  std::string bad = encodeSpoolRecord(meta("bad"), std::string(100, 'q'));
  bad[bad.size() - 20] ^= 0x40;
  std::ofstream(dir.path() / "queue" / "0000000000002-00000000-00000000.rec", std::ios::binary) << bad;
  Spool spool(dir.path().string(), filePerRecord());
  ScriptedPacs pacs;
  Forwarder forwarder(spool, [&] { return std::make_unique<Sender>(pacs); }, fastOptions());
  forwarder.start();
  ASSERT_TRUE(waitFor([&] { return spool.stats().quarantined == 1 && pacs.stored().size() == 1; }));
  forwarder.stop();
  EXPECT_EQ(pacs.calls("bad"), 0);
  const SpoolSnapshot snapshot = inspectSpool(dir.path().string());
  ASSERT_EQ(snapshot.quarantined.size(), 1u);
  EXPECT_NE(snapshot.quarantined[0].reason.find("checksum"), std::string::npos) << snapshot.quarantined[0].reason;
}


// ---- segments ---------------------------------------------------------------------------------

std::vector<std::string> drainUids(Spool& spool) {
  std::vector<std::string> uids;
  while (auto claimed = spool.claim(0ms)) {
    const auto bytes = spool.read(*claimed);
    uids.push_back(parseSpoolRecord(bytes.data(), bytes.size()).meta.sopInstanceUid);
    spool.delivered(*claimed);
  }
  return uids;
}

TEST(SpoolSegments, RecordsGoIntoSegmentsAndSurviveARestartInOrder) {
  testing::TempDir dir("spool");
  std::vector<std::string> expected;
  {
    Spool spool(dir.path().string(), smallSegments(64 << 10));
    for (int i = 0; i < 12; ++i) {
      expected.push_back("1.2." + std::to_string(i));
      // 20 KB each: three per segment, so the spool moves on to new segments.
      SpoolRecordMeta m = meta(expected.back());
      m.receivedUnixMs += i;  // delivery follows arrival time, then the place in the spool
      ASSERT_TRUE(spool.admit(m, std::string(20000, static_cast<char>('a' + i))).stored);
      // The first segment is made before the spool takes records; later ones in the background
      // (a record arriving before the next one is ready gets a file of its own).
      if (i == 2) {
        EXPECT_TRUE(filesIn(dir.path() / "queue", ".rec").empty()) << "no record file per instance";
        // Let the background finish the next segment (on a loaded machine it may lag behind the test).
        ASSERT_TRUE(waitFor([&] {
          const auto segments = filesIn(dir.path() / "queue", ".seg");
          return segments.size() >= 2 && std::all_of(segments.begin(), segments.end(), [](const fs::path& p) {
                   return fs::file_size(p) == (64u << 10);
                 });
        }));
      }
    }
  }
  // Checked once the spool is closed: a segment the background is still zero-filling is not complete yet.
  EXPECT_GE(filesIn(dir.path() / "queue", ".seg").size(), 2u);
  for (const auto& segment : filesIn(dir.path() / "queue", ".seg")) {
    EXPECT_EQ(fs::file_size(segment), 64u << 10) << "segments are pre-allocated";
    EXPECT_EQ(fs::status(segment).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
  }
  EXPECT_EQ(inspectSpool(dir.path().string()).queued, 12u);
  Spool spool(dir.path().string(), smallSegments(64 << 10));
  EXPECT_EQ(spool.stats().queued, 12u);
  auto first = spool.claim(0ms);
  ASSERT_TRUE(first);
  const auto bytes = spool.read(*first);
  const SpoolRecordView view = parseSpoolRecord(bytes.data(), bytes.size());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(view.payload), view.payloadSize), std::string(20000, 'a'));
  spool.delivered(*first);
  std::vector<std::string> uids{view.meta.sopInstanceUid};
  for (const auto& uid : drainUids(spool)) uids.push_back(uid);
  EXPECT_EQ(uids, expected);
  EXPECT_EQ(inspectSpool(dir.path().string()).queued, 0u);
}

TEST(SpoolSegments, AReusedSegmentNeverYieldsRecordsOfItsEarlierUse) {
  testing::TempDir dir("spool");
  std::uint64_t newestGeneration = 0;
  {
    Spool spool(dir.path().string(), smallSegments(64 << 10));
    for (int round = 0; round < 4; ++round) {
      for (int i = 0; i < 7; ++i) {
        ASSERT_TRUE(spool.admit(meta("old" + std::to_string(round) + "." + std::to_string(i)),
                                std::string(20000, 'o')).stored);
      }
      EXPECT_EQ(drainUids(spool).size(), 7u);
      std::this_thread::sleep_for(50ms);  // the next segment is prepared in the background
      for (const auto& segment : filesIn(dir.path() / "queue", ".seg")) {
        newestGeneration = std::max(newestGeneration, scanSegmentFile(segment.string()).generation);
      }
    }
    ASSERT_TRUE(spool.admit(meta("last"), std::string(20000, 'l')).stored);
  }
  EXPECT_GE(newestGeneration, 2u) << "emptied segments are reused, not zero-filled again";
  // Disk use stays bounded: the segment in use, one ready and one spare.
  EXPECT_LE(filesIn(dir.path() / "queue", ".seg").size(), 3u);
  Spool spool(dir.path().string(), smallSegments(64 << 10));
  EXPECT_EQ(drainUids(spool), (std::vector<std::string>{"last"}));
}

TEST(SpoolSegments, DeliveredRecordsAreNotSentAgainAfterARestart) {
  testing::TempDir dir("spool");
  {
    Spool spool(dir.path().string(), smallSegments());
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(spool.admit(meta("u" + std::to_string(i)), "payload").stored);
    for (int i = 0; i < 2; ++i) {
      auto claimed = spool.claim(0ms);
      ASSERT_TRUE(claimed);
      spool.delivered(*claimed);
    }
  }
  Spool spool(dir.path().string(), smallSegments());
  EXPECT_EQ(drainUids(spool), (std::vector<std::string>{"u2", "u3"}));
}

TEST(SpoolSegments, ATornTailIsNeverDelivered) {
  testing::TempDir dir("spool");
  {
    Spool spool(dir.path().string(), smallSegments());
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(spool.admit(meta("ok" + std::to_string(i)), std::string(500, 'p')).stored);
  }
  std::vector<fs::path> segments;
  for (const auto& segment : filesIn(dir.path() / "queue", ".seg")) {
    if (!scanSegmentFile(segment.string()).records.empty()) segments.push_back(segment);  // not the spare
  }
  ASSERT_EQ(segments.size(), 1u);
  // What a crash in the middle of an append leaves after the last complete record: half a record.
  const SegmentScan before = scanSegmentFile(segments[0].string());
  ASSERT_EQ(before.records.size(), 3u);
  const std::string torn = encodeSpoolRecord(meta("torn"), std::string(5000, 't')).substr(0, 2500);
  {
    std::fstream out(segments[0], std::ios::binary | std::ios::in | std::ios::out);
    out.seekp(static_cast<std::streamoff>(before.end));
    out << torn;
  }
  const SegmentScan after = scanSegmentFile(segments[0].string());
  EXPECT_EQ(after.records.size(), 3u);
  EXPECT_FALSE(after.stopReason.empty());
  Spool spool(dir.path().string(), smallSegments());
  EXPECT_EQ(drainUids(spool), (std::vector<std::string>{"ok0", "ok1", "ok2"}));
}

TEST(SpoolSegments, ConcurrentWritersAllLandIntact) {
  testing::TempDir dir("spool");
  {
    Spool spool(dir.path().string(), smallSegments(256 << 10));
    std::vector<std::thread> writers;
    std::atomic<int> stored{0};
    for (int t = 0; t < 8; ++t) {
      writers.emplace_back([&, t] {
        for (int i = 0; i < 20; ++i) {
          if (spool.admit(meta(std::to_string(t) + "." + std::to_string(i)), std::string(5000 + i, 'z')).stored) {
            ++stored;
          }
        }
      });
    }
    for (auto& w : writers) w.join();
    EXPECT_EQ(stored.load(), 160);
  }
  Spool spool(dir.path().string(), smallSegments(256 << 10));
  auto uids = drainUids(spool);
  EXPECT_EQ(uids.size(), 160u);
  std::sort(uids.begin(), uids.end());
  EXPECT_EQ(std::unique(uids.begin(), uids.end()), uids.end());
}

TEST(SpoolSegments, AnInstanceLargerThanASegmentGetsARecordFile) {
  testing::TempDir dir("spool");
  Spool spool(dir.path().string(), smallSegments(64 << 10));
  ASSERT_TRUE(spool.admit(meta("big"), std::string(100000, 'b')).stored);
  ASSERT_TRUE(spool.admit(meta("small"), "s").stored);
  EXPECT_EQ(filesIn(dir.path() / "queue", ".rec").size(), 1u);
  EXPECT_EQ(drainUids(spool).size(), 2u);
  EXPECT_TRUE(filesIn(dir.path() / "queue", ".rec").empty());
}

TEST(SpoolSegments, DeliveryLogIgnoresTornAndCorruptEntries) {
  std::string log = encodeDeliveryLogEntry(0, 100) + encodeDeliveryLogEntry(100, 200);
  log[17] ^= 1;                                  // the second entry is corrupt
  log += encodeDeliveryLogEntry(300, 50).substr(0, 9);  // and a torn third one
  const auto done = parseDeliveryLog(reinterpret_cast<const std::uint8_t*>(log.data()), log.size());
  EXPECT_EQ(done, (std::set<std::pair<std::uint64_t, std::uint64_t>>{{0, 100}}));
}

}  // namespace
}  // namespace pacsgw::gateway::spool
