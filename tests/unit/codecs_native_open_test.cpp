// Streaming decryption of native Pixel Data: NativePixelDataOpener opens what the streaming and the
// in-memory encryption write, bit-exact, with decryptDataset's checks; a changed byte, attribute or
// length is refused at verify() or before, and nothing is released then (the key reference stays).
#include "codecs/aes_gcm.h"
#include "codecs/dicom_crypt.h"
#include "codecs/key_reference.h"
#include "codecs/native_pixel_open.h"
#include "codecs/native_pixel_stream.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace pacsgw::codecs {
namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr const char* kKeyId = "4a2c1b8e-6d7f-4e21-9c3a-7d2e1f0a4b6c";
constexpr std::uint32_t kPixelBytes = 32 * 40 * 5 * 2;

std::string newUid() {
  char buf[100];
  return dcmGenerateUniqueIdentifier(buf, SITE_INSTANCE_UID_ROOT);
}

SecretBytes dataKey(std::uint8_t fill) {
  SecretBytes key(32);
  for (std::size_t i = 0; i < key.size(); ++i) key.data()[i] = static_cast<std::uint8_t>(fill * 7 + i);
  return key;
}

Bytes pattern(std::size_t n, std::uint32_t seed) {
  Bytes out(n);
  std::uint32_t x = seed * 2654435761u + 99u;
  for (auto& b : out) {
    x = x * 1664525u + 1013904223u;
    b = static_cast<std::uint8_t>(x >> 24);
  }
  return out;
}

// A 32 x 40 x 5-frame 16-bit object without its Pixel Data.
std::unique_ptr<DcmDataset> header() {
  auto ds = std::make_unique<DcmDataset>();
  ds->putAndInsertString(DCM_SOPClassUID, UID_EnhancedCTImageStorage);
  ds->putAndInsertString(DCM_SOPInstanceUID, newUid().c_str());
  ds->putAndInsertString(DCM_StudyInstanceUID, newUid().c_str());
  ds->putAndInsertString(DCM_SeriesInstanceUID, newUid().c_str());
  ds->putAndInsertString(DCM_PixelSpacing, "0.5\\0.5");
  ds->putAndInsertUint16(DCM_SamplesPerPixel, 1);
  ds->putAndInsertString(DCM_PhotometricInterpretation, "MONOCHROME2");
  ds->putAndInsertUint16(DCM_Rows, 40);
  ds->putAndInsertUint16(DCM_Columns, 32);
  ds->putAndInsertString(DCM_NumberOfFrames, "5");
  ds->putAndInsertUint16(DCM_BitsAllocated, 16);
  ds->putAndInsertUint16(DCM_BitsStored, 16);
  ds->putAndInsertUint16(DCM_HighBit, 15);
  ds->putAndInsertUint16(DCM_PixelRepresentation, 0);
  return ds;
}

EncryptParams params() {
  EncryptParams p;
  p.keyId = kKeyId;
  p.keyScope = "STUDY";
  return p;
}

struct Sealed {
  std::unique_ptr<DcmDataset> header;  // with the key-reference block, without Pixel Data
  Bytes ciphertext;
};

Sealed sealStreaming(const Bytes& pixels, const SecretBytes& key) {
  Sealed out{header(), Bytes(pixels.size())};
  NativePixelDataSealer sealer(*out.header, EXS_LittleEndianExplicit, static_cast<std::uint32_t>(pixels.size()), key,
                               params());
  sealer.seal(pixels.data(), pixels.size(), out.ciphertext.data());
  sealer.finish(*out.header);
  return out;
}

KeyLookup lookupOf(const SecretBytes& key, int* calls = nullptr) {
  return [key, calls](const std::string& id) {
    if (calls != nullptr) ++*calls;
    if (id != kKeyId) throw CryptError(CryptErrorKind::UnknownKey, "no such key");
    return key;
  };
}

