// Key-reference format 2: the attributes that decide whose pixels these are and what their values mean
// are bound to the ciphertext. A relabelled object is refused; a re-encoded one still decrypts.
#include "codecs/bound_attributes.h"
#include "codecs/dicom_crypt.h"
#include "codecs/key_reference.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcitem.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcvrobow.h>
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace pacsgw::codecs {
namespace {

constexpr const char* kKeyId = "7a0c1e2d-3b4f-4a5b-8c6d-9e0f1a2b3c4d";

std::string newUid() {
  char uid[100];
  return dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT);
}

std::unique_ptr<DcmDataset> ctSlice() {
  auto ds = std::make_unique<DcmDataset>();
  ds->putAndInsertString(DCM_SOPClassUID, UID_CTImageStorage);
  ds->putAndInsertString(DCM_SOPInstanceUID, newUid().c_str());
  ds->putAndInsertString(DCM_StudyInstanceUID, newUid().c_str());
  ds->putAndInsertString(DCM_SeriesInstanceUID, newUid().c_str());
  ds->putAndInsertString(DCM_FrameOfReferenceUID, newUid().c_str());
  ds->putAndInsertString(DCM_PatientID, "PID-1");
  ds->putAndInsertString(DCM_PatientName, "Doe^Jane");
  ds->putAndInsertString(DCM_RescaleIntercept, "-1024");
  ds->putAndInsertString(DCM_RescaleSlope, "1");
  ds->putAndInsertString(DCM_RescaleType, "HU");
  ds->putAndInsertString(DCM_PixelSpacing, "0.5\\0.5");
  ds->putAndInsertString(DCM_SliceThickness, "1.25");
  ds->putAndInsertString(DCM_ImagePositionPatient, "-250\\-250\\100");
  ds->putAndInsertString(DCM_ImageOrientationPatient, "1\\0\\0\\0\\1\\0");
  ds->putAndInsertString(DCM_WindowCenter, "40");
  ds->putAndInsertString(DCM_WindowWidth, "400");
  ds->putAndInsertString(DCM_ImageLaterality, "L");
  ds->putAndInsertSint16(DCM_PixelPaddingValue, -2000);
  ds->putAndInsertUint16(DCM_Rows, 8);
  ds->putAndInsertUint16(DCM_Columns, 8);
  ds->putAndInsertUint16(DCM_SamplesPerPixel, 1);
  ds->putAndInsertString(DCM_PhotometricInterpretation, "MONOCHROME2");
  ds->putAndInsertUint16(DCM_BitsAllocated, 16);
  ds->putAndInsertUint16(DCM_BitsStored, 16);
  ds->putAndInsertUint16(DCM_HighBit, 15);
  ds->putAndInsertUint16(DCM_PixelRepresentation, 1);
  std::vector<Uint16> px(64);
  for (std::size_t i = 0; i < px.size(); ++i) px[i] = static_cast<Uint16>(i * 977);
  ds->putAndInsertUint16Array(DCM_PixelData, px.data(), px.size());
  return ds;
}

void addVoiLut(DcmDataset& ds, Uint16 first) {
  auto* item = new DcmItem();
  const Uint16 descriptor[3] = {4, first, 16};
  item->putAndInsertUint16Array(DCM_LUTDescriptor, descriptor, 3);
  const Uint16 data[4] = {0, 100, 200, 65535};
  item->putAndInsertUint16Array(DCM_LUTData, data, 4);
  ds.insertSequenceItem(DCM_VOILUTSequence, item);
}

class CodecsBoundAttributes : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { registerKeyReferenceDictionary(); }
  CodecsBoundAttributes() : key_(32) {
    for (std::size_t i = 0; i < 32; ++i) key_.data()[i] = static_cast<std::uint8_t>(0xA0 + i);
    cipher_ = makeCipher("aes-256-gcm");
  }

  std::unique_ptr<DcmDataset> encrypted(int formatVersion = 2) {
    auto ds = ctSlice();
    addVoiLut(*ds, 0);
    EncryptParams params{kKeyId, "STUDY"};
    params.formatVersion = formatVersion;
    encryptDataset(*ds, EXS_LittleEndianExplicit, *cipher_, key_, params);
    return ds;
  }

  KeyLookup keys() {
    return [this](const std::string&) { return key_; };
  }

  // The kind of CryptError decryption throws, or nullopt-like "none" when it succeeds.
  std::string outcome(DcmDataset& ds, E_TransferSyntax xfer = EXS_LittleEndianExplicit) {
    try {
      decryptDataset(ds, xfer, keys());
      return "decrypted";
    } catch (const CryptError& e) {
      return toString(e.kind());
    }
  }

  SecretBytes key_;
  std::unique_ptr<PixelCipher> cipher_;
};

