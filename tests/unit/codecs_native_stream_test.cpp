// Streaming encryption of native Pixel Data: what NativePixelDataSealer writes is what encryptDataset
// writes (same key-reference fields, same associated data), so decryptDataset opens it unchanged; and
// every misuse (a wrong length, a truncated value, an object already encrypted) is refused.
#include "codecs/dicom_crypt.h"
#include "codecs/key_reference.h"
#include "codecs/native_pixel_stream.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace pacsgw::codecs {
namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr const char* kKeyId = "3f1c2a9e-5b7d-4e21-9c3a-7d2e1f0a4b6c";

std::string newUid() {
  char buf[100];
  return dcmGenerateUniqueIdentifier(buf, SITE_INSTANCE_UID_ROOT);
}

SecretBytes dataKey(std::uint8_t fill) {
  SecretBytes key(32);
  for (std::size_t i = 0; i < key.size(); ++i) key.data()[i] = static_cast<std::uint8_t>(fill + i);
  return key;
}

Bytes pattern(std::size_t n, std::uint32_t seed) {
  Bytes out(n);
  std::uint32_t x = seed * 2654435761u + 12345u;
  for (auto& b : out) {
    x = x * 1664525u + 1013904223u;
    b = static_cast<std::uint8_t>(x >> 24);
  }
  return out;
}

// A 64 x 48 x 3-frame 16-bit object without its Pixel Data.
std::unique_ptr<DcmDataset> header() {
  auto ds = std::make_unique<DcmDataset>();
  ds->putAndInsertString(DCM_SOPClassUID, UID_EnhancedCTImageStorage);
  ds->putAndInsertString(DCM_SOPInstanceUID, newUid().c_str());
  ds->putAndInsertString(DCM_StudyInstanceUID, newUid().c_str());
  ds->putAndInsertString(DCM_SeriesInstanceUID, newUid().c_str());
  ds->putAndInsertString(DCM_PatientID, "PID-STREAM");
  ds->putAndInsertString(DCM_PixelSpacing, "0.5\\0.5");
  ds->putAndInsertUint16(DCM_SamplesPerPixel, 1);
  ds->putAndInsertString(DCM_PhotometricInterpretation, "MONOCHROME2");
  ds->putAndInsertUint16(DCM_Rows, 48);
  ds->putAndInsertUint16(DCM_Columns, 64);
  ds->putAndInsertString(DCM_NumberOfFrames, "3");
  ds->putAndInsertUint16(DCM_BitsAllocated, 16);
  ds->putAndInsertUint16(DCM_BitsStored, 12);
  ds->putAndInsertUint16(DCM_HighBit, 11);
  ds->putAndInsertUint16(DCM_PixelRepresentation, 0);
  return ds;
}

constexpr std::uint32_t kPixelBytes = 48 * 64 * 3 * 2;

EncryptParams params() {
  EncryptParams p;
  p.keyId = kKeyId;
  p.keyScope = "STUDY";
  return p;
}

// Seals `pixels` in pieces of `piece` bytes, then assembles the object as the gateway does.
std::unique_ptr<DcmDataset> sealInPieces(const Bytes& pixels, std::size_t piece, const SecretBytes& key,
                                         E_TransferSyntax xfer = EXS_LittleEndianExplicit) {
  auto ds = header();
  NativePixelDataSealer sealer(*ds, xfer, static_cast<std::uint32_t>(pixels.size()), key, params());
  Bytes ciphertext(pixels.size());
  for (std::size_t at = 0; at < pixels.size(); at += piece) {
    const std::size_t n = std::min(piece, pixels.size() - at);
    sealer.seal(pixels.data() + at, n, ciphertext.data() + at);
  }
  ds->putAndInsertUint8Array(DCM_PixelData, ciphertext.data(), static_cast<unsigned long>(ciphertext.size()));
  sealer.finish(*ds);
  return ds;
}

Bytes pixelBytes(DcmDataset& ds) {
  const Uint8* data = nullptr;
  unsigned long count = 0;
  EXPECT_TRUE(ds.findAndGetUint8Array(DCM_PixelData, data, &count).good());
  return Bytes(data, data + count);
}

TEST(NativePixelStream, DecryptsWithTheInMemoryPathBitExact) {
  const Bytes original = pattern(kPixelBytes, 7);
  const SecretBytes key = dataKey(3);
  for (std::size_t piece : {std::size_t{1}, std::size_t{17}, std::size_t{4096}, std::size_t{kPixelBytes}}) {
    auto ds = sealInPieces(original, piece, key);
    EXPECT_NE(pixelBytes(*ds), original) << "piece " << piece;
    const E_TransferSyntax restored =
        decryptDataset(*ds, EXS_LittleEndianExplicit, [&](const std::string& id) {
          EXPECT_EQ(id, kKeyId);
          return key;
        });
    EXPECT_EQ(restored, EXS_LittleEndianExplicit);
    EXPECT_EQ(pixelBytes(*ds), original) << "piece " << piece;
    EXPECT_FALSE(hasKeyReference(*ds));
  }
}