// First pass in pieces of `piece` bytes; then the second pass, also in pieces.
Bytes openInPieces(DcmDataset& hdr, const Bytes& ciphertext, std::size_t piece, const KeyLookup& keys) {
  NativePixelDataOpener opener(hdr, EXS_LittleEndianExplicit, static_cast<std::uint32_t>(ciphertext.size()), keys);
  for (std::size_t at = 0; at < ciphertext.size(); at += piece)
    opener.check(ciphertext.data() + at, std::min(piece, ciphertext.size() - at));
  const VerifiedGcmMessage message = opener.verify(hdr);
  Bytes plain(ciphertext.size());
  auto stream = message.stream();
  for (std::size_t at = 0; at < ciphertext.size(); at += piece)
    stream->update(ciphertext.data() + at, std::min(piece, ciphertext.size() - at), plain.data() + at);
  return plain;
}

TEST(NativePixelOpen, OpensWhatTheStreamingEncryptionWroteBitExactInAnyPieces) {
  const Bytes original = pattern(kPixelBytes, 1);
  const SecretBytes key = dataKey(1);
  for (std::size_t piece : {std::size_t{1}, std::size_t{333}, std::size_t{kPixelBytes}}) {
    Sealed sealed = sealStreaming(original, key);
    EXPECT_TRUE(opensNativePixelDataStreaming(*sealed.header, kPixelBytes));
    EXPECT_EQ(openInPieces(*sealed.header, sealed.ciphertext, piece, lookupOf(key)), original) << "piece " << piece;
    EXPECT_FALSE(hasKeyReference(*sealed.header)) << "the key reference leaves once the tag verified";
  }
}

TEST(NativePixelOpen, OpensWhatTheInMemoryEncryptionWrote) {
  const Bytes original = pattern(kPixelBytes, 2);
  const SecretBytes key = dataKey(2);
  auto whole = header();
  whole->putAndInsertUint16Array(DCM_PixelData, reinterpret_cast<const Uint16*>(original.data()), kPixelBytes / 2);
  auto cipher = makeCipher("aes-256-gcm");
  encryptDataset(*whole, EXS_LittleEndianExplicit, *cipher, key, params());
  const Uint8* data = nullptr;
  unsigned long count = 0;
  ASSERT_TRUE(whole->findAndGetUint8Array(DCM_PixelData, data, &count).good());
  const Bytes ciphertext(data, data + count);
  whole->findAndDeleteElement(DCM_PixelData);
  EXPECT_EQ(openInPieces(*whole, ciphertext, 4096, lookupOf(key)), original);
}

TEST(NativePixelOpen, AChangedCiphertextByteFailsTheTagAndReleasesNothing) {
  const Bytes original = pattern(kPixelBytes, 3);
  const SecretBytes key = dataKey(3);
  Sealed sealed = sealStreaming(original, key);
  sealed.ciphertext[kPixelBytes / 2] ^= 0x01;
  NativePixelDataOpener opener(*sealed.header, EXS_LittleEndianExplicit, kPixelBytes, lookupOf(key));
  opener.check(sealed.ciphertext.data(), sealed.ciphertext.size());
  try {
    opener.verify(*sealed.header);
    FAIL() << "a changed byte verified";
  } catch (const CryptError& e) {
    EXPECT_EQ(e.kind(), CryptErrorKind::AuthenticationFailed);
  }
  EXPECT_TRUE(hasKeyReference(*sealed.header)) << "a refused object keeps its key reference";
}

TEST(NativePixelOpen, AChangedTagFailsAsWell) {
  const Bytes original = pattern(kPixelBytes, 4);
  const SecretBytes key = dataKey(4);
  Sealed sealed = sealStreaming(original, key);
  KeyReference ref = readKeyReference(*sealed.header);
  ref.record.tag[0] ^= 0x80;
  removeKeyReference(*sealed.header);
  writeKeyReference(*sealed.header, ref);
  NativePixelDataOpener opener(*sealed.header, EXS_LittleEndianExplicit, kPixelBytes, lookupOf(key));
  opener.check(sealed.ciphertext.data(), sealed.ciphertext.size());
  EXPECT_THROW(opener.verify(*sealed.header), CryptError);
}

