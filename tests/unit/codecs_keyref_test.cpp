// The key-reference private block: write/read/remove, block reservation, and strict validation of
// every field on read.
#include "codecs/dicom_crypt.h"
#include "codecs/key_reference.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcvrat.h>
#include <dcmtk/dcmdata/dcvrlo.h>
#include <dcmtk/dcmdata/dcvrobow.h>
#include <dcmtk/dcmdata/dcvrul.h>
#include <dcmtk/dcmdata/dcvrus.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

namespace pacsgw::codecs {
namespace {

using Bytes = std::vector<std::uint8_t>;
using detail::keyRefTag;

constexpr const char* kKeyId = "0b6d3c1e-8f4a-4c2b-9e7d-5a1f3b2c4d6e";

KeyReference sampleReference() {
  KeyReference ref;
  ref.record.backendId = "aes-256-gcm";
  ref.record.backendVersion = "1";
  ref.record.nonce = Bytes(12, 0x11);
  ref.record.tag = Bytes(16, 0x22);
  ref.record.params = {1, 2, 3, 4};
  ref.keyId = kKeyId;
  ref.keyScope = "INSTANCE";
  ref.originalTransferSyntax = UID_JPEGProcess14SV1TransferSyntax;
  ref.protectedElements = {0x7FE00010u, 0x7FE00008u};
  ref.protectedLengths = {1000u, 64u};
  ref.encryptedAt = "20240131235959.123456+0000";
  ref.boundAttributesDigest = Bytes(32, 0x33);
  return ref;
}

// A small image, encrypted, so that decryptDataset sees the same malformations as readKeyReference.
std::unique_ptr<DcmDataset> encryptedImage(const SecretBytes& key) {
  auto ds = std::make_unique<DcmDataset>();
  char uid[100];
  ds->putAndInsertString(DCM_SOPClassUID, UID_SecondaryCaptureImageStorage);
  ds->putAndInsertString(DCM_SOPInstanceUID, dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT));
  ds->putAndInsertUint16(DCM_Rows, 4);
  ds->putAndInsertUint16(DCM_Columns, 4);
  ds->putAndInsertUint16(DCM_SamplesPerPixel, 1);
  ds->putAndInsertString(DCM_PhotometricInterpretation, "MONOCHROME2");
  ds->putAndInsertUint16(DCM_BitsAllocated, 16);
  ds->putAndInsertUint16(DCM_BitsStored, 16);
  ds->putAndInsertUint16(DCM_HighBit, 15);
  ds->putAndInsertUint16(DCM_PixelRepresentation, 0);
  std::vector<Uint16> px(16);
  for (std::size_t i = 0; i < px.size(); ++i) px[i] = static_cast<Uint16>(i * 4099);
  ds->putAndInsertUint16Array(DCM_PixelData, px.data(), px.size());
  auto cipher = makeCipher("aes-256-gcm");
  encryptDataset(*ds, EXS_LittleEndianExplicit, *cipher, key, EncryptParams{kKeyId, "STUDY"});
  return ds;
}

class CodecsKeyReference : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { registerKeyReferenceDictionary(); }
  CodecsKeyReference() {
    for (std::size_t i = 0; i < 32; ++i) key_.data()[i] = static_cast<std::uint8_t>(i);
  }
  SecretBytes key_{32};
};