struct Relabel {
  const char* name;
  std::function<void(DcmDataset&)> apply;
};

std::vector<Relabel> relabellings() {
  return {
      {"into another study", [](DcmDataset& d) { d.putAndInsertString(DCM_StudyInstanceUID, newUid().c_str()); }},
      {"into another series", [](DcmDataset& d) { d.putAndInsertString(DCM_SeriesInstanceUID, newUid().c_str()); }},
      {"other frame of reference", [](DcmDataset& d) { d.putAndInsertString(DCM_FrameOfReferenceUID, newUid().c_str()); }},
      {"rescale slope", [](DcmDataset& d) { d.putAndInsertString(DCM_RescaleSlope, "2"); }},
      {"rescale intercept", [](DcmDataset& d) { d.putAndInsertString(DCM_RescaleIntercept, "0"); }},
      {"rescale type", [](DcmDataset& d) { d.putAndInsertString(DCM_RescaleType, "US"); }},
      {"pixel spacing", [](DcmDataset& d) { d.putAndInsertString(DCM_PixelSpacing, "0.25\\0.25"); }},
      {"slice thickness", [](DcmDataset& d) { d.putAndInsertString(DCM_SliceThickness, "5"); }},
      {"image position", [](DcmDataset& d) { d.putAndInsertString(DCM_ImagePositionPatient, "-250\\-250\\110"); }},
      {"image orientation", [](DcmDataset& d) { d.putAndInsertString(DCM_ImageOrientationPatient, "-1\\0\\0\\0\\1\\0"); }},
      {"laterality swapped", [](DcmDataset& d) { d.putAndInsertString(DCM_ImageLaterality, "R"); }},
      {"window center", [](DcmDataset& d) { d.putAndInsertString(DCM_WindowCenter, "400"); }},
      {"window width", [](DcmDataset& d) { d.putAndInsertString(DCM_WindowWidth, "4000"); }},
      {"pixel padding value", [](DcmDataset& d) { d.putAndInsertSint16(DCM_PixelPaddingValue, -1000); }},
      {"rescale slope removed", [](DcmDataset& d) { d.findAndDeleteElement(DCM_RescaleSlope); }},
      {"pixel spacing removed", [](DcmDataset& d) { d.findAndDeleteElement(DCM_PixelSpacing); }},
      {"modality LUT added",
       [](DcmDataset& d) {
         auto* item = new DcmItem();
         item->putAndInsertString(DCM_ModalityLUTType, "HU");
         d.insertSequenceItem(DCM_ModalityLUTSequence, item);
       }},
      {"VOI LUT replaced", [](DcmDataset& d) {
         d.findAndDeleteElement(DCM_VOILUTSequence);
         addVoiLut(d, 10);
       }},
      {"VOI LUT data changed inside the item", [](DcmDataset& d) {
         DcmItem* item = nullptr;
         ASSERT_TRUE(d.findAndGetSequenceItem(DCM_VOILUTSequence, item, 0).good());
         const Uint16 data[4] = {0, 100, 201, 65535};
         item->putAndInsertUint16Array(DCM_LUTData, data, 4);
       }},
      {"per-frame pixel measures added", [](DcmDataset& d) {
         auto* item = new DcmItem();
         DcmItem* measures = nullptr;
         item->findOrCreateSequenceItem(DCM_PixelMeasuresSequence, measures, -2);
         measures->putAndInsertString(DCM_PixelSpacing, "3\\3");
         d.insertSequenceItem(DCM_SharedFunctionalGroupsSequence, item);
       }},
  };
}

TEST_F(CodecsBoundAttributes, EveryRelabellingIsRefusedAsBoundAttributesChanged) {
  const auto original = encrypted();
  for (const auto& r : relabellings()) {
    DcmDataset copy(*original);
    r.apply(copy);
    EXPECT_EQ(outcome(copy), "BoundAttributesChanged") << r.name;
  }
  DcmDataset untouched(*original);
  EXPECT_EQ(outcome(untouched), "decrypted");
}