TEST(NativePixelOpen, AChangedBoundAttributeIsRefusedBeforeAnyByte) {
  const SecretBytes key = dataKey(5);
  Sealed sealed = sealStreaming(pattern(kPixelBytes, 5), key);
  sealed.header->putAndInsertString(DCM_PixelSpacing, "0.7\\0.7");
  try {
    NativePixelDataOpener opener(*sealed.header, EXS_LittleEndianExplicit, kPixelBytes, lookupOf(key));
    FAIL() << "a changed bound attribute was accepted";
  } catch (const CryptError& e) {
    EXPECT_EQ(e.kind(), CryptErrorKind::BoundAttributesChanged);
  }
}

TEST(NativePixelOpen, AWrongKeyFailsTheTag) {
  Sealed sealed = sealStreaming(pattern(kPixelBytes, 6), dataKey(6));
  NativePixelDataOpener opener(*sealed.header, EXS_LittleEndianExplicit, kPixelBytes, lookupOf(dataKey(7)));
  opener.check(sealed.ciphertext.data(), sealed.ciphertext.size());
  EXPECT_THROW(opener.verify(*sealed.header), CryptError);
}

TEST(NativePixelOpen, AnUnknownKeyIsRefusedAsUnknown) {
  Sealed sealed = sealStreaming(pattern(kPixelBytes, 8), dataKey(8));
  const KeyLookup none = [](const std::string&) -> SecretBytes {
    throw CryptError(CryptErrorKind::UnknownKey, "no such key");
  };
  try {
    NativePixelDataOpener opener(*sealed.header, EXS_LittleEndianExplicit, kPixelBytes, none);
    FAIL() << "opened without a key";
  } catch (const CryptError& e) {
    EXPECT_EQ(e.kind(), CryptErrorKind::UnknownKey);
  }
}

TEST(NativePixelOpen, ATruncatedOrOverlongValueIsRefused) {
  const SecretBytes key = dataKey(9);
  Sealed sealed = sealStreaming(pattern(kPixelBytes, 9), key);
  {
    NativePixelDataOpener opener(*sealed.header, EXS_LittleEndianExplicit, kPixelBytes, lookupOf(key));
    opener.check(sealed.ciphertext.data(), kPixelBytes - 2);
    EXPECT_THROW(opener.verify(*sealed.header), CryptError);
    EXPECT_TRUE(hasKeyReference(*sealed.header));
  }
  {
    NativePixelDataOpener opener(*sealed.header, EXS_LittleEndianExplicit, kPixelBytes, lookupOf(key));
    opener.check(sealed.ciphertext.data(), kPixelBytes);
    const std::uint8_t more[2] = {0, 0};
    EXPECT_THROW(opener.check(more, 2), CryptError);
  }
  // A length other than the recorded one is not for this path (nor for decryptDataset).
  EXPECT_FALSE(opensNativePixelDataStreaming(*sealed.header, kPixelBytes - 2));
  EXPECT_THROW(NativePixelDataOpener(*sealed.header, EXS_LittleEndianExplicit, kPixelBytes - 2, lookupOf(key)),
               CryptError);
}

TEST(NativePixelOpen, OnlyAesGcmObjectsWithOneNativePixelDataElementTakeThisPath) {
  auto plain = header();
  EXPECT_FALSE(opensNativePixelDataStreaming(*plain, kPixelBytes)) << "no key reference";
  Sealed sealed = sealStreaming(pattern(kPixelBytes, 10), dataKey(10));
  KeyReference ref = readKeyReference(*sealed.header);
  ref.record.backendId = "ae-he";
  removeKeyReference(*sealed.header);
  writeKeyReference(*sealed.header, ref);
  EXPECT_FALSE(opensNativePixelDataStreaming(*sealed.header, kPixelBytes)) << "another backend";
}

}  // namespace
}  // namespace pacsgw::codecs