TEST_F(CodecsKeyReference, WriteThenReadGivesEveryField) {
  DcmDataset ds;
  const KeyReference ref = sampleReference();
  writeKeyReference(ds, ref);
  EXPECT_TRUE(hasKeyReference(ds));
  OFString creator;
  ASSERT_TRUE(ds.findAndGetOFString(DcmTagKey(0x0077, 0x0010), creator).good());
  EXPECT_EQ(creator, "PACSGW KEYREF 1");
  OFString version;
  ASSERT_TRUE(ds.findAndGetOFString(DcmTagKey(0x0077, 0x100C), version).good());
  EXPECT_EQ(version, "3");

  const KeyReference read = readKeyReference(ds);
  EXPECT_EQ(read.formatVersion, 3);
  EXPECT_EQ(read.boundAttributesDigest, ref.boundAttributesDigest);
  EXPECT_EQ(read.record.backendId, ref.record.backendId);
  EXPECT_EQ(read.record.backendVersion, ref.record.backendVersion);
  EXPECT_EQ(read.record.nonce, ref.record.nonce);
  EXPECT_EQ(read.record.tag, ref.record.tag);
  EXPECT_EQ(read.record.params, ref.record.params);
  EXPECT_EQ(read.keyId, ref.keyId);
  EXPECT_EQ(read.keyScope, ref.keyScope);
  EXPECT_EQ(read.originalTransferSyntax, ref.originalTransferSyntax);
  EXPECT_EQ(read.protectedElements, ref.protectedElements);
  EXPECT_EQ(read.protectedLengths, ref.protectedLengths);
  EXPECT_EQ(read.encryptedAt, ref.encryptedAt);

  removeKeyReference(ds);
  EXPECT_FALSE(hasKeyReference(ds));
  EXPECT_EQ(ds.card(), 0u);
}

TEST_F(CodecsKeyReference, FormatOneBlocksAreStillRead) {
  DcmDataset ds;
  KeyReference ref = sampleReference();
  ref.formatVersion = 1;
  ref.boundAttributesDigest.clear();
  writeKeyReference(ds, ref);
  OFString version;
  ASSERT_TRUE(ds.findAndGetOFString(DcmTagKey(0x0077, 0x100C), version).good());
  EXPECT_EQ(version, "1");
  EXPECT_FALSE(ds.tagExists(DcmTagKey(0x0077, 0x100D)));
  const KeyReference read = readKeyReference(ds);
  EXPECT_EQ(read.formatVersion, 1);
  EXPECT_TRUE(read.boundAttributesDigest.empty());
}

TEST_F(CodecsKeyReference, EmptyParametersSurvive) {
  DcmDataset ds;
  KeyReference ref = sampleReference();
  ref.record.params.clear();
  writeKeyReference(ds, ref);
  EXPECT_TRUE(readKeyReference(ds).record.params.empty());
}

TEST_F(CodecsKeyReference, ReservesTheFirstFreeBlock) {
  DcmDataset ds;
  ds.putAndInsertString(DcmTag(0x0077, 0x0010, EVR_LO), "OTHER VENDOR 3");
  ds.putAndInsertString(DcmTag(0x0077, 0x1001, EVR_LO), "theirs");
  ds.putAndInsertString(DcmTag(0x0077, 0x1120, EVR_LO), "orphan");  // block 0x11 used without creator
  writeKeyReference(ds, sampleReference());
  ASSERT_EQ(detail::findKeyReferenceBlocks(ds), std::vector<std::uint8_t>{0x12});
  OFString creator;
  ds.findAndGetOFString(DcmTagKey(0x0077, 0x0012), creator);
  EXPECT_EQ(creator, "PACSGW KEYREF 1");
  EXPECT_EQ(readKeyReference(ds).keyId, kKeyId);

  removeKeyReference(ds);
  EXPECT_FALSE(hasKeyReference(ds));
  OFString theirs;
  EXPECT_TRUE(ds.findAndGetOFString(DcmTagKey(0x0077, 0x1001), theirs).good());
  EXPECT_EQ(theirs, "theirs");
  EXPECT_EQ(ds.card(), 3u);
}

