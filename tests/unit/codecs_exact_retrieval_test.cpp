// The exact-retrieval envelope of lossy backends, at the pixel level and through encryptDataset /
// decryptDataset: bit-exact with the envelope, marked lossy without it (only when allowed), and every
// alteration of payload, envelope or key refused. A small lossy fixture backend stands in for the neural
// backends (the contract suite runs the same checks on every registered backend).
#include "codecs/aes_gcm.h"
#include "codecs/backend_key.h"
#include "codecs/dicom_crypt.h"
#include "codecs/exact_retrieval.h"
#include "codecs/key_reference.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcvrobow.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstring>
#include <memory>

namespace pacsgw::codecs {
namespace {

using Bytes = std::vector<std::uint8_t>;
constexpr const char* kKeyId = "3f1c2a9e-5b7d-4e21-9c3a-7d2e1f0a4b6c";

// Lossy fixture: the payload is AES-256-GCM of the samples with their low 4 bits cleared; Pixel Data
// becomes random bytes whose SHA-256 is bound into the GCM associated data. 16-bit data only.
class LossyFixture final : public PixelCipher {
 public:
  LossyFixture() {
    info_.id = "lossy-fixture";
    info_.version = "1";
    info_.lossless = false;
    info_.maxSampleError = 15;
    info_.lossyMethod = "FIXTURE_4BIT";
    info_.summary = "test fixture";
  }
  const BackendInfo& info() const override { return info_; }
  void checkSupported(const PixelLayout& l) const override {
    if (l.bitsAllocated != 16 || l.encapsulated) throw UnsupportedLayoutError("16-bit native only");
  }
  CipherRecord encrypt(PixelBuffer& pixels, const SecretBytes& key, const Bytes& aad) override {
    CipherRecord r;
    r.backendId = info_.id;
    r.backendVersion = info_.version;
    r.nonce.resize(12);
    RAND_bytes(r.nonce.data(), 12);
    for (const ByteRange& s : pixels.segments)
      for (std::size_t i = 0; i < s.size; ++i) r.payload.push_back(i % 2 == 0 ? s.data[i] & 0xF0 : s.data[i]);
    for (ByteRange& s : pixels.segments) RAND_bytes(s.data, static_cast<int>(s.size));
    PixelBuffer body;
    body.segments.push_back({r.payload.data(), r.payload.size()});
    r.tag = detail::aesGcmSeal(body, key, r.nonce, boundAad(aad, pixels));
    return r;
  }
  void decrypt(PixelBuffer& pixels, const SecretBytes& key, const Bytes& aad, const CipherRecord& r) override {
    if (r.backendId != info_.id) throw CipherError("other backend");
    if (r.payload.size() != pixels.totalBytes()) throw AuthenticationError("payload length");
    Bytes plain = r.payload;
    PixelBuffer body;
    body.segments.push_back({plain.data(), plain.size()});
    detail::aesGcmOpen(body, key, r.nonce, boundAad(aad, pixels), r.tag);
    std::size_t at = 0;
    for (ByteRange& s : pixels.segments) {
      std::memcpy(s.data, plain.data() + at, s.size);
      at += s.size;
    }
  }

