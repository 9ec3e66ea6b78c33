// Dataset-level encryption: bit-exact round trips through every native syntax and RLE / JPEG lossless,
// and refusal of every alteration, relabelling, truncation and misuse.
#include "codecs/backend_key.h"
#include "codecs/dicom_crypt.h"
#include "codecs/key_reference.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcrleerg.h>
#include <dcmtk/dcmdata/dcrlerp.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcvrobow.h>
#include <dcmtk/dcmdata/dcvrof.h>
#include <dcmtk/dcmdata/dcvrod.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpeg/djencode.h>
#include <dcmtk/dcmjpeg/djrplol.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <functional>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

namespace pacsgw::codecs {
namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr const char* kKeyId = "3f1c2a9e-5b7d-4e21-9c3a-7d2e1f0a4b6c";
constexpr const char* kOtherKeyId = "9a8b7c6d-1e2f-4a3b-8c9d-0e1f2a3b4c5d";

struct ImageSpec {
  std::uint16_t rows = 16;
  std::uint16_t columns = 16;
  std::uint16_t bitsAllocated = 16;
  std::uint16_t bitsStored = 12;
  std::uint16_t pixelRepresentation = 0;
  std::uint16_t samplesPerPixel = 1;
  std::uint16_t planarConfiguration = 0;
  std::uint32_t frames = 1;
  std::string photometric = "MONOCHROME2";
  bool ob = true;  // 8-bit data as OB (else OW)
};

std::string newUid() {
  char buf[100];
  return dcmGenerateUniqueIdentifier(buf, SITE_INSTANCE_UID_ROOT);
}

void putCommon(DcmDataset& ds, const char* sopClass) {
  ds.putAndInsertString(DCM_SOPClassUID, sopClass);
  ds.putAndInsertString(DCM_SOPInstanceUID, newUid().c_str());
  ds.putAndInsertString(DCM_StudyInstanceUID, newUid().c_str());
  ds.putAndInsertString(DCM_SeriesInstanceUID, newUid().c_str());
  ds.putAndInsertString(DCM_PatientName, "Test^Patient");
  ds.putAndInsertString(DCM_PatientID, "PID-0001");
  ds.putAndInsertString(DCM_Modality, "OT");
}

// Deterministic pseudo-random sample bytes, so that fixtures differ from each other.
Bytes pattern(std::size_t n, std::uint32_t seed) {
  Bytes out(n);
  std::uint32_t x = seed * 2654435761u + 12345u;
  for (auto& b : out) {
    x = x * 1664525u + 1013904223u;
    b = static_cast<std::uint8_t>(x >> 24);
  }
  return out;
}

std::unique_ptr<DcmFileFormat> makeImage(const ImageSpec& s, std::uint32_t seed = 1) {
  auto ff = std::make_unique<DcmFileFormat>();
  DcmDataset& ds = *ff->getDataset();
  putCommon(ds, s.frames > 1 ? UID_MultiframeGrayscaleWordSecondaryCaptureImageStorage
                             : UID_SecondaryCaptureImageStorage);
  ds.putAndInsertUint16(DCM_Rows, s.rows);
  ds.putAndInsertUint16(DCM_Columns, s.columns);
  ds.putAndInsertUint16(DCM_SamplesPerPixel, s.samplesPerPixel);
  ds.putAndInsertString(DCM_PhotometricInterpretation, s.photometric.c_str());
  ds.putAndInsertUint16(DCM_BitsAllocated, s.bitsAllocated);
  ds.putAndInsertUint16(DCM_BitsStored, s.bitsStored);
  ds.putAndInsertUint16(DCM_HighBit, static_cast<Uint16>(s.bitsStored - 1));
  ds.putAndInsertUint16(DCM_PixelRepresentation, s.pixelRepresentation);
  if (s.samplesPerPixel > 1) ds.putAndInsertUint16(DCM_PlanarConfiguration, s.planarConfiguration);
  if (s.frames > 1) ds.putAndInsertString(DCM_NumberOfFrames, std::to_string(s.frames).c_str());

  const std::size_t n = std::size_t{s.rows} * s.columns * s.samplesPerPixel * s.frames * s.bitsAllocated / 8;
  Bytes bytes = pattern(n, seed);
  // Keep samples within Bits Stored so that lossless codecs reproduce them exactly.
  if (s.bitsAllocated == 16) {
    std::vector<Uint16> words(n / 2);
    for (std::size_t i = 0; i < words.size(); ++i)
      words[i] = static_cast<Uint16>((bytes[2 * i] | (bytes[2 * i + 1] << 8)) & ((1u << s.bitsStored) - 1));
    EXPECT_TRUE(ds.putAndInsertUint16Array(DCM_PixelData, words.data(), words.size()).good());
  } else {
    auto* pd = new DcmPixelData(DcmTag(DCM_PixelData, s.ob ? EVR_OB : EVR_OW));
    EXPECT_TRUE(pd->putUint8Array(bytes.data(), bytes.size()).good());
    EXPECT_TRUE(ds.insert(pd, OFTrue).good());
  }
  return ff;
}

std::unique_ptr<DcmFileFormat> makeFloatImage(bool doublePrecision, std::uint16_t frames = 2) {
  auto ff = std::make_unique<DcmFileFormat>();
  DcmDataset& ds = *ff->getDataset();
  putCommon(ds, UID_ParametricMapStorage);
  ds.putAndInsertUint16(DCM_Rows, 5);
  ds.putAndInsertUint16(DCM_Columns, 7);
  ds.putAndInsertUint16(DCM_SamplesPerPixel, 1);
  ds.putAndInsertString(DCM_PhotometricInterpretation, "MONOCHROME2");
  ds.putAndInsertUint16(DCM_BitsAllocated, doublePrecision ? 64 : 32);
  ds.putAndInsertString(DCM_NumberOfFrames, std::to_string(frames).c_str());
  const std::size_t n = 5u * 7u * frames;
  if (doublePrecision) {
    std::vector<Float64> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = -1.5e300 + static_cast<double>(i) * 3.25e298;
    auto* e = new DcmOtherDouble(DcmTag(DCM_DoubleFloatPixelData, EVR_OD));
    EXPECT_TRUE(e->putFloat64Array(v.data(), v.size()).good());
    EXPECT_TRUE(ds.insert(e, OFTrue).good());
  } else {
    std::vector<Float32> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<float>(i) * 0.37f - 11.0f;
    auto* e = new DcmOtherFloat(DcmTag(DCM_FloatPixelData, EVR_OF));
    EXPECT_TRUE(e->putFloat32Array(v.data(), v.size()).good());
    EXPECT_TRUE(ds.insert(e, OFTrue).good());
  }
  return ff;
}

std::string tempPath(const char* stem) {
  static std::atomic<int> counter{0};
  return ::testing::TempDir() + "/pacsgw_codecs_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) +
         "_" + stem + ".dcm";
}

Bytes fileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The dataset as it would go on the wire in `xfer`.
Bytes serialize(DcmDataset& ds, E_TransferSyntax xfer) {
  const std::string path = tempPath("ser");
  EXPECT_TRUE(ds.saveFile(path.c_str(), xfer).good());
  Bytes out = fileBytes(path);
  std::remove(path.c_str());
  return out;
}

std::unique_ptr<DcmFileFormat> saveLoad(DcmFileFormat& ff, E_TransferSyntax xfer) {
  const std::string path = tempPath("file");
  const OFCondition saved = ff.saveFile(path.c_str(), xfer);
  EXPECT_TRUE(saved.good()) << saved.text();
  auto out = std::make_unique<DcmFileFormat>();
  const OFCondition loaded = out->loadFile(path.c_str());
  EXPECT_TRUE(loaded.good()) << loaded.text();
  out->loadAllDataIntoMemory();
  std::remove(path.c_str());
  return out;
}

DcmPixelSequence* pixelSequence(DcmDataset& ds) {
  DcmElement* e = nullptr;
  if (ds.findAndGetElement(DCM_PixelData, e).bad()) return nullptr;
  auto* pd = dynamic_cast<DcmPixelData*>(e);
  E_TransferSyntax type = EXS_Unknown;
  const DcmRepresentationParameter* param = nullptr;
  pd->getCurrentRepresentationKey(type, param);
  DcmPixelSequence* seq = nullptr;
  if (!DcmXfer(type).isEncapsulated() || pd->getEncapsulatedRepresentation(type, param, seq).bad()) return nullptr;
  return seq;
}

// Native: sample bytes in little-endian order. Encapsulated: every item (offset table too), length-prefixed.
Bytes snapshot(DcmDataset& ds) {
  if (DcmPixelSequence* seq = pixelSequence(ds)) {
    Bytes out;
    for (unsigned long i = 0; i < seq->card(); ++i) {
      DcmPixelItem* item = nullptr;
      Uint8* p = nullptr;
      EXPECT_TRUE(seq->getItem(item, i).good());
      item->getUint8Array(p);
      const Uint32 n = item->getLengthField();
      for (int b = 0; b < 4; ++b) out.push_back(static_cast<std::uint8_t>(n >> (8 * b)));
      if (n > 0) out.insert(out.end(), p, p + n);
    }
    return out;
  }
  DcmElement* e = nullptr;
  Uint8* p = nullptr;
  if (ds.findAndGetElement(DCM_PixelData, e).good()) {
    e->getUint8Array(p);
    return Bytes(p, p + e->getLengthField());
  }
  if (ds.findAndGetElement(DCM_FloatPixelData, e).good()) {
    Float32* f = nullptr;
    e->getFloat32Array(f);
    return Bytes(reinterpret_cast<Uint8*>(f), reinterpret_cast<Uint8*>(f) + e->getLengthField());
  }
  if (ds.findAndGetElement(DCM_DoubleFloatPixelData, e).good()) {
    Float64* f = nullptr;
    e->getFloat64Array(f);
    return Bytes(reinterpret_cast<Uint8*>(f), reinterpret_cast<Uint8*>(f) + e->getLengthField());
  }
  return {};
}

// A writable view of the protected bytes (native value or one fragment).
std::pair<Uint8*, Uint32> protectedBytes(DcmDataset& ds, unsigned long fragment = 1) {
  if (DcmPixelSequence* seq = pixelSequence(ds)) {
    DcmPixelItem* item = nullptr;
    Uint8* p = nullptr;
    seq->getItem(item, fragment);
    item->getUint8Array(p);
    return {p, item->getLengthField()};
  }
  DcmElement* e = nullptr;
  Uint8* p = nullptr;
  ds.findAndGetElement(DCM_PixelData, e);
  e->getUint8Array(p);
  return {p, e->getLengthField()};
}

DcmTagKey field(DcmDataset& ds, std::uint8_t offset) {
  const auto blocks = detail::findKeyReferenceBlocks(ds);
  EXPECT_EQ(blocks.size(), 1u);
  return detail::keyRefTag(blocks.empty() ? 0x10 : blocks.front(), offset);
}

void flipFieldByte(DcmDataset& ds, std::uint8_t offset, std::size_t index) {
  DcmElement* e = nullptr;
  ASSERT_TRUE(ds.findAndGetElement(field(ds, offset), e).good());
  Uint8* p = nullptr;
  ASSERT_TRUE(e->getUint8Array(p).good());
  ASSERT_LT(index, e->getLengthField());
  p[index] ^= 0x01;
}

// Rewrites every element of the key-reference block (and its creator) as UN holding the
// little-endian value bytes, as a store that never knew the private dictionary would.
void keyReferenceToUn(DcmDataset& ds) {
  const std::uint8_t block = detail::findKeyReferenceBlocks(ds).front();
  std::vector<DcmElement*> elements;
  for (DcmObject* o = ds.nextInContainer(nullptr); o != nullptr; o = ds.nextInContainer(o)) {
    const DcmTagKey k = o->getTag();
    if (k.getGroup() == kKeyRefGroup && (k.getElement() == block || (k.getElement() >> 8) == block))
      elements.push_back(dynamic_cast<DcmElement*>(o));
  }
  for (DcmElement* e : elements) {
    Bytes raw;
    switch (e->getVR()) {
      case EVR_AT:
        for (unsigned long i = 0; i < e->getVM(); ++i) {
          DcmTagKey t;
          e->getTagVal(t, i);
          for (Uint16 v : {t.getGroup(), t.getElement()}) raw.insert(raw.end(), {Uint8(v & 0xFF), Uint8(v >> 8)});
        }
        break;
      case EVR_UL:
        for (unsigned long i = 0; i < e->getVM(); ++i) {
          Uint32 v = 0;
          e->getUint32(v, i);
          for (int b = 0; b < 4; ++b) raw.push_back(static_cast<Uint8>(v >> (8 * b)));
        }
        break;
      case EVR_OB: {
        Uint8* p = nullptr;
        e->getUint8Array(p);
        if (e->getLengthField() > 0) raw.assign(p, p + e->getLengthField());
        break;
      }
      default: {
        OFString s;
        e->getOFStringArray(s);
        raw.assign(s.begin(), s.end());
        if (raw.size() % 2) raw.push_back(e->getVR() == EVR_UI ? 0 : ' ');
      }
    }
    const DcmTagKey key = e->getTag();
    ASSERT_TRUE(ds.findAndDeleteElement(key).good());
    auto* un = new DcmOtherByteOtherWord(DcmTag(key, EVR_UN));
    if (raw.empty())
      un->putUint8Array(nullptr, 0);
    else
      un->putUint8Array(raw.data(), raw.size());
    ASSERT_TRUE(ds.insert(un, OFTrue).good());
  }
}

class CodecsDataset : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    registerKeyReferenceDictionary();
    DcmRLEEncoderRegistration::registerCodecs();
    DcmRLEDecoderRegistration::registerCodecs();
    DJEncoderRegistration::registerCodecs();
    DJDecoderRegistration::registerCodecs();
  }
  static void TearDownTestSuite() {
    DJDecoderRegistration::cleanup();
    DJEncoderRegistration::cleanup();
    DcmRLEDecoderRegistration::cleanup();
    DcmRLEEncoderRegistration::cleanup();
  }

  CodecsDataset() {
    for (std::size_t i = 0; i < 32; ++i) {
      key_.data()[i] = static_cast<std::uint8_t>(0xA0 + i);
      otherKey_.data()[i] = static_cast<std::uint8_t>(0x10 + 3 * i);
    }
  }

  KeyLookup keys() const {
    return [this](const std::string& id) -> SecretBytes {
      if (id == kKeyId) return key_;
      if (id == kOtherKeyId) return otherKey_;
      throw CryptError(CryptErrorKind::UnknownKey, "no key " + id);
    };
  }

  KeyReference encrypt(DcmDataset& ds, E_TransferSyntax xfer, const std::string& scope = "STUDY") {
    return encryptDataset(ds, xfer, *cipher_, key_, EncryptParams{kKeyId, scope});
  }

  CryptErrorKind decryptError(DcmDataset& ds, E_TransferSyntax xfer, const KeyLookup& lookup = {}) {
    try {
      decryptDataset(ds, xfer, lookup ? lookup : keys());
    } catch (const CryptError& e) {
      lastMessage_ = e.what();
      return e.kind();
    }
    ADD_FAILURE() << "decryption unexpectedly succeeded";
    return CryptErrorKind::NotEncrypted;
  }

  CryptErrorKind encryptError(DcmDataset& ds, E_TransferSyntax xfer) {
    try {
      encrypt(ds, xfer);
    } catch (const CryptError& e) {
      lastMessage_ = e.what();
      return e.kind();
    }
    ADD_FAILURE() << "encryption unexpectedly succeeded";
    return CryptErrorKind::NotEncrypted;
  }

  // Encrypts in `xfer`, stores and reloads in `storeAs`, decrypts, and expects the object to be
  // byte-for-byte what it was, in `storeAs` encoding and in sample values. Returns the decrypted copy.
  std::unique_ptr<DcmFileFormat> expectRoundTrip(DcmFileFormat& ff, E_TransferSyntax xfer, E_TransferSyntax storeAs) {
    DcmDataset& ds = *ff.getDataset();
    const Bytes encoded = serialize(ds, storeAs);
    const Bytes pixels = snapshot(ds);
    EXPECT_FALSE(pixels.empty());

    const KeyReference ref = encrypt(ds, xfer);
    EXPECT_TRUE(hasKeyReference(ds));
    EXPECT_EQ(ref.originalTransferSyntax, DcmXfer(xfer).getXferID());
    const Bytes ciphertext = snapshot(ds);
    EXPECT_EQ(ciphertext.size(), pixels.size());
    EXPECT_NE(ciphertext, pixels);

    auto reloaded = saveLoad(ff, storeAs);
    DcmDataset& rd = *reloaded->getDataset();
    EXPECT_EQ(rd.getOriginalXfer(), storeAs);
    EXPECT_EQ(snapshot(rd), ciphertext);
    const KeyReference stored = readKeyReference(rd);
    EXPECT_EQ(stored.record.nonce, ref.record.nonce);
    EXPECT_EQ(stored.record.tag, ref.record.tag);
    EXPECT_EQ(stored.keyId, ref.keyId);

    EXPECT_EQ(decryptDataset(rd, rd.getOriginalXfer(), keys()), xfer);
    EXPECT_FALSE(hasKeyReference(rd));
    EXPECT_EQ(snapshot(rd), pixels);
    EXPECT_EQ(serialize(rd, storeAs), encoded);
    return reloaded;
  }

  std::unique_ptr<DcmFileFormat> makeRle(const ImageSpec& spec, std::uint32_t seed = 7) {
    auto ff = makeImage(spec, seed);
    DcmRLERepresentationParameter param;
    EXPECT_TRUE(ff->getDataset()->chooseRepresentation(EXS_RLELossless, &param).good());
    EXPECT_TRUE(ff->getDataset()->canWriteXfer(EXS_RLELossless));
    return ff;
  }

  std::unique_ptr<PixelCipher> cipher_ = makeCipher("aes-256-gcm");
  SecretBytes key_{32};
  SecretBytes otherKey_{32};
  std::string lastMessage_;
};