TEST_F(CodecsKeyReference, FindsBlockReservedElsewhere) {
  DcmDataset ds;
  // Other creators hold blocks 0x10-0x41, so the block lands at 0x42 and must be found there.
  for (Uint16 b = 0x10; b < 0x42; ++b)
    ds.putAndInsertString(DcmTag(0x0077, b, EVR_LO), ("VENDOR " + std::to_string(b)).c_str());
  writeKeyReference(ds, sampleReference());
  ASSERT_EQ(detail::findKeyReferenceBlocks(ds), std::vector<std::uint8_t>{0x42});
  for (Uint16 b = 0x10; b < 0x42; ++b) ds.findAndDeleteElement(DcmTagKey(0x0077, b));
  EXPECT_EQ(readKeyReference(ds).keyId, kKeyId);
  removeKeyReference(ds);
  EXPECT_EQ(ds.card(), 0u);
}

TEST_F(CodecsKeyReference, WriteRefusesSecondBlockOddLengthsAndBadValues) {
  DcmDataset ds;
  writeKeyReference(ds, sampleReference());
  try {
    writeKeyReference(ds, sampleReference());
    FAIL();
  } catch (const CryptError& e) {
    EXPECT_EQ(e.kind(), CryptErrorKind::AlreadyEncrypted);
  }

  auto refused = [](const KeyReference& ref) {
    DcmDataset fresh;
    try {
      writeKeyReference(fresh, ref);
    } catch (const CryptError& e) {
      EXPECT_EQ(fresh.card(), 0u);
      return e.kind() == CryptErrorKind::MalformedKeyReference;
    }
    return false;
  };
  KeyReference r = sampleReference();
  r.record.nonce.push_back(0);
  EXPECT_TRUE(refused(r));
  r = sampleReference();
  r.record.params = {1, 2, 3};
  EXPECT_TRUE(refused(r));
  r = sampleReference();
  r.keyId = "key-1";
  EXPECT_TRUE(refused(r));
  r = sampleReference();
  r.keyScope = "study";
  EXPECT_TRUE(refused(r));
  r = sampleReference();
  r.protectedLengths.pop_back();
  EXPECT_TRUE(refused(r));
  r = sampleReference();
  r.originalTransferSyntax = "1.2.3.4";
  EXPECT_TRUE(refused(r));
  r = sampleReference();
  r.record.backendId = "with\\backslash";
  EXPECT_TRUE(refused(r));
}

// ---- malformed blocks ---------------------------------------------------------------------------------

struct Malformation {
  const char* name;
  std::function<void(DcmDataset&)> apply;
  const char* expectedText;  // must appear in the message
};

DcmTagKey at(std::uint8_t offset) { return keyRefTag(0x10, offset); }

void replace(DcmDataset& ds, DcmElement* e) { ASSERT_TRUE(ds.insert(e, OFTrue).good()); }

void putRaw(DcmDataset& ds, std::uint8_t offset, const Bytes& raw) {
  auto* e = new DcmOtherByteOtherWord(DcmTag(at(offset), EVR_UN));
  e->putUint8Array(raw.data(), raw.size());
  replace(ds, e);
}