TEST(NativePixelStream, WritesTheKeyReferenceTheInMemoryPathWrites) {
  const Bytes original = pattern(kPixelBytes, 11);
  const SecretBytes key = dataKey(5);
  auto streamed = sealInPieces(original, 1000, key, EXS_LittleEndianImplicit);
  auto whole = header();
  whole->putAndInsertUint16Array(DCM_PixelData, reinterpret_cast<const Uint16*>(original.data()), kPixelBytes / 2);
  auto cipher = makeCipher("aes-256-gcm");
  encryptDataset(*whole, EXS_LittleEndianImplicit, *cipher, key, params());
  const KeyReference a = readKeyReference(*streamed);
  const KeyReference b = readKeyReference(*whole);
  EXPECT_EQ(a.record.backendId, b.record.backendId);
  EXPECT_EQ(a.record.backendVersion, b.record.backendVersion);
  EXPECT_EQ(a.record.params, b.record.params);
  EXPECT_EQ(a.record.nonce.size(), b.record.nonce.size());
  EXPECT_NE(a.record.nonce, b.record.nonce);
  EXPECT_EQ(a.record.tag.size(), b.record.tag.size());
  EXPECT_EQ(a.keyId, b.keyId);
  EXPECT_EQ(a.keyScope, b.keyScope);
  EXPECT_EQ(a.originalTransferSyntax, b.originalTransferSyntax);
  EXPECT_EQ(a.protectedElements, b.protectedElements);
  EXPECT_EQ(a.protectedLengths, b.protectedLengths);
  EXPECT_EQ(a.formatVersion, b.formatVersion);
  EXPECT_EQ(a.boundAttributesDigest.size(), 32u);
}

TEST(NativePixelStream, AChangedBoundAttributeOrByteIsRefused) {
  const Bytes original = pattern(kPixelBytes, 13);
  const SecretBytes key = dataKey(9);
  auto lookup = [&](const std::string&) { return key; };
  auto relabelled = sealInPieces(original, 333, key);
  relabelled->putAndInsertString(DCM_PixelSpacing, "0.7\\0.7");
  EXPECT_THROW(decryptDataset(*relabelled, EXS_LittleEndianExplicit, lookup), CryptError);
  auto flipped = sealInPieces(original, 333, key);
  Bytes bytes = pixelBytes(*flipped);
  bytes[1234] ^= 1;
  flipped->putAndInsertUint8Array(DCM_PixelData, bytes.data(), static_cast<unsigned long>(bytes.size()));
  try {
    decryptDataset(*flipped, EXS_LittleEndianExplicit, lookup);
    FAIL() << "a flipped ciphertext byte was accepted";
  } catch (const CryptError& e) {
    EXPECT_EQ(e.kind(), CryptErrorKind::AuthenticationFailed);
  }
}

TEST(NativePixelStream, RefusesMisuse) {
  const SecretBytes key = dataKey(1);
  auto ds = header();
  // Shorter than 48 x 64 x 3 frames x 16 bit.
  EXPECT_THROW(NativePixelDataSealer(*ds, EXS_LittleEndianExplicit, kPixelBytes - 2, key, params()), CryptError);
  EXPECT_THROW(NativePixelDataSealer(*ds, EXS_LittleEndianExplicit, kPixelBytes + 1, key, params()), CryptError);
  EXPECT_THROW(NativePixelDataSealer(*ds, EXS_JPEGProcess14SV1, kPixelBytes, key, params()), CryptError);

  NativePixelDataSealer sealer(*ds, EXS_LittleEndianExplicit, kPixelBytes, key, params());
  Bytes plain = pattern(kPixelBytes, 3), out(kPixelBytes + 2);
  sealer.seal(plain.data(), kPixelBytes / 2, out.data());
  try {
    sealer.finish(*ds);  // half the value: truncated
    FAIL() << "a truncated value was sealed";
  } catch (const CryptError& e) {
    EXPECT_EQ(e.kind(), CryptErrorKind::MalformedObject);
  }
  EXPECT_FALSE(hasKeyReference(*ds));
  Bytes more(kPixelBytes);
  EXPECT_THROW(sealer.seal(more.data(), more.size(), out.data()), CryptError);  // beyond the length

  auto encrypted = sealInPieces(pattern(kPixelBytes, 4), 4096, key);
  try {
    NativePixelDataSealer again(*encrypted, EXS_LittleEndianExplicit, kPixelBytes, key, params());
    FAIL() << "an object carrying a key-reference block was sealed again";
  } catch (const CryptError& e) {
    EXPECT_EQ(e.kind(), CryptErrorKind::AlreadyEncrypted);
  }
}

}  // namespace
}  // namespace pacsgw::codecs
