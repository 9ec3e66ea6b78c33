// Choosing the transfer syntax a retrieved instance goes out in, and converting it without changing
// a pixel value. Pure in-memory data sets: no sockets.
#include "gateway/delivery_syntax.h"
#include "gateway/dimse_status.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace pacsgw::gateway {
namespace {

// A 64x48 16-bit monochrome image with varied values (RLE and JPEG-LS must both do real work).
std::unique_ptr<DcmDataset> smallImage(std::vector<Uint16>& pixels) {
  auto ds = std::make_unique<DcmDataset>();
  ds->putAndInsertString(DCM_SOPClassUID, UID_CTImageStorage);
  ds->putAndInsertString(DCM_SOPInstanceUID, "1.2.826.0.1.3680043.8.498.1");
  ds->putAndInsertUint16(DCM_Rows, 48);
  ds->putAndInsertUint16(DCM_Columns, 64);
  ds->putAndInsertUint16(DCM_SamplesPerPixel, 1);
  ds->putAndInsertString(DCM_PhotometricInterpretation, "MONOCHROME2");
  ds->putAndInsertUint16(DCM_BitsAllocated, 16);
  ds->putAndInsertUint16(DCM_BitsStored, 16);
  ds->putAndInsertUint16(DCM_HighBit, 15);
  ds->putAndInsertUint16(DCM_PixelRepresentation, 0);
  pixels.resize(64 * 48);
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<Uint16>((i * 2654435761u) >> 13);
  ds->putAndInsertUint16Array(DCM_PixelData, pixels.data(), static_cast<unsigned long>(pixels.size()));
  return ds;
}

std::vector<Uint16> nativePixels(DcmDataset& ds) {
  const Uint16* values = nullptr;
  unsigned long count = 0;
  EXPECT_TRUE(ds.findAndGetUint16Array(DCM_PixelData, values, &count).good());
  return std::vector<Uint16>(values, values + count);
}

TEST(DeliverySyntax, WhatMayBeConvertedTo) {
  EXPECT_TRUE(canTranscode(EXS_LittleEndianImplicit, EXS_LittleEndianExplicit, Transcoding::NativeOnly));
  EXPECT_TRUE(canTranscode(EXS_RLELossless, EXS_RLELossless, Transcoding::NativeOnly));
  // Encrypted compressed fragments cannot be decoded.
  EXPECT_FALSE(canTranscode(EXS_RLELossless, EXS_LittleEndianExplicit, Transcoding::NativeOnly));
  EXPECT_FALSE(canTranscode(EXS_LittleEndianExplicit, EXS_RLELossless, Transcoding::NativeOnly));
  // Pixel values in the clear: lossless codecs both ways.
  EXPECT_TRUE(canTranscode(EXS_JPEGLSLossless, EXS_LittleEndianExplicit, Transcoding::Lossless));
  EXPECT_TRUE(canTranscode(EXS_JPEGProcess14SV1, EXS_RLELossless, Transcoding::Lossless));
  EXPECT_TRUE(canTranscode(EXS_LittleEndianExplicit, EXS_JPEGLSLossless, Transcoding::Lossless));
  // Never to or from a lossy syntax.
  EXPECT_FALSE(canTranscode(EXS_JPEGProcess1, EXS_LittleEndianExplicit, Transcoding::Lossless));
  EXPECT_FALSE(canTranscode(EXS_LittleEndianExplicit, EXS_JPEGProcess1, Transcoding::Lossless));
  EXPECT_FALSE(canTranscode(EXS_JPEG2000, EXS_LittleEndianExplicit, Transcoding::Lossless));
  EXPECT_FALSE(canTranscode(EXS_JPEGLSLossy, EXS_LittleEndianExplicit, Transcoding::Lossless));
}

TEST(DeliverySyntax, ProposesStoredSyntaxAndUncompressedSeparately) {
  const auto rle = proposalsFor(EXS_RLELossless, Transcoding::Lossless);
  ASSERT_EQ(rle.size(), 2u);
  EXPECT_EQ(rle[0], std::vector<std::string>{UID_RLELosslessTransferSyntax});
  EXPECT_EQ(rle[1].front(), UID_LittleEndianExplicitTransferSyntax);
  // Ciphertext or lossy: only what is stored.
  EXPECT_EQ(proposalsFor(EXS_RLELossless, Transcoding::NativeOnly).size(), 1u);
  EXPECT_EQ(proposalsFor(EXS_JPEGProcess1, Transcoding::Lossless).size(), 1u);
  // Native: one context, stored syntax first.
  const auto implicit = proposalsFor(EXS_LittleEndianImplicit, Transcoding::NativeOnly);
  ASSERT_EQ(implicit.size(), 1u);
  EXPECT_EQ(implicit[0].front(), UID_LittleEndianImplicitTransferSyntax);
  EXPECT_EQ(implicit[0].size(), 2u);
}

TEST(DeliverySyntax, RoundTripsThroughEveryLosslessCodecBitExact) {
  std::vector<Uint16> original;
  for (E_TransferSyntax codec : {EXS_RLELossless, EXS_JPEGLSLossless, EXS_JPEGProcess14SV1}) {
    SCOPED_TRACE(DcmXfer(codec).getXferName());
    auto ds = smallImage(original);
    std::string why;
    ASSERT_TRUE(transcode(*ds, EXS_LittleEndianExplicit, codec, why)) << why;
    ASSERT_TRUE(ds->canWriteXfer(codec)) << "no compressed representation";
    ASSERT_TRUE(transcode(*ds, codec, EXS_LittleEndianExplicit, why)) << why;
    EXPECT_EQ(nativePixels(*ds), original);
  }
  // Compressed to another compression goes through the decoded values.
  auto ds = smallImage(original);
  std::string why;
  ASSERT_TRUE(transcode(*ds, EXS_LittleEndianExplicit, EXS_JPEGLSLossless, why)) << why;
  ASSERT_TRUE(transcode(*ds, EXS_JPEGLSLossless, EXS_RLELossless, why)) << why;
  ASSERT_TRUE(transcode(*ds, EXS_RLELossless, EXS_LittleEndianImplicit, why)) << why;
  EXPECT_EQ(nativePixels(*ds), original);
}

TEST(DeliverySyntax, RefusesToDecodeBeyondTheLimit) {
  std::vector<Uint16> pixels;
  auto ds = smallImage(pixels);
  std::string why;
  ASSERT_TRUE(transcode(*ds, EXS_LittleEndianExplicit, EXS_RLELossless, why)) << why;
  // The object now claims 65535 x 65535 x 2 bytes x 200 frames: far beyond 1 GiB.
  ds->putAndInsertUint16(DCM_Rows, 65535);
  ds->putAndInsertUint16(DCM_Columns, 65535);
  ds->putAndInsertString(DCM_NumberOfFrames, "200");
  EXPECT_FALSE(transcode(*ds, EXS_RLELossless, EXS_LittleEndianExplicit, why));
  EXPECT_NE(why.find("limit"), std::string::npos) << why;
}

TEST(DeliverySyntax, DocumentsWithoutPixelDataGoOutInAnySyntax) {
  DcmDataset ds;
  ds.putAndInsertString(DCM_SOPClassUID, UID_BasicTextSRStorage);
  ds.putAndInsertString(DCM_TextValue, "No acute findings.");
  std::string why;
  EXPECT_TRUE(transcode(ds, EXS_LittleEndianExplicit, EXS_RLELossless, why)) << why;
  EXPECT_TRUE(transcode(ds, EXS_RLELossless, EXS_LittleEndianImplicit, why)) << why;
}

TEST(DimseStatus, Predicates) {
  EXPECT_TRUE(status::isStored(0x0000));
  EXPECT_TRUE(status::isStored(0xB007));
  EXPECT_FALSE(status::isStored(0xA700));
  EXPECT_TRUE(status::isFailure(0xC000));
  EXPECT_TRUE(status::isFailure(status::kNoAcceptableTransferSyntax));
  EXPECT_FALSE(status::isFailure(0xFF01));
  EXPECT_FALSE(status::isFailure(0xFE00));
  EXPECT_FALSE(status::isFailure(0xB000));
  EXPECT_EQ(describeStatus(status::kNoAcceptableTransferSyntax), "Failure: no acceptable transfer syntax");
  EXPECT_EQ(describeStatus(0x0124), "Refused: Not authorised");
}

}  // namespace
}  // namespace pacsgw::gateway