std::vector<Malformation> malformations() {
  std::vector<Malformation> m;
  const std::pair<std::uint8_t, const char*> fields[] = {
      {detail::kKeyRefBackendId, "Backend ID"},
      {detail::kKeyRefBackendVersion, "Backend Version"},
      {detail::kKeyRefKeyId, "Key ID"},
      {detail::kKeyRefKeyScope, "Key Scope"},
      {detail::kKeyRefOriginalXfer, "Original Transfer Syntax UID"},
      {detail::kKeyRefProtectedElements, "Protected Elements"},
      {detail::kKeyRefProtectedLengths, "Protected Lengths"},
      {detail::kKeyRefNonce, "Nonce"},
      {detail::kKeyRefTag, "Authentication Tag"},
      {detail::kKeyRefParams, "Backend Parameters"},
      {detail::kKeyRefEncryptedAt, "Encrypted DateTime"},
      {detail::kKeyRefFormatVersionElement, "Key Reference Format Version"},
  };
  for (const auto& [offset, name] : fields) {
    const std::uint8_t o = offset;
    m.push_back({name, [o](DcmDataset& ds) { ds.findAndDeleteElement(at(o)); }, name});
  }
  auto putText = [](std::uint8_t o, DcmEVR vr, std::string v) {
    return [o, vr, v](DcmDataset& ds) { ds.putAndInsertString(DcmTag(at(o), vr), v.c_str()); };
  };
  m.push_back({"empty backend id", putText(detail::kKeyRefBackendId, EVR_LO, ""), "Backend ID"});
  m.push_back({"two backend ids", putText(detail::kKeyRefBackendId, EVR_LO, "aes-256-gcm\\x"), "more than one value"});
  m.push_back({"key id not a UUID", putText(detail::kKeyRefKeyId, EVR_LO, "1234"), "Key ID"});
  m.push_back({"key id too short",
               putText(detail::kKeyRefKeyId, EVR_LO, "0b6d3c1e-8f4a-4c2b-9e7d-5a1f3b2c4d6"), "Key ID"});
  m.push_back({"unknown scope", putText(detail::kKeyRefKeyScope, EVR_CS, "PATIENT"), "Key Scope"});
  m.push_back({"unknown transfer syntax", putText(detail::kKeyRefOriginalXfer, EVR_UI, "1.2.3.4"),
               "Original Transfer Syntax UID"});
  m.push_back({"transfer syntax by name", putText(detail::kKeyRefOriginalXfer, EVR_UI, "LittleEndianExplicit"),
               "Original Transfer Syntax UID"});
  m.push_back({"bad date time", putText(detail::kKeyRefEncryptedAt, EVR_DT, "yesterday"), "Encrypted DateTime"});
  m.push_back({"future format version", putText(detail::kKeyRefFormatVersionElement, EVR_LO, "4"), "Format Version"});
  m.push_back({"format 1 with a digest", putText(detail::kKeyRefFormatVersionElement, EVR_LO, "1"),
               "no Bound Attributes Digest"});
  m.push_back({"format 2 without a digest",
               [](DcmDataset& ds) { ds.findAndDeleteElement(at(detail::kKeyRefBoundDigest)); }, "Bound Attributes Digest"});
  m.push_back({"digest too long",
               [](DcmDataset& ds) {
                 const Bytes b(34, 1);
                 ds.putAndInsertUint8Array(DcmTag(at(detail::kKeyRefBoundDigest), EVR_OB), b.data(), b.size());
               },
               "Bound Attributes Digest"});
  m.push_back({"non-pixel protected element",
               [](DcmDataset& ds) { ds.putAndInsertTagKey(DcmTag(at(detail::kKeyRefProtectedElements), EVR_AT), DCM_PatientName); },
               "Protected Elements"});
  m.push_back({"element and length counts differ",
               [](DcmDataset& ds) {
                 auto* e = new DcmAttributeTag(DcmTag(at(detail::kKeyRefProtectedElements), EVR_AT));
                 e->putTagVal(DCM_PixelData, 0);
                 e->putTagVal(DCM_FloatPixelData, 1);
                 replace(ds, e);
               },
               "value multiplicity"});
  m.push_back({"repeated protected element",
               [](DcmDataset& ds) {
                 auto* e = new DcmAttributeTag(DcmTag(at(detail::kKeyRefProtectedElements), EVR_AT));
                 e->putTagVal(DCM_PixelData, 0);
                 e->putTagVal(DCM_PixelData, 1);
                 replace(ds, e);
                 auto* l = new DcmUnsignedLong(DcmTag(at(detail::kKeyRefProtectedLengths), EVR_UL));
                 l->putUint32(32, 0);
                 l->putUint32(32, 1);
                 replace(ds, l);
               },
               "repeats"});
  m.push_back({"raw tags of odd size", [](DcmDataset& ds) { putRaw(ds, detail::kKeyRefProtectedElements, Bytes(6, 0)); },
               "multiple of 4"});
  m.push_back({"nonce too long",
               [](DcmDataset& ds) {
                 const Bytes b(66, 1);
                 ds.putAndInsertUint8Array(DcmTag(at(detail::kKeyRefNonce), EVR_OB), b.data(), b.size());
               },
               "Nonce"});
  m.push_back({"tag too long",
               [](DcmDataset& ds) {
                 const Bytes b(66, 1);
                 ds.putAndInsertUint8Array(DcmTag(at(detail::kKeyRefTag), EVR_OB), b.data(), b.size());
               },
               "Authentication Tag"});
  m.push_back({"parameters too long",
               [](DcmDataset& ds) {
                 const Bytes b((1u << 20) + 2, 1);
                 ds.putAndInsertUint8Array(DcmTag(at(detail::kKeyRefParams), EVR_OB), b.data(), b.size());
               },
               "Backend Parameters"});
  m.push_back({"wrong VR",
               [](DcmDataset& ds) {
                 auto* e = new DcmUnsignedShort(DcmTag(at(detail::kKeyRefBackendId), EVR_US));
                 e->putUint16(5);
                 replace(ds, e);
               },
               "has VR US"});
  m.push_back({"unknown element", putText(0x1F, EVR_LO, "surprise"), "unknown element (0077,101F)"});
  m.push_back({"second block",
               [](DcmDataset& ds) { ds.putAndInsertString(DcmTag(0x0077, 0x0020, EVR_LO), "PACSGW KEYREF 1"); },
               "more than one block"});
  return m;
}