// ---- round trips --------------------------------------------------------------------------------------

TEST_F(CodecsDataset, Monochrome8BitOddSizeKeepsPadByte) {
  ImageSpec s;
  s.rows = 3;
  s.columns = 5;
  s.bitsAllocated = 8;
  s.bitsStored = 8;
  auto ff = makeImage(s);
  EXPECT_EQ(snapshot(*ff->getDataset()).size(), 16u);  // 15 samples + pad byte
  expectRoundTrip(*ff, EXS_LittleEndianExplicit, EXS_LittleEndianExplicit);
}

TEST_F(CodecsDataset, Monochrome8BitAsOwImplicit) {
  ImageSpec s;
  s.bitsAllocated = 8;
  s.bitsStored = 8;
  s.ob = false;
  auto ff = makeImage(s);
  expectRoundTrip(*ff, EXS_LittleEndianExplicit, EXS_LittleEndianImplicit);
}

TEST_F(CodecsDataset, Monochrome16BitSigned) {
  ImageSpec s;
  s.pixelRepresentation = 1;
  s.bitsStored = 16;
  auto ff = makeImage(s, 3);
  expectRoundTrip(*ff, EXS_LittleEndianExplicit, EXS_LittleEndianExplicit);
}

TEST_F(CodecsDataset, Monochrome16BitUnsigned12Stored) {
  auto ff = makeImage(ImageSpec{}, 4);
  expectRoundTrip(*ff, EXS_LittleEndianExplicit, EXS_LittleEndianImplicit);
}

