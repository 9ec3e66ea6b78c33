// The file-backed decryption of a retrieved large object: the ciphertext in an unlinked file, the tag
// verified over the file first, then a Pixel Data element that DCMTK reads as plaintext, decrypted from
// the file at every read (also from the middle, also twice). A failed tag leaves the data set as it was
// (the key reference stays) and gives no message to decrypt with.
#include "gateway/large_object_retrieve.h"

#include "codecs/dicom_crypt.h"
#include "codecs/native_pixel_stream.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcelem.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace pacsgw::gateway {
namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr const char* kKeyId = "5b3d2c9f-7e8a-4f32-8d4b-8e3f2a1b5c7d";
constexpr std::uint32_t kRows = 64, kColumns = 64, kFrames = 48;
constexpr std::uint32_t kPixelBytes = kRows * kColumns * kFrames * 2;  // 384 KiB: several pieces of the file

std::string newUid() {
  char buf[100];
  return dcmGenerateUniqueIdentifier(buf, SITE_INSTANCE_UID_ROOT);
}

SecretBytes dataKey() {
  SecretBytes key(32);
  for (std::size_t i = 0; i < key.size(); ++i) key.data()[i] = static_cast<std::uint8_t>(3 * i + 1);
  return key;
}

Bytes pattern(std::size_t n) {
  Bytes out(n);
  std::uint32_t x = 424242u;
  for (auto& b : out) {
    x = x * 1664525u + 1013904223u;
    b = static_cast<std::uint8_t>(x >> 24);
  }
  return out;
}

struct LargeObjectRetrieveTest : ::testing::Test {
  std::string directory = ::testing::TempDir() + "/large-retrieve-" + std::to_string(::getpid());
  Bytes original = pattern(kPixelBytes);
  SecretBytes key = dataKey();
  std::unique_ptr<DcmDataset> dataset = std::make_unique<DcmDataset>();
  std::shared_ptr<SpooledPixelData> spooled;

  // An encrypted object as the receive side leaves it: header in memory, ciphertext in the file.
  void SetUp() override {
    std::filesystem::remove_all(directory);
    dataset->putAndInsertString(DCM_SOPClassUID, UID_EnhancedCTImageStorage);
    dataset->putAndInsertString(DCM_SOPInstanceUID, newUid().c_str());
    dataset->putAndInsertString(DCM_StudyInstanceUID, newUid().c_str());
    dataset->putAndInsertString(DCM_SeriesInstanceUID, newUid().c_str());
    dataset->putAndInsertUint16(DCM_SamplesPerPixel, 1);
    dataset->putAndInsertString(DCM_PhotometricInterpretation, "MONOCHROME2");
    dataset->putAndInsertUint16(DCM_Rows, kRows);
    dataset->putAndInsertUint16(DCM_Columns, kColumns);
    dataset->putAndInsertString(DCM_NumberOfFrames, std::to_string(kFrames).c_str());
    dataset->putAndInsertUint16(DCM_BitsAllocated, 16);
    dataset->putAndInsertUint16(DCM_BitsStored, 16);
    dataset->putAndInsertUint16(DCM_HighBit, 15);
    dataset->putAndInsertUint16(DCM_PixelRepresentation, 0);
    codecs::EncryptParams params;
    params.keyId = kKeyId;
    params.keyScope = "STUDY";
    codecs::NativePixelDataSealer sealer(*dataset, EXS_LittleEndianExplicit, kPixelBytes, key, params);
    Bytes ciphertext(kPixelBytes);
    sealer.seal(original.data(), original.size(), ciphertext.data());
    sealer.finish(*dataset);
    spooled = std::make_shared<SpooledPixelData>(directory, EVR_OW, kPixelBytes);
    ASSERT_TRUE(spooled->reserve());
    for (std::size_t at = 0; at < ciphertext.size(); at += 10000)
      spooled->append(ciphertext.data() + at, std::min<std::size_t>(10000, ciphertext.size() - at));
    ciphertext_ = ciphertext;
  }
  void TearDown() override { std::filesystem::remove_all(directory); }