TEST_F(CodecsKeyReference, EveryMalformationIsNamed) {
  const auto encrypted = encryptedImage(key_);
  ASSERT_EQ(detail::findKeyReferenceBlocks(*encrypted), std::vector<std::uint8_t>{0x10});
  for (const auto& m : malformations()) {
    DcmDataset ds(*encrypted);
    m.apply(ds);
    try {
      readKeyReference(ds);
      ADD_FAILURE() << m.name << ": accepted";
    } catch (const CryptError& e) {
      EXPECT_EQ(e.kind(), CryptErrorKind::MalformedKeyReference) << m.name << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find(m.expectedText), std::string::npos) << m.name << ": " << e.what();
    }
    try {
      decryptDataset(ds, EXS_LittleEndianExplicit, [this](const std::string&) { return key_; });
      ADD_FAILURE() << m.name << ": decrypted";
    } catch (const CryptError& e) {
      EXPECT_EQ(e.kind(), CryptErrorKind::MalformedKeyReference) << m.name << ": " << e.what();
    }
  }
  // The untouched object still decrypts.
  DcmDataset ok(*encrypted);
  EXPECT_NO_THROW(decryptDataset(ok, EXS_LittleEndianExplicit, [this](const std::string&) { return key_; }));
}

TEST_F(CodecsKeyReference, ReadingWithoutABlock) {
  DcmDataset ds;
  try {
    readKeyReference(ds);
    FAIL();
  } catch (const CryptError& e) {
    EXPECT_EQ(e.kind(), CryptErrorKind::NotEncrypted);
  }
  EXPECT_FALSE(hasKeyReference(ds));
  EXPECT_NO_THROW(removeKeyReference(ds));
}

TEST_F(CodecsKeyReference, DictionaryKnowsTheAttributes) {
  registerKeyReferenceDictionary();  // idempotent
  const DcmTag tag(DcmTagKey(0x0077, 0x1006), "PACSGW KEYREF 1");
  EXPECT_EQ(tag.getEVR(), EVR_AT);
  DcmTag other(DcmTagKey(0x0077, 0x3308), "PACSGW KEYREF 1");  // any block
  EXPECT_EQ(other.getEVR(), EVR_OB);
  EXPECT_STREQ(other.getTagName(), "PacsgwNonce");
}

}  // namespace
}  // namespace pacsgw::codecs