TEST_F(CodecsDataset, RgbInterleavedAndPlanar) {
  for (std::uint16_t planar : {0, 1}) {
    ImageSpec s;
    s.bitsAllocated = 8;
    s.bitsStored = 8;
    s.samplesPerPixel = 3;
    s.photometric = "RGB";
    s.planarConfiguration = planar;
    auto ff = makeImage(s, 10 + planar);
    expectRoundTrip(*ff, EXS_LittleEndianExplicit, EXS_LittleEndianExplicit);
  }
}

TEST_F(CodecsDataset, MultiFrameThroughEveryNativeSyntax) {
  for (E_TransferSyntax storeAs : {EXS_LittleEndianImplicit, EXS_LittleEndianExplicit, EXS_BigEndianExplicit,
                                   EXS_DeflatedLittleEndianExplicit, EXS_PrivateGE_LEI_WithBigEndianPixelData}) {
    ImageSpec s;
    s.rows = 20;
    s.columns = 12;
    s.frames = 7;
    s.bitsStored = 16;
    auto ff = makeImage(s, 20 + storeAs);
    SCOPED_TRACE(DcmXfer(storeAs).getXferName());
    expectRoundTrip(*ff, EXS_LittleEndianExplicit, storeAs);
  }
}

TEST_F(CodecsDataset, BigEndianSourceObject) {
  ImageSpec s;
  s.frames = 3;
  s.bitsStored = 16;
  s.pixelRepresentation = 1;
  auto original = makeImage(s, 30);
  const Bytes samples = snapshot(*original->getDataset());
  for (E_TransferSyntax storeAs : {EXS_BigEndianExplicit, EXS_LittleEndianExplicit}) {
    auto be = saveLoad(*original, EXS_BigEndianExplicit);
    ASSERT_EQ(be->getDataset()->getOriginalXfer(), EXS_BigEndianExplicit);
    EXPECT_EQ(snapshot(*be->getDataset()), samples);  // DCMTK hands us little-endian samples
    expectRoundTrip(*be, EXS_BigEndianExplicit, storeAs);
  }
}