 private:
  static Bytes boundAad(const Bytes& aad, const PixelBuffer& pixels) {
    Bytes out = aad;
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
    for (const ByteRange& s : pixels.segments) EVP_DigestUpdate(ctx, s.data, s.size);
    std::uint8_t d[32];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx, d, &n);
    EVP_MD_CTX_free(ctx);
    out.insert(out.end(), d, d + 32);
    return out;
  }
  BackendInfo info_;
};

SecretBytes randomKey() {
  SecretBytes k(32);
  RAND_bytes(k.data(), 32);
  return k;
}

std::string newUid() {
  char buf[100];
  return dcmGenerateUniqueIdentifier(buf, SITE_INSTANCE_UID_ROOT);
}

// A 16-bit CT-like object: a smooth ramp plus pseudo-random noise in the low bits.
std::unique_ptr<DcmFileFormat> makeCt(std::uint16_t rows = 20, std::uint16_t columns = 18) {
  auto ff = std::make_unique<DcmFileFormat>();
  DcmDataset& ds = *ff->getDataset();
  ds.putAndInsertString(DCM_SOPClassUID, UID_CTImageStorage);
  ds.putAndInsertString(DCM_SOPInstanceUID, newUid().c_str());
  ds.putAndInsertString(DCM_StudyInstanceUID, newUid().c_str());
  ds.putAndInsertString(DCM_SeriesInstanceUID, newUid().c_str());
  ds.putAndInsertString(DCM_Modality, "CT");
  ds.putAndInsertUint16(DCM_Rows, rows);
  ds.putAndInsertUint16(DCM_Columns, columns);
  ds.putAndInsertUint16(DCM_SamplesPerPixel, 1);
  ds.putAndInsertString(DCM_PhotometricInterpretation, "MONOCHROME2");
  ds.putAndInsertUint16(DCM_BitsAllocated, 16);
  ds.putAndInsertUint16(DCM_BitsStored, 12);
  ds.putAndInsertUint16(DCM_HighBit, 11);
  ds.putAndInsertUint16(DCM_PixelRepresentation, 0);
  std::vector<Uint16> words(std::size_t{rows} * columns);
  std::uint32_t x = 7;
  for (std::size_t i = 0; i < words.size(); ++i) {
    x = x * 1664525u + 1013904223u;
    words[i] = static_cast<Uint16>((i * 9 + (x >> 28)) & 0x0FFF);
  }
  EXPECT_TRUE(ds.putAndInsertUint16Array(DCM_PixelData, words.data(), words.size()).good());
  return ff;
}

Bytes pixelBytes(DcmDataset& ds) {
  const Uint16* w = nullptr;
  unsigned long n = 0;
  EXPECT_TRUE(ds.findAndGetUint16Array(DCM_PixelData, w, &n).good());
  Bytes out(n * 2);
  if (n > 0) std::memcpy(out.data(), w, n * 2);
  return out;
}

std::string text(DcmDataset& ds, const DcmTagKey& key) {
  OFString v;
  if (ds.findAndGetOFStringArray(key, v).bad()) return {};
  return v.c_str();
}

DcmTagKey keyRefElement(DcmDataset& ds, std::uint8_t offset) {
  const auto blocks = detail::findKeyReferenceBlocks(ds);
  EXPECT_EQ(blocks.size(), 1u);
  return detail::keyRefTag(blocks.at(0), offset);
}

class ExactRetrieval : public ::testing::Test {
 protected:
  void SetUp() override { registerKeyReferenceDictionary(); }
  KeyLookup keys(const SecretBytes& key) {
    return [key](const std::string&) { return key; };
  }
  EncryptParams params(bool allowLossy = false) {
    EncryptParams p;
    p.keyId = kKeyId;
    p.keyScope = "STUDY";
    p.allowLossy = allowLossy;
    return p;
  }
  LossyFixture cipher;
};

TEST_F(ExactRetrieval, DatasetRoundTripIsBitExactWithTheEnvelope) {
  auto ff = makeCt();
  DcmDataset& ds = *ff->getDataset();
  const Bytes original = pixelBytes(ds);
  const SecretBytes key = randomKey();
  const KeyReference ref = encryptDataset(ds, EXS_LittleEndianExplicit, cipher, key, params());
  EXPECT_FALSE(ref.record.payload.empty());
  EXPECT_FALSE(ref.exactEnvelope.empty());
  const Bytes stored = pixelBytes(ds);
  EXPECT_EQ(stored.size(), original.size()) << "the cipher image keeps the Pixel Data size";
  EXPECT_NE(stored, original);
  EXPECT_TRUE(ds.tagExists(keyRefElement(ds, detail::kKeyRefPayload)));
  EXPECT_TRUE(ds.tagExists(keyRefElement(ds, detail::kKeyRefEnvelope)));

  // Through a file, as the PACS stores it.
  const std::string path = ::testing::TempDir() + "/exact_retrieval.dcm";
  ASSERT_TRUE(ff->saveFile(path.c_str(), EXS_LittleEndianExplicit).good());
  DcmFileFormat back;
  ASSERT_TRUE(back.loadFile(path.c_str()).good());
  std::remove(path.c_str());
  decryptDataset(*back.getDataset(), EXS_LittleEndianExplicit, keys(key), cipher);
  EXPECT_EQ(pixelBytes(*back.getDataset()), original);
  EXPECT_FALSE(back.getDataset()->tagExists(DCM_LossyImageCompression));
  EXPECT_FALSE(hasKeyReference(*back.getDataset()));
}

TEST_F(ExactRetrieval, WithoutTheEnvelopeOnlyWhenAllowedAndThenMarkedLossy) {
  auto ff = makeCt();
  DcmDataset& ds = *ff->getDataset();
  const Bytes original = pixelBytes(ds);
  const SecretBytes key = randomKey();
  const KeyReference ref = encryptDataset(ds, EXS_LittleEndianExplicit, cipher, key, params(true));
  EXPECT_TRUE(ref.exactEnvelope.empty());
  EXPECT_FALSE(ds.tagExists(keyRefElement(ds, detail::kKeyRefEnvelope)));
  decryptDataset(ds, EXS_LittleEndianExplicit, keys(key), cipher);
  const Bytes lossy = pixelBytes(ds);
  EXPECT_NE(lossy, original);
  for (std::size_t i = 0; i < original.size(); i += 2) {
    const int a = original[i] | (original[i + 1] << 8), b = lossy[i] | (lossy[i + 1] << 8);
    EXPECT_LE(std::abs(a - b), 15);
  }
  EXPECT_EQ(text(ds, DCM_LossyImageCompression), "01");
  EXPECT_EQ(text(ds, DCM_LossyImageCompressionMethod), "FIXTURE_4BIT");
  EXPECT_EQ(text(ds, DCM_LossyImageCompressionRatio), "1.00");  // the fixture's payload is as large as the pixels
}

TEST_F(ExactRetrieval, AnEarlierLossyStepKeepsItsValues) {
  auto ff = makeCt();
  DcmDataset& ds = *ff->getDataset();
  ds.putAndInsertString(DCM_LossyImageCompression, "01");
  ds.putAndInsertString(DCM_LossyImageCompressionMethod, "ISO_10918_1");
  ds.putAndInsertString(DCM_LossyImageCompressionRatio, "8.5");
  markLossy(ds, "PACSGW_AE_AES", 2.666);
  EXPECT_EQ(text(ds, DCM_LossyImageCompressionMethod), "ISO_10918_1\\PACSGW_AE_AES");
  EXPECT_EQ(text(ds, DCM_LossyImageCompressionRatio), "8.5\\2.67");
}

TEST_F(ExactRetrieval, StrippingTheEnvelopeIsRefusedNotDowngraded) {
  auto ff = makeCt();
  DcmDataset& ds = *ff->getDataset();
  const SecretBytes key = randomKey();
  encryptDataset(ds, EXS_LittleEndianExplicit, cipher, key, params());
  ds.findAndDeleteElement(keyRefElement(ds, detail::kKeyRefEnvelope));
  try {
    decryptDataset(ds, EXS_LittleEndianExplicit, keys(key), cipher);
    FAIL() << "an object whose envelope was removed decrypted";
  } catch (const CryptError& e) {
    EXPECT_EQ(e.kind(), CryptErrorKind::AuthenticationFailed) << e.what();
  }
  EXPECT_FALSE(ds.tagExists(DCM_LossyImageCompression));
}

TEST_F(ExactRetrieval, TamperedPayloadEnvelopeOrWrongKeyIsRefused) {
  for (int variant = 0; variant < 3; ++variant) {
    auto ff = makeCt();
    DcmDataset& ds = *ff->getDataset();
    const SecretBytes key = randomKey();
    encryptDataset(ds, EXS_LittleEndianExplicit, cipher, key, params());
    SecretBytes useKey = key;
    if (variant < 2) {
      DcmElement* e = nullptr;
      ASSERT_TRUE(ds.findAndGetElement(keyRefElement(ds, variant == 0 ? detail::kKeyRefPayload : detail::kKeyRefEnvelope), e).good());
      Uint8* p = nullptr;
      ASSERT_TRUE(e->getUint8Array(p).good());
      p[e->getLength() / 2] ^= 0x10;
    } else {
      useKey = randomKey();
    }
    try {
      decryptDataset(ds, EXS_LittleEndianExplicit, keys(useKey), cipher);
      FAIL() << "variant " << variant << " decrypted";
    } catch (const CryptError& e) {
      EXPECT_EQ(e.kind(), CryptErrorKind::AuthenticationFailed) << variant << ": " << e.what();
    }
  }
}

TEST_F(ExactRetrieval, OversizedPayloadIsAMalformedKeyReference) {
  auto ff = makeCt(4, 4);
  DcmDataset& ds = *ff->getDataset();
  const SecretBytes key = randomKey();
  encryptDataset(ds, EXS_LittleEndianExplicit, cipher, key, params());
  const std::size_t cap = detail::maxSideDataBytes({32});
  EXPECT_EQ(cap, 64u + (1u << 20));
  Bytes huge(cap + 2, 0);
  DcmElement* payload = nullptr;
  ASSERT_TRUE(ds.findAndGetElement(keyRefElement(ds, detail::kKeyRefPayload), payload).good());
  ASSERT_TRUE(payload->putUint8Array(huge.data(), static_cast<unsigned long>(huge.size())).good());
  try {
    readKeyReference(ds);
    FAIL() << "an oversized payload was accepted";
  } catch (const CryptError& e) {
    EXPECT_EQ(e.kind(), CryptErrorKind::MalformedKeyReference);
    EXPECT_NE(std::string(e.what()).find("Backend Payload"), std::string::npos) << e.what();
  }
}

TEST_F(ExactRetrieval, EnvelopeOfLosslessBackendsIsEmptyAndRefused) {
  std::unique_ptr<PixelCipher> aes = makeCipher("aes-256-gcm");
  Bytes data(64, 0x5A);
  PixelBuffer p;
  p.layout.bitsAllocated = 16;
  p.segments.push_back({data.data(), data.size()});
  const SecretBytes key = randomKey();
  const ProtectedPixels sealed = protectPixels(*aes, p, key, {1, 2, 3}, Retrieval::Exact);
  EXPECT_TRUE(sealed.envelope.empty());
  EXPECT_THROW(recoverPixels(*aes, p, key, {1, 2, 3}, sealed.record, Bytes{1, 2}), CipherError);
  EXPECT_EQ(recoverPixels(*aes, p, key, {1, 2, 3}, sealed.record, {}), Retrieval::Exact);
  EXPECT_EQ(data, Bytes(64, 0x5A));
}

struct EnvelopeCase {
  Bytes original = Bytes(40), recon = Bytes(40);
  PixelBuffer pixels;
  CipherRecord record;
  SecretBytes key = randomKey();
  EnvelopeCase() {
    for (std::size_t i = 0; i < 40; ++i) {
      original[i] = static_cast<std::uint8_t>(i * 7);
      recon[i] = static_cast<std::uint8_t>(i * 7 + (i % 3));
    }
    pixels.layout.bitsAllocated = 16;
    pixels.segments.push_back({recon.data(), recon.size()});
    record.backendId = "lossy-fixture";
    record.nonce = {1, 2};
    record.tag = {3, 4};
  }
};

TEST_F(ExactRetrieval, EnvelopeRestoresTheOriginalWhateverThisMachinesReconstruction) {
  // Format 2 carries the original: a receiving side whose model output differs (other CPU, GPU,
  // LibTorch build) still gets the exact original, and the SHA-256 is checked.
  EnvelopeCase c;
  const Bytes env = sealEnvelope({c.original}, c.pixels.layout, c.key, {9}, c.record);
  EXPECT_EQ(env[0], kEnvelopeFormat);
  EXPECT_EQ(env.size() % 2, 0u);
  const OpenedEnvelope opened = openEnvelope(env, c.key, {9}, c.record);
  Bytes other = c.recon;
  other[5] ^= 1;
  PixelBuffer o = c.pixels;
  o.segments[0] = {other.data(), other.size()};
  applyEnvelope(o, opened);
  EXPECT_EQ(other, c.original);
  OpenedEnvelope corrupted = opened;
  corrupted.plain.data()[0] ^= 1;  // the digest no longer matches what the samples give
  Bytes again = c.recon;
  o.segments[0] = {again.data(), again.size()};
  EXPECT_THROW(applyEnvelope(o, corrupted), CipherError);
  CipherRecord otherRecord = c.record;
  otherRecord.tag = {3, 5};
  EXPECT_THROW(openEnvelope(env, c.key, {9}, otherRecord), AuthenticationError) << "the envelope is bound to its record";
  Bytes relabelled = env;
  relabelled[0] = kResidualEnvelopeFormat;
  EXPECT_THROW(openEnvelope(relabelled, c.key, {9}, c.record), AuthenticationError) << "the format byte is bound";
}

TEST_F(ExactRetrieval, ResidualEnvelopesOfEarlierReleasesStillOpen) {
  // Format 1 (the residual to the encrypting machine's reconstruction): exact on a machine that
  // reconstructs the same, refused (never wrong pixels) on one that does not.
  EnvelopeCase c;
  const Bytes env = sealResidualEnvelope({c.original}, c.pixels, c.key, {9}, c.record);
  EXPECT_EQ(env[0], kResidualEnvelopeFormat);
  const OpenedEnvelope opened = openEnvelope(env, c.key, {9}, c.record);
  Bytes other = c.recon;
  other[5] ^= 1;
  PixelBuffer o = c.pixels;
  o.segments[0] = {other.data(), other.size()};
  EXPECT_THROW(applyEnvelope(o, opened), CipherError);
  applyEnvelope(c.pixels, opened);
  EXPECT_EQ(c.recon, c.original);
}

}  // namespace
}  // namespace pacsgw::codecs
