// The associated-data byte format is part of the stored format: pin it byte for byte.
#include "codecs/aad.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace pacsgw::codecs {
namespace {

using Bytes = std::vector<std::uint8_t>;

void text(Bytes& out, const std::string& s) {
  const auto n = static_cast<std::uint32_t>(s.size());
  out.insert(out.end(), {std::uint8_t(n), std::uint8_t(n >> 8), std::uint8_t(n >> 16), std::uint8_t(n >> 24)});
  out.insert(out.end(), s.begin(), s.end());
}

void u16(Bytes& out, std::uint16_t v) { out.insert(out.end(), {2, 0, 0, 0, std::uint8_t(v), std::uint8_t(v >> 8)}); }

detail::AadFields sample() {
  detail::AadFields f;
  f.sopInstanceUid = "1.2.3.4";
  f.sopClassUid = "1.2.840.10008.5.1.4.1.1.7";
  f.originalTransferSyntax = "1.2.840.10008.1.2.1";
  f.layout.rows = 512;
  f.layout.columns = 512;
  f.layout.samplesPerPixel = 1;
  f.layout.photometricInterpretation = "MONOCHROME2";
  f.layout.bitsAllocated = 16;
  f.layout.bitsStored = 12;
  f.layout.highBit = 11;
  f.layout.pixelRepresentation = 0;
  f.layout.planarConfiguration = 0;
  f.layout.numberOfFrames = 200;
  f.backendId = "aes-256-gcm";
  f.backendVersion = "1";
  f.keyId = "3f1c2a9e-5b7d-4e21-9c3a-7d2e1f0a4b6c";
  f.keyScope = "STUDY";
  f.elementTags = {0x7FE00010u};
  f.elementLengths = {104857600u};
  return f;
}

TEST(CodecsAad, ExactByteFormat) {
  detail::AadFields v1 = sample();
  v1.formatVersion = 1;
  v1.boundAttributes = {9, 9};  // format 1 ignores them
  Bytes expected;
  text(expected, "PACSGW-AAD-1");
  text(expected, "1.2.3.4");
  text(expected, "1.2.840.10008.5.1.4.1.1.7");
  text(expected, "1.2.840.10008.1.2.1");
  u16(expected, 512);
  u16(expected, 512);
  u16(expected, 1);
  text(expected, "MONOCHROME2");
  u16(expected, 16);
  u16(expected, 12);
  u16(expected, 11);
  u16(expected, 0);
  u16(expected, 0);
  expected.insert(expected.end(), {4, 0, 0, 0, 200, 0, 0, 0});
  text(expected, "aes-256-gcm");
  text(expected, "1");
  text(expected, "3f1c2a9e-5b7d-4e21-9c3a-7d2e1f0a4b6c");
  text(expected, "STUDY");
  expected.insert(expected.end(), {0x0C, 0, 0, 0, 1, 0, 0, 0, 0x10, 0x00, 0xE0, 0x7F, 0x00, 0x00, 0x40, 0x06});
  expected.insert(expected.end(), {4, 0, 0, 0, 0, 0, 0, 0});
  EXPECT_EQ(detail::buildAad(v1), expected);

  // Format 2: its own label, then the same fields, then the bound attributes as one more field.
  detail::AadFields v2 = sample();
  v2.formatVersion = 2;
  v2.boundAttributes = {1, 2, 3};
  Bytes expected2;
  text(expected2, "PACSGW-AAD-2");
  expected2.insert(expected2.end(), expected.begin() + 16, expected.end());
  expected2.insert(expected2.end(), {3, 0, 0, 0, 1, 2, 3});
  EXPECT_EQ(detail::buildAad(v2), expected2);

  // Format 3 (the backend works under its own subkey): the fields of format 2 under the label PACSGW-AAD-3.
  detail::AadFields v3 = v2;
  v3.formatVersion = 3;
  Bytes expected3;
  text(expected3, "PACSGW-AAD-3");
  expected3.insert(expected3.end(), expected2.begin() + 16, expected2.end());
  EXPECT_EQ(detail::buildAad(v3), expected3);
  v3.formatVersion = 4;
  EXPECT_THROW(detail::buildAad(v3), CipherError);
}

TEST(CodecsAad, FragmentsAndEveryFieldMatter) {
  detail::AadFields f = sample();
  f.formatVersion = 1;  // format 1 ends with the fragments
  f.fragmentLengths = {10, 20};
  const Bytes withFragments = detail::buildAad(f);
  const Bytes tail{12, 0, 0, 0, 2, 0, 0, 0, 10, 0, 0, 0, 20, 0, 0, 0};
  ASSERT_GE(withFragments.size(), tail.size());
  EXPECT_TRUE(std::equal(tail.begin(), tail.end(), withFragments.end() - tail.size()));

  const Bytes base = detail::buildAad(sample());
  std::vector<detail::AadFields> variants(11, sample());
  variants[0].sopInstanceUid = "1.2.3.5";
  variants[1].layout.columns = 256;
  variants[2].layout.numberOfFrames = 201;
  variants[3].keyScope = "SERIES";
  variants[4].elementLengths = {104857602u};
  variants[5].fragmentLengths = {104857600u};
  // Moving a byte between adjacent text fields must not give the same encoding.
  variants[6].sopInstanceUid = "1.2.3.41";
  variants[6].sopClassUid = ".2.840.10008.5.1.4.1.1.7";
  variants[7].layout.photometricInterpretation = "MONOCHROME1";
  variants[8].boundAttributes = {0};
  variants[9].formatVersion = 1;
  variants[10].formatVersion = 2;
  for (const auto& v : variants) EXPECT_NE(detail::buildAad(v), base);
}

TEST(CodecsAad, RejectsInconsistentElementLists) {
  detail::AadFields f = sample();
  f.elementLengths.push_back(1);
  EXPECT_THROW(detail::buildAad(f), CipherError);
}

}  // namespace
}  // namespace pacsgw::codecs