TEST_F(CodecsDataset, UnusualBitDepthsThroughEveryNativeSyntax) {
  struct Depth {
    std::uint16_t allocated, stored;
    bool ob;
  };
  for (const Depth d : {Depth{1, 1, true}, Depth{8, 8, false}, Depth{32, 32, false}, Depth{32, 24, true}}) {
    for (E_TransferSyntax storeAs : {EXS_LittleEndianImplicit, EXS_BigEndianExplicit}) {
      ImageSpec s;
      s.rows = 8;
      s.columns = 10;
      s.frames = 3;
      s.bitsAllocated = d.allocated;
      s.bitsStored = d.stored;
      s.ob = d.ob;
      auto ff = makeImage(s, 90 + d.allocated);
      SCOPED_TRACE(std::to_string(d.allocated) + " bits, " + DcmXfer(storeAs).getXferName());
      expectRoundTrip(*ff, EXS_LittleEndianExplicit, storeAs);
    }
  }
}

TEST_F(CodecsDataset, FloatAndDoubleFloatPixelData) {
  for (bool dbl : {false, true}) {
    for (E_TransferSyntax storeAs : {EXS_LittleEndianExplicit, EXS_BigEndianExplicit, EXS_LittleEndianImplicit}) {
      auto ff = makeFloatImage(dbl);
      SCOPED_TRACE(std::string(dbl ? "OD " : "OF ") + DcmXfer(storeAs).getXferName());
      expectRoundTrip(*ff, EXS_LittleEndianExplicit, storeAs);
    }
  }
}

TEST_F(CodecsDataset, FloatKeyReferenceRecordsFloatElement) {
  auto ff = makeFloatImage(false);
  const KeyReference ref = encrypt(*ff->getDataset(), EXS_LittleEndianExplicit);
  ASSERT_EQ(ref.protectedElements.size(), 1u);
  EXPECT_EQ(ref.protectedElements[0], 0x7FE00008u);
  EXPECT_EQ(ref.protectedLengths[0], 5u * 7u * 2u * 4u);
}

TEST_F(CodecsDataset, RleFragmentsRoundTripAndDecode) {
  ImageSpec s;
  s.rows = 24;
  s.columns = 18;
  s.frames = 3;
  auto ff = makeRle(s);
  DcmDataset& ds = *ff->getDataset();
  ASSERT_NE(pixelSequence(ds), nullptr);
  // The clear native copy DCMTK kept while encoding must not survive next to the ciphertext.
  const Bytes fragments = snapshot(ds);
  auto expectedNative = makeImage(s, 7);
  const Bytes samples = snapshot(*expectedNative->getDataset());

  const KeyReference ref = encrypt(ds, EXS_RLELossless);
  EXPECT_EQ(ref.protectedElements, std::vector<std::uint32_t>{0x7FE00010u});
  DcmElement* e = nullptr;
  ASSERT_TRUE(ds.findAndGetElement(DCM_PixelData, e).good());
  EXPECT_FALSE(dynamic_cast<DcmPixelData*>(e)->hasRepresentation(EXS_LittleEndianExplicit));
  const Bytes ciphertext = snapshot(ds);
  ASSERT_EQ(ciphertext.size(), fragments.size());
  EXPECT_NE(ciphertext, fragments);

  auto reloaded = saveLoad(*ff, EXS_RLELossless);
  DcmDataset& rd = *reloaded->getDataset();
  EXPECT_EQ(snapshot(rd), ciphertext);
  EXPECT_EQ(decryptDataset(rd, rd.getOriginalXfer(), keys()), EXS_RLELossless);
  EXPECT_EQ(snapshot(rd), fragments);
  ASSERT_TRUE(rd.chooseRepresentation(EXS_LittleEndianExplicit, nullptr).good());
  EXPECT_EQ(snapshot(rd), samples);
}

TEST_F(CodecsDataset, JpegLosslessFragmentsRoundTrip) {
  ImageSpec s;
  s.rows = 32;
  s.columns = 32;
  s.bitsAllocated = 8;
  s.bitsStored = 8;
  auto ff = makeImage(s, 40);
  DcmDataset& ds = *ff->getDataset();
  const Bytes samples = snapshot(ds);
  DJ_RPLossless param;
  ASSERT_TRUE(ds.chooseRepresentation(EXS_JPEGProcess14SV1, &param).good());
  ASSERT_TRUE(ds.canWriteXfer(EXS_JPEGProcess14SV1));
  auto jpeg = saveLoad(*ff, EXS_JPEGProcess14SV1);
  auto decrypted = expectRoundTrip(*jpeg, EXS_JPEGProcess14SV1, EXS_JPEGProcess14SV1);
  ASSERT_TRUE(decrypted->getDataset()->chooseRepresentation(EXS_LittleEndianExplicit, nullptr).good());
  EXPECT_EQ(snapshot(*decrypted->getDataset()), samples);
}

TEST_F(CodecsDataset, ImplicitVrObjectsParseTheKeyReference) {
  auto ff = makeImage(ImageSpec{}, 50);
  encrypt(*ff->getDataset(), EXS_LittleEndianExplicit);
  auto reloaded = saveLoad(*ff, EXS_LittleEndianImplicit);
  DcmDataset& rd = *reloaded->getDataset();
  const std::map<std::uint8_t, DcmEVR> expected{
      {detail::kKeyRefBackendId, EVR_LO},        {detail::kKeyRefBackendVersion, EVR_LO},
      {detail::kKeyRefKeyId, EVR_LO},            {detail::kKeyRefKeyScope, EVR_CS},
      {detail::kKeyRefOriginalXfer, EVR_UI},     {detail::kKeyRefProtectedElements, EVR_AT},
      {detail::kKeyRefProtectedLengths, EVR_UL}, {detail::kKeyRefNonce, EVR_OB},
      {detail::kKeyRefTag, EVR_OB},              {detail::kKeyRefParams, EVR_OB},
      {detail::kKeyRefEncryptedAt, EVR_DT},      {detail::kKeyRefFormatVersionElement, EVR_LO}};
  for (const auto& [offset, vr] : expected) {
    DcmElement* e = nullptr;
    ASSERT_TRUE(rd.findAndGetElement(field(rd, offset), e).good()) << int(offset);
    EXPECT_EQ(e->getVR(), vr) << int(offset);
  }
  EXPECT_EQ(decryptDataset(rd, rd.getOriginalXfer(), keys()), EXS_LittleEndianExplicit);
}

TEST_F(CodecsDataset, UnknownVrKeyReferenceIsReadRaw) {
  auto ff = makeImage(ImageSpec{}, 51);
  const Bytes pixels = snapshot(*ff->getDataset());
  const KeyReference ref = encrypt(*ff->getDataset(), EXS_LittleEndianExplicit);
  keyReferenceToUn(*ff->getDataset());
  auto reloaded = saveLoad(*ff, EXS_LittleEndianExplicit);
  DcmDataset& rd = *reloaded->getDataset();
  DcmElement* e = nullptr;
  ASSERT_TRUE(rd.findAndGetElement(field(rd, detail::kKeyRefProtectedElements), e).good());
  EXPECT_EQ(e->getVR(), EVR_UN);
  const KeyReference read = readKeyReference(rd);
  EXPECT_EQ(read.record.backendId, ref.record.backendId);
  EXPECT_EQ(read.keyId, ref.keyId);
  EXPECT_EQ(read.keyScope, ref.keyScope);
  EXPECT_EQ(read.originalTransferSyntax, ref.originalTransferSyntax);
  EXPECT_EQ(read.protectedElements, ref.protectedElements);
  EXPECT_EQ(read.protectedLengths, ref.protectedLengths);
  EXPECT_EQ(read.record.nonce, ref.record.nonce);
  EXPECT_EQ(read.record.tag, ref.record.tag);
  EXPECT_EQ(read.encryptedAt, ref.encryptedAt);
  decryptDataset(rd, rd.getOriginalXfer(), keys());
  EXPECT_FALSE(hasKeyReference(rd));
  EXPECT_EQ(snapshot(rd), pixels);
}