  codecs::KeyLookup lookup() {
    return [this](const std::string& id) {
      EXPECT_EQ(id, kKeyId);
      return key;
    };
  }
  // The Pixel Data value as DCMTK reads it, `n` bytes from `offset`.
  Bytes readValue(std::uint32_t offset, std::uint32_t n) {
    DcmElement* element = nullptr;
    EXPECT_TRUE(dataset->findAndGetElement(DCM_PixelData, element).good());
    Bytes out(n);
    EXPECT_TRUE(element->getPartialValue(out.data(), offset, n).good());
    return out;
  }
  Bytes ciphertext_;
};

TEST_F(LargeObjectRetrieveTest, TheFileHasNoNameAndHoldsOnlyCiphertext) {
  EXPECT_TRUE(std::filesystem::is_empty(directory)) << "the spool file must be unlinked at once";
  Bytes back(kPixelBytes);
  EXPECT_EQ(spooled->readAt(0, back.data(), back.size()), kPixelBytes);
  EXPECT_EQ(back, ciphertext_);
  EXPECT_NE(back, original);
}

TEST_F(LargeObjectRetrieveTest, VerifiedObjectReadsAsThePlaintextFromAnyOffsetAndTwice) {
  codecs::NativePixelDataOpener opener(*dataset, EXS_LittleEndianExplicit, kPixelBytes, lookup());
  checkSpooledPixelData(*spooled, opener);
  readSpooledPixelDataDecrypted(*dataset, spooled, opener.verify(*dataset));
  EXPECT_FALSE(codecs::hasKeyReference(*dataset));
  EXPECT_EQ(readValue(0, kPixelBytes), original);
  const std::uint32_t middle = kPixelBytes / 2 + 6;
  EXPECT_EQ(readValue(middle, 1000), Bytes(original.begin() + middle, original.begin() + middle + 1000));
  EXPECT_EQ(readValue(0, kPixelBytes), original) << "a second send reads the same plaintext";
  EXPECT_TRUE(std::filesystem::is_empty(directory)) << "no plaintext on disk";
}

TEST_F(LargeObjectRetrieveTest, FailedTagReleasesNothing) {
  // The ciphertext changes after it was received: one byte in the file.
  Bytes changed = ciphertext_;
  changed[kPixelBytes - 3] ^= 0x04;
  spooled = std::make_shared<SpooledPixelData>(directory, EVR_OW, kPixelBytes);
  spooled->append(changed.data(), changed.size());
  codecs::NativePixelDataOpener opener(*dataset, EXS_LittleEndianExplicit, kPixelBytes, lookup());
  checkSpooledPixelData(*spooled, opener);
  try {
    opener.verify(*dataset);
    FAIL() << "a changed byte verified";
  } catch (const codecs::CryptError& e) {
    EXPECT_EQ(e.kind(), codecs::CryptErrorKind::AuthenticationFailed);
  }
  EXPECT_TRUE(codecs::hasKeyReference(*dataset)) << "the object stays as it came";
}

TEST_F(LargeObjectRetrieveTest, AShortFileFailsVerification) {
  spooled = std::make_shared<SpooledPixelData>(directory, EVR_OW, kPixelBytes);
  spooled->append(ciphertext_.data(), kPixelBytes / 2);
  codecs::NativePixelDataOpener opener(*dataset, EXS_LittleEndianExplicit, kPixelBytes, lookup());
  checkSpooledPixelData(*spooled, opener);
  EXPECT_THROW(opener.verify(*dataset), codecs::CryptError);
  EXPECT_TRUE(codecs::hasKeyReference(*dataset));
}

TEST_F(LargeObjectRetrieveTest, AppendingMoreThanAnnouncedIsRefused) {
  auto small = std::make_shared<SpooledPixelData>(directory, EVR_OW, 4);
  const std::uint8_t bytes[6] = {1, 2, 3, 4, 5, 6};
  EXPECT_THROW(small->append(bytes, 6), std::runtime_error);
}

}  // namespace
}  // namespace pacsgw::gateway