TEST_F(CodecsBoundAttributes, AForgedDigestStillFailsAuthentication) {
  // Whoever edits the object can recompute the (unkeyed) digest; the associated data still differs.
  const auto original = encrypted();
  for (const auto& r : relabellings()) {
    DcmDataset copy(*original);
    r.apply(copy);
    const auto digest = detail::boundAttributesDigest(detail::canonicalBoundAttributes(copy));
    const auto block = detail::findKeyReferenceBlocks(copy);
    ASSERT_EQ(block.size(), 1u);
    ASSERT_TRUE(copy.putAndInsertUint8Array(DcmTag(detail::keyRefTag(block[0], detail::kKeyRefBoundDigest), EVR_OB), digest.data(),
                                            digest.size())
                    .good());
    EXPECT_EQ(outcome(copy), "AuthenticationFailed") << r.name;
  }
}

TEST_F(CodecsBoundAttributes, UnboundAttributesMayChange) {
  // Patient demographics are corrected by PACS reconciliation; that must not lock the images away.
  const auto original = encrypted();
  DcmDataset copy(*original);
  copy.putAndInsertString(DCM_PatientName, "Doe^Janet");
  copy.putAndInsertString(DCM_PatientID, "PID-2");
  copy.putAndInsertString(DCM_InstitutionName, "Elsewhere");
  copy.putAndInsertString(DCM_StudyDescription, "corrected");
  EXPECT_EQ(outcome(copy), "decrypted");
}

TEST_F(CodecsBoundAttributes, SpellingOfNumbersAndReEncodingDoNotMatter) {
  const auto original = encrypted();
  {
    DcmDataset copy(*original);
    copy.putAndInsertString(DCM_RescaleSlope, "1.0 ");
    copy.putAndInsertString(DCM_RescaleIntercept, "-1024.000");
    copy.putAndInsertString(DCM_PixelSpacing, " 0.50\\.5");
    EXPECT_EQ(outcome(copy), "decrypted");
  }
  // Through a file in implicit VR little endian and in explicit VR big endian and back.
  for (const E_TransferSyntax xfer : {EXS_LittleEndianImplicit, EXS_BigEndianExplicit}) {
    DcmFileFormat out(original.get());
    ASSERT_TRUE(out.chooseRepresentation(xfer, nullptr).good());
    const std::string path = ::testing::TempDir() + "bound-" + std::to_string(static_cast<int>(xfer)) + ".dcm";
    ASSERT_TRUE(out.saveFile(path.c_str(), xfer).good());
    DcmFileFormat in;
    ASSERT_TRUE(in.loadFile(path.c_str()).good());
    EXPECT_EQ(outcome(*in.getDataset(), xfer), "decrypted") << DcmXfer(xfer).getXferName();
    std::remove(path.c_str());
  }
}

TEST_F(CodecsBoundAttributes, FormatOneObjectsKeepDecrypting) {
  const auto v1 = encrypted(1);
  EXPECT_EQ(readKeyReference(*v1).formatVersion, 1);
  DcmDataset copy(*v1);
  EXPECT_EQ(outcome(copy), "decrypted");
  // Format 1 does not bind them: what it cannot detect, the gateway's key-scope check and format 2 do.
  DcmDataset relabelled(*v1);
  relabelled.putAndInsertString(DCM_RescaleSlope, "2");
  EXPECT_EQ(outcome(relabelled), "decrypted");
  DcmDataset moved(*v1);
  moved.putAndInsertString(DCM_SOPInstanceUID, newUid().c_str());
  EXPECT_EQ(outcome(moved), "AuthenticationFailed");
}

TEST_F(CodecsBoundAttributes, TheBoundListIsSortedAndCoversTheDocumentedAttributes) {
  const auto& tags = detail::boundAttributeTags();
  for (std::size_t i = 1; i < tags.size(); ++i) EXPECT_LT(tags[i - 1], tags[i]);
  for (const std::uint32_t t : {0x0020000Du, 0x0020000Eu, 0x00281052u, 0x00281053u, 0x00280030u, 0x00200032u,
                                0x00200037u, 0x00283000u, 0x00283010u, 0x00281050u, 0x00281051u})
    EXPECT_NE(std::find(tags.begin(), tags.end(), t), tags.end()) << std::hex << t;
}

}  // namespace
}  // namespace pacsgw::codecs