TEST_F(CodecsDataset, KeepsEveryStandardAttributeAndUid) {
  auto ff = makeImage(ImageSpec{}, 52);
  DcmDataset& ds = *ff->getDataset();
  OFString sop, study, series;
  ds.findAndGetOFString(DCM_SOPInstanceUID, sop);
  ds.findAndGetOFString(DCM_StudyInstanceUID, study);
  ds.findAndGetOFString(DCM_SeriesInstanceUID, series);
  const unsigned long before = ds.card();
  const KeyReference ref = encrypt(ds, EXS_LittleEndianExplicit, "series");
  EXPECT_EQ(ref.keyScope, "SERIES");
  EXPECT_EQ(ds.card(), before + 14);  // creator + 13 elements
  OFString value;
  ds.findAndGetOFString(DCM_SOPInstanceUID, value);
  EXPECT_EQ(value, sop);
  ds.findAndGetOFString(DCM_StudyInstanceUID, value);
  EXPECT_EQ(value, study);
  ds.findAndGetOFString(DCM_SeriesInstanceUID, value);
  EXPECT_EQ(value, series);
  ds.findAndGetOFString(DcmTagKey(0x0077, 0x0010), value);
  EXPECT_EQ(value, "PACSGW KEYREF 1");
  decryptDataset(ds, EXS_LittleEndianExplicit, keys());
  EXPECT_EQ(ds.card(), before);
}

// ---- alterations --------------------------------------------------------------------------------------

TEST_F(CodecsDataset, EveryCiphertextByteIsAuthenticated) {
  ImageSpec s;
  s.rows = 4;
  s.columns = 4;
  s.frames = 2;
  auto ff = makeImage(s, 60);
  DcmDataset& ds = *ff->getDataset();
  encrypt(ds, EXS_LittleEndianExplicit);
  const Uint32 n = protectedBytes(ds).second;
  ASSERT_EQ(n, 64u);
  for (Uint32 i = 0; i < n; ++i) {
    DcmDataset copy(ds);
    auto [p, len] = protectedBytes(copy);
    p[i] ^= 0x40;
    const Bytes tampered = snapshot(copy);
    EXPECT_EQ(decryptError(copy, EXS_LittleEndianExplicit), CryptErrorKind::AuthenticationFailed) << "byte " << i;
    EXPECT_EQ(snapshot(copy), tampered);  // still ciphertext, no unverified plaintext
    EXPECT_TRUE(hasKeyReference(copy));
  }
  EXPECT_NO_THROW(decryptDataset(ds, EXS_LittleEndianExplicit, keys()));
}

TEST_F(CodecsDataset, EveryFragmentByteIsAuthenticated) {
  ImageSpec s;
  s.rows = 6;
  s.columns = 6;
  s.frames = 2;
  s.bitsAllocated = 8;
  s.bitsStored = 8;
  auto ff = makeRle(s);
  DcmDataset& ds = *ff->getDataset();
  encrypt(ds, EXS_RLELossless);
  for (unsigned long fragment : {1ul, 2ul}) {
    const Uint32 n = protectedBytes(ds, fragment).second;
    ASSERT_GT(n, 0u);
    for (Uint32 i = 0; i < n; ++i) {
      DcmDataset copy(ds);
      protectedBytes(copy, fragment).first[i] ^= 0x01;
      EXPECT_EQ(decryptError(copy, EXS_RLELossless), CryptErrorKind::AuthenticationFailed)
          << "fragment " << fragment << " byte " << i;
    }
  }
  EXPECT_NO_THROW(decryptDataset(ds, EXS_RLELossless, keys()));
}

TEST_F(CodecsDataset, NonceAndTagAreAuthenticated) {
  auto ff = makeImage(ImageSpec{}, 61);
  DcmDataset& ds = *ff->getDataset();
  encrypt(ds, EXS_LittleEndianExplicit);
  for (std::size_t i = 0; i < 12; ++i) {
    DcmDataset copy(ds);
    flipFieldByte(copy, detail::kKeyRefNonce, i);
    EXPECT_EQ(decryptError(copy, EXS_LittleEndianExplicit), CryptErrorKind::AuthenticationFailed);
  }
  for (std::size_t i = 0; i < 16; ++i) {
    DcmDataset copy(ds);
    flipFieldByte(copy, detail::kKeyRefTag, i);
    EXPECT_EQ(decryptError(copy, EXS_LittleEndianExplicit), CryptErrorKind::AuthenticationFailed);
  }
}

TEST_F(CodecsDataset, BoundAttributesAreAuthenticated) {
  ImageSpec s;
  s.rows = 8;
  s.columns = 4;
  s.frames = 2;
  auto ff = makeImage(s, 62);
  DcmDataset& ds = *ff->getDataset();
  encrypt(ds, EXS_LittleEndianExplicit);

  using Edit = std::function<void(DcmDataset&)>;
  const std::vector<std::pair<const char*, Edit>> edits{
      {"SOP Instance UID", [](DcmDataset& d) { d.putAndInsertString(DCM_SOPInstanceUID, newUid().c_str()); }},
      {"SOP Class UID", [](DcmDataset& d) { d.putAndInsertString(DCM_SOPClassUID, UID_CTImageStorage); }},
      {"recorded transfer syntax",
       [](DcmDataset& d) {
         d.putAndInsertString(DcmTag(field(d, detail::kKeyRefOriginalXfer), EVR_UI), UID_LittleEndianImplicitTransferSyntax);
       }},
      {"rows and columns swapped",
       [](DcmDataset& d) {
         d.putAndInsertUint16(DCM_Rows, 4);
         d.putAndInsertUint16(DCM_Columns, 8);
       }},
      {"frames folded into rows",
       [](DcmDataset& d) {
         d.putAndInsertUint16(DCM_Rows, 16);
         d.putAndInsertString(DCM_NumberOfFrames, "1");
       }},
      {"photometric", [](DcmDataset& d) { d.putAndInsertString(DCM_PhotometricInterpretation, "MONOCHROME1"); }},
      {"pixel representation", [](DcmDataset& d) { d.putAndInsertUint16(DCM_PixelRepresentation, 1); }},
      {"bits stored", [](DcmDataset& d) { d.putAndInsertUint16(DCM_BitsStored, 16); }},
      {"key scope", [](DcmDataset& d) { d.putAndInsertString(DcmTag(field(d, detail::kKeyRefKeyScope), EVR_CS), "INSTANCE"); }},
  };
  for (const auto& [name, edit] : edits) {
    DcmDataset copy(ds);
    edit(copy);
    EXPECT_EQ(decryptError(copy, EXS_LittleEndianExplicit), CryptErrorKind::AuthenticationFailed) << name;
  }
  EXPECT_NO_THROW(decryptDataset(ds, EXS_LittleEndianExplicit, keys()));
}

TEST_F(CodecsDataset, CiphertextMovedIntoAnotherObjectFails) {
  auto a = makeImage(ImageSpec{}, 70);
  auto b = makeImage(ImageSpec{}, 71);
  DcmDataset& da = *a->getDataset();
  DcmDataset& db = *b->getDataset();
  encrypt(da, EXS_LittleEndianExplicit);
  encrypt(db, EXS_LittleEndianExplicit);

  removeKeyReference(db);
  ASSERT_TRUE(db.findAndDeleteElement(DCM_PixelData).good());
  for (DcmObject* o = da.nextInContainer(nullptr); o != nullptr; o = da.nextInContainer(o)) {
    if (o->getTag().getGroup() == kKeyRefGroup || o->getTag() == DCM_PixelData) {
      ASSERT_TRUE(db.insert(static_cast<DcmElement*>(o->clone()), OFTrue).good());
    }
  }
  // b's own study / series UIDs differ from a's, which format 2 binds; the SOP Instance UID is
  // bound in every format.
  EXPECT_EQ(decryptError(db, EXS_LittleEndianExplicit), CryptErrorKind::BoundAttributesChanged);
  for (const DcmTagKey tag : {DcmTagKey(DCM_StudyInstanceUID), DcmTagKey(DCM_SeriesInstanceUID)}) {
    OFString uid;
    da.findAndGetOFString(tag, uid);
    db.putAndInsertString(tag, uid.c_str());
  }
  EXPECT_EQ(decryptError(db, EXS_LittleEndianExplicit), CryptErrorKind::AuthenticationFailed);
  EXPECT_NO_THROW(decryptDataset(da, EXS_LittleEndianExplicit, keys()));
}

TEST_F(CodecsDataset, RefragmentedCiphertextFails) {
  ImageSpec s;
  s.rows = 16;
  s.columns = 16;
  s.frames = 2;
  auto ff = makeRle(s);
  DcmDataset& ds = *ff->getDataset();
  encrypt(ds, EXS_RLELossless);

  DcmPixelSequence* seq = pixelSequence(ds);
  ASSERT_NE(seq, nullptr);
  DcmPixelItem* first = nullptr;
  ASSERT_TRUE(seq->remove(first, 1).good());
  Uint8* p = nullptr;
  first->getUint8Array(p);
  const Uint32 n = first->getLengthField();
  ASSERT_GE(n, 4u);
  const Uint32 cut = (n / 2) & ~1u;
  auto* head = new DcmPixelItem(DcmTag(DCM_Item, EVR_OB));
  auto* tail = new DcmPixelItem(DcmTag(DCM_Item, EVR_OB));
  head->putUint8Array(p, cut);
  tail->putUint8Array(p + cut, n - cut);
  delete first;
  ASSERT_TRUE(seq->insert(head, 1).good());
  ASSERT_TRUE(seq->insert(tail, 2).good());
  EXPECT_EQ(decryptError(ds, EXS_RLELossless), CryptErrorKind::AuthenticationFailed);
}

TEST_F(CodecsDataset, TruncatedCiphertextIsRefused) {
  auto ff = makeImage(ImageSpec{}, 72);
  DcmDataset& ds = *ff->getDataset();
  encrypt(ds, EXS_LittleEndianExplicit);
  const Bytes ct = snapshot(ds);
  ASSERT_TRUE(ds.putAndInsertUint8Array(DCM_PixelData, ct.data(), ct.size() - 2).good());
  EXPECT_EQ(decryptError(ds, EXS_LittleEndianExplicit), CryptErrorKind::MalformedObject);
}

TEST_F(CodecsDataset, ExtendedCiphertextIsRefused) {
  auto ff = makeImage(ImageSpec{}, 73);
  DcmDataset& ds = *ff->getDataset();
  encrypt(ds, EXS_LittleEndianExplicit);
  Bytes ct = snapshot(ds);
  ct.push_back(0);
  ct.push_back(0);
  ASSERT_TRUE(ds.putAndInsertUint8Array(DCM_PixelData, ct.data(), ct.size()).good());
  EXPECT_EQ(decryptError(ds, EXS_LittleEndianExplicit), CryptErrorKind::MalformedObject);
}

TEST_F(CodecsDataset, TransferSyntaxBinding) {
  auto rle = makeRle(ImageSpec{});
  encrypt(*rle->getDataset(), EXS_RLELossless);
  EXPECT_EQ(decryptError(*rle->getDataset(), EXS_LittleEndianExplicit), CryptErrorKind::TransferSyntaxMismatch);
  EXPECT_EQ(decryptError(*rle->getDataset(), EXS_JPEGProcess14SV1), CryptErrorKind::TransferSyntaxMismatch);

  auto native = makeImage(ImageSpec{}, 74);
  encrypt(*native->getDataset(), EXS_LittleEndianImplicit);
  EXPECT_EQ(decryptError(*native->getDataset(), EXS_RLELossless), CryptErrorKind::TransferSyntaxMismatch);
  // Any native syntax is fine: value semantics survive re-encoding.
  EXPECT_EQ(decryptDataset(*native->getDataset(), EXS_BigEndianExplicit, keys()), EXS_LittleEndianImplicit);
}

TEST_F(CodecsDataset, WrongOrUnknownKey) {
  auto ff = makeImage(ImageSpec{}, 75);
  DcmDataset& ds = *ff->getDataset();
  encrypt(ds, EXS_LittleEndianExplicit);
  const KeyLookup wrong = [this](const std::string&) { return otherKey_; };
  EXPECT_EQ(decryptError(ds, EXS_LittleEndianExplicit, wrong), CryptErrorKind::AuthenticationFailed);
  const KeyLookup none = [](const std::string& id) -> SecretBytes {
    throw CryptError(CryptErrorKind::UnknownKey, "no key " + id);
  };
  EXPECT_EQ(decryptError(ds, EXS_LittleEndianExplicit, none), CryptErrorKind::UnknownKey);
  const KeyLookup failing = [](const std::string&) -> SecretBytes { throw std::runtime_error("keystore locked"); };
  EXPECT_EQ(decryptError(ds, EXS_LittleEndianExplicit, failing), CryptErrorKind::UnknownKey);
  const KeyLookup shortKey = [](const std::string&) { return SecretBytes(16); };
  EXPECT_EQ(decryptError(ds, EXS_LittleEndianExplicit, shortKey), CryptErrorKind::UnknownKey);
  // Another key id in the block: the lookup finds a key, but not the right one.
  ds.putAndInsertString(DcmTag(field(ds, detail::kKeyRefKeyId), EVR_LO), kOtherKeyId);
  EXPECT_EQ(decryptError(ds, EXS_LittleEndianExplicit), CryptErrorKind::AuthenticationFailed);
  ds.putAndInsertString(DcmTag(field(ds, detail::kKeyRefKeyId), EVR_LO), kKeyId);
  EXPECT_NO_THROW(decryptDataset(ds, EXS_LittleEndianExplicit, keys()));
}

TEST_F(CodecsDataset, MessagesCarryNoKeyOrPixelBytes) {
  auto ff = makeImage(ImageSpec{}, 76);
  DcmDataset& ds = *ff->getDataset();
  encrypt(ds, EXS_LittleEndianExplicit);
  const KeyLookup wrong = [this](const std::string&) { return otherKey_; };
  decryptError(ds, EXS_LittleEndianExplicit, wrong);
  static const char* digits = "0123456789abcdef";
  for (const SecretBytes* k : {&key_, &otherKey_}) {
    std::string hexKey;
    for (std::size_t i = 0; i < k->size(); ++i) {
      hexKey += digits[k->data()[i] >> 4];
      hexKey += digits[k->data()[i] & 15];
    }
    EXPECT_EQ(lastMessage_.find(hexKey.substr(0, 16)), std::string::npos);
    EXPECT_EQ(lastMessage_.find(std::string(reinterpret_cast<const char*>(k->data()), 8)), std::string::npos);
  }
  for (char c : lastMessage_) EXPECT_TRUE(c >= 0x20 && c < 0x7F);
}

TEST_F(CodecsDataset, DoubleEncryptionIsRefused) {
  auto ff = makeImage(ImageSpec{}, 77);
  DcmDataset& ds = *ff->getDataset();
  encrypt(ds, EXS_LittleEndianExplicit);
  const Bytes ct = snapshot(ds);
  EXPECT_EQ(encryptError(ds, EXS_LittleEndianExplicit), CryptErrorKind::AlreadyEncrypted);
  EXPECT_EQ(snapshot(ds), ct);
}

TEST_F(CodecsDataset, MissingOrTruncatedPixelDataIsRefused) {
  auto ff = makeImage(ImageSpec{}, 78);
  DcmDataset& ds = *ff->getDataset();
  DcmDataset noPixels(ds);
  noPixels.findAndDeleteElement(DCM_PixelData);
  EXPECT_EQ(encryptError(noPixels, EXS_LittleEndianExplicit), CryptErrorKind::NoPixelData);
  EXPECT_FALSE(hasKeyReference(noPixels));

  const Bytes plain = snapshot(ds);
  DcmDataset truncated(ds);
  truncated.putAndInsertUint8Array(DCM_PixelData, plain.data(), plain.size() - 2);
  EXPECT_EQ(encryptError(truncated, EXS_LittleEndianExplicit), CryptErrorKind::MalformedObject);
  EXPECT_EQ(snapshot(truncated), Bytes(plain.begin(), plain.end() - 2));  // untouched
  EXPECT_FALSE(hasKeyReference(truncated));

  DcmDataset moreFrames(ds);
  moreFrames.putAndInsertString(DCM_NumberOfFrames, "2");
  EXPECT_EQ(encryptError(moreFrames, EXS_LittleEndianExplicit), CryptErrorKind::MalformedObject);

  DcmDataset noRows(ds);
  noRows.findAndDeleteElement(DCM_Rows);
  EXPECT_EQ(encryptError(noRows, EXS_LittleEndianExplicit), CryptErrorKind::MalformedObject);

  DcmDataset twoKinds(ds);
  const Float32 f[2] = {1.0f, 2.0f};
  twoKinds.putAndInsertFloat32Array(DCM_FloatPixelData, f, 2);
  EXPECT_EQ(encryptError(twoKinds, EXS_LittleEndianExplicit), CryptErrorKind::MalformedObject);

  // Native data declared as compressed, and compressed data declared as native.
  DcmDataset native(ds);
  EXPECT_EQ(encryptError(native, EXS_RLELossless), CryptErrorKind::MalformedObject);
  auto rle = makeRle(ImageSpec{});
  EXPECT_EQ(encryptError(*rle->getDataset(), EXS_JPEGProcess14SV1), CryptErrorKind::MalformedObject);
}

TEST_F(CodecsDataset, EncryptParametersAreValidated) {
  auto ff = makeImage(ImageSpec{}, 79);
  DcmDataset& ds = *ff->getDataset();
  const Bytes plain = snapshot(ds);
  auto kindOf = [&](const EncryptParams& p, const SecretBytes& key) {
    try {
      encryptDataset(ds, EXS_LittleEndianExplicit, *cipher_, key, p);
    } catch (const CryptError& e) {
      return e.kind();
    }
    return CryptErrorKind::NotEncrypted;
  };
  EXPECT_EQ(kindOf({"not-a-uuid", "STUDY"}, key_), CryptErrorKind::MalformedKeyReference);
  EXPECT_EQ(kindOf({kKeyId, "PATIENT"}, key_), CryptErrorKind::MalformedKeyReference);
  EXPECT_EQ(kindOf({kKeyId, "STUDY"}, SecretBytes(31)), CryptErrorKind::UnknownKey);
  EXPECT_EQ(snapshot(ds), plain);
  EXPECT_FALSE(hasKeyReference(ds));
}

TEST_F(CodecsDataset, NotEncryptedAndUnknownBackend) {
  auto ff = makeImage(ImageSpec{}, 80);
  DcmDataset& ds = *ff->getDataset();
  EXPECT_EQ(decryptError(ds, EXS_LittleEndianExplicit), CryptErrorKind::NotEncrypted);
  encrypt(ds, EXS_LittleEndianExplicit);
  {
    DcmDataset copy(ds);
    copy.putAndInsertString(DcmTag(field(copy, detail::kKeyRefBackendId), EVR_LO), "rot13");
    EXPECT_EQ(decryptError(copy, EXS_LittleEndianExplicit), CryptErrorKind::UnknownBackend);
    EXPECT_NE(lastMessage_.find("rot13"), std::string::npos);
  }
  {
    DcmDataset copy(ds);
    copy.putAndInsertString(DcmTag(field(copy, detail::kKeyRefBackendVersion), EVR_LO), "2");
    EXPECT_EQ(decryptError(copy, EXS_LittleEndianExplicit), CryptErrorKind::UnknownBackend);
  }
  {
    DcmDataset copy(ds);
    copy.putAndInsertUint32(DcmTag(field(copy, detail::kKeyRefProtectedLengths), EVR_UL), 12);
    EXPECT_EQ(decryptError(copy, EXS_LittleEndianExplicit), CryptErrorKind::MalformedObject);
  }
}

// Passes everything to the real backend and remembers the key it was handed.
class KeyRecordingCipher final : public PixelCipher {
 public:
  explicit KeyRecordingCipher(PixelCipher& inner) : inner_(inner) {}
  const BackendInfo& info() const override { return inner_.info(); }
  void checkSupported(const PixelLayout& layout) const override { inner_.checkSupported(layout); }
  CipherRecord encrypt(PixelBuffer& pixels, const SecretBytes& key, const std::vector<std::uint8_t>& aad) override {
    seen = key;
    return inner_.encrypt(pixels, key, aad);
  }
  void decrypt(PixelBuffer& pixels, const SecretBytes& key, const std::vector<std::uint8_t>& aad,
               const CipherRecord& record) override {
    inner_.decrypt(pixels, key, aad, record);
  }
  SecretBytes seen;

 private:
  PixelCipher& inner_;
};

bool sameKey(const SecretBytes& a, const SecretBytes& b) {
  return a.size() == b.size() && std::equal(a.data(), a.data() + a.size(), b.data());
}

// Format 3 hands the backend its own subkey of the data key; formats 1 and 2 (objects of earlier
// releases) the data key itself, and all three decrypt.
TEST_F(CodecsDataset, FormatThreeBindsTheDataKeyToTheBackend) {
  const auto plain = snapshot(*makeImage(ImageSpec{}, 81)->getDataset());
  for (int format : {1, 2, 3}) {
    auto ff = makeImage(ImageSpec{}, 81);
    DcmDataset& ds = *ff->getDataset();
    KeyRecordingCipher recording(*cipher_);
    EncryptParams params{kKeyId, "STUDY"};
    params.formatVersion = format;
    EXPECT_EQ(encryptDataset(ds, EXS_LittleEndianExplicit, recording, key_, params).formatVersion, format);
    if (format == 3) {
      EXPECT_TRUE(sameKey(recording.seen, backendSubkey(key_, "aes-256-gcm")));
      EXPECT_FALSE(sameKey(recording.seen, key_));
    } else {
      EXPECT_TRUE(sameKey(recording.seen, key_));
    }
    if (format >= 2) {
      // Relabelled as the other of formats 2 / 3 (other key and other associated data): refused.
      DcmDataset copy(ds);
      copy.putAndInsertString(DcmTag(field(copy, detail::kKeyRefFormatVersionElement), EVR_LO), format == 3 ? "2" : "3");
      EXPECT_EQ(decryptError(copy, EXS_LittleEndianExplicit), CryptErrorKind::AuthenticationFailed) << format;
    }
    EXPECT_EQ(decryptDataset(ds, EXS_LittleEndianExplicit, keys()), EXS_LittleEndianExplicit);
    EXPECT_EQ(snapshot(ds), plain);
  }
  EXPECT_EQ(EncryptParams{}.formatVersion, 3);
}

TEST_F(CodecsDataset, CryptErrorKindsHaveNames) {
  EXPECT_STREQ(toString(CryptErrorKind::AuthenticationFailed), "AuthenticationFailed");
  EXPECT_STREQ(toString(CryptErrorKind::TransferSyntaxMismatch), "TransferSyntaxMismatch");
  EXPECT_STREQ(toString(CryptErrorKind::BackendFailure), "BackendFailure");
}

TEST_F(CodecsDataset, PixelLayoutIsRead) {
  ImageSpec s;
  s.rows = 10;
  s.columns = 12;
  s.samplesPerPixel = 3;
  s.photometric = "RGB";
  s.bitsAllocated = 8;
  s.bitsStored = 8;
  s.planarConfiguration = 1;
  s.frames = 4;
  auto ff = makeImage(s, 81);
  const PixelLayout l = readPixelLayout(*ff->getDataset(), EXS_LittleEndianExplicit);
  EXPECT_EQ(l.rows, 10);
  EXPECT_EQ(l.columns, 12);
  EXPECT_EQ(l.samplesPerPixel, 3);
  EXPECT_EQ(l.bitsAllocated, 8);
  EXPECT_EQ(l.bitsStored, 8);
  EXPECT_EQ(l.highBit, 7);
  EXPECT_EQ(l.planarConfiguration, 1);
  EXPECT_EQ(l.numberOfFrames, 4u);
  EXPECT_EQ(l.photometricInterpretation, "RGB");
  EXPECT_FALSE(l.encapsulated);
  EXPECT_FALSE(l.floatingPoint);
  EXPECT_TRUE(readPixelLayout(*makeFloatImage(true)->getDataset(), EXS_LittleEndianExplicit).floatingPoint);
  EXPECT_TRUE(readPixelLayout(*makeRle(ImageSpec{})->getDataset(), EXS_RLELossless).encapsulated);
}

// ---- the dataset layer with other backends ----------------------------------------------------------

// A deliberately trivial backend (XOR), configurable to misbehave, to exercise the dataset layer's
// contract with backends it does not know.
class FakeCipher : public PixelCipher {
 public:
  BackendInfo info_{"aes-256-gcm", "1", true, true, true, true, "test", "test"};
  Bytes nonce{1, 2};
  std::string recordId = "aes-256-gcm";
  bool rejectLayout = false;

  const BackendInfo& info() const override { return info_; }
  void checkSupported(const PixelLayout&) const override {
    if (rejectLayout) throw UnsupportedLayoutError("fake: layout refused");
  }
  CipherRecord encrypt(PixelBuffer& pixels, const SecretBytes&, const std::vector<std::uint8_t>&) override {
    apply(pixels);
    CipherRecord r;
    r.backendId = recordId;
    r.backendVersion = "1";
    r.nonce = nonce;
    r.tag = {9, 9};
    return r;
  }
  void decrypt(PixelBuffer& pixels, const SecretBytes&, const std::vector<std::uint8_t>&, const CipherRecord&) override {
    apply(pixels);
  }

 private:
  static void apply(PixelBuffer& pixels) {
    for (auto& s : pixels.segments)
      for (std::size_t i = 0; i < s.size; ++i) s.data[i] ^= 0x5A;
  }
};

TEST_F(CodecsDataset, FailedBlockWriteRestoresPlaintext) {
  auto ff = makeImage(ImageSpec{}, 95);
  DcmDataset& ds = *ff->getDataset();
  const Bytes plain = snapshot(ds);
  auto kindWith = [&](FakeCipher& fake) {
    try {
      encryptDataset(ds, EXS_LittleEndianExplicit, fake, key_, EncryptParams{kKeyId, "STUDY"});
    } catch (const CryptError& e) {
      return e.kind();
    }
    return CryptErrorKind::NotEncrypted;
  };
  FakeCipher oddNonce;
  oddNonce.nonce = {1, 2, 3};  // would be padded by DICOM
  EXPECT_EQ(kindWith(oddNonce), CryptErrorKind::MalformedKeyReference);
  EXPECT_EQ(snapshot(ds), plain);
  EXPECT_FALSE(hasKeyReference(ds));

  FakeCipher foreign;
  foreign.recordId = "other";
  EXPECT_EQ(kindWith(foreign), CryptErrorKind::BackendFailure);
  EXPECT_EQ(snapshot(ds), plain);
  EXPECT_FALSE(hasKeyReference(ds));

  FakeCipher picky;
  picky.rejectLayout = true;
  EXPECT_EQ(kindWith(picky), CryptErrorKind::UnsupportedLayout);
  EXPECT_EQ(snapshot(ds), plain);
}

TEST_F(CodecsDataset, BackendCapabilitiesAreRespected) {
  FakeCipher noCompressed;
  noCompressed.info_.supportsEncapsulated = false;
  auto rle = makeRle(ImageSpec{});
  const Bytes fragments = snapshot(*rle->getDataset());
  try {
    encryptDataset(*rle->getDataset(), EXS_RLELossless, noCompressed, key_, EncryptParams{kKeyId, "STUDY"});
    ADD_FAILURE();
  } catch (const CryptError& e) {
    EXPECT_EQ(e.kind(), CryptErrorKind::UnsupportedLayout);
  }
  EXPECT_EQ(snapshot(*rle->getDataset()), fragments);

  FakeCipher noFloat;
  noFloat.info_.supportsFloat = false;
  auto fl = makeFloatImage(false);
  try {
    encryptDataset(*fl->getDataset(), EXS_LittleEndianExplicit, noFloat, key_, EncryptParams{kKeyId, "STUDY"});
    ADD_FAILURE();
  } catch (const CryptError& e) {
    EXPECT_EQ(e.kind(), CryptErrorKind::UnsupportedLayout);
  }
}

}  // namespace
}  // namespace pacsgw::codecs
