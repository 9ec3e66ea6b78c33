// RFC 5649 key wrap: known-answer vectors, round trips and tamper detection.
#include "keystore/keystore.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using pacsgw::SecretBytes;
using namespace pacsgw::keystore;

namespace {

std::vector<std::uint8_t> fromHex(const std::string& text) {
  std::vector<std::uint8_t> out;
  std::string digits;
  for (char c : text) {
    if (c != ' ') digits.push_back(c);
  }
  for (std::size_t i = 0; i + 1 < digits.size(); i += 2) {
    out.push_back(static_cast<std::uint8_t>(std::stoi(digits.substr(i, 2), nullptr, 16)));
  }
  return out;
}

SecretBytes secret(const std::string& hex) {
  const std::vector<std::uint8_t> bytes = fromHex(hex);
  return SecretBytes(bytes.data(), bytes.size());
}

std::vector<std::uint8_t> bytesOf(const SecretBytes& s) {
  return std::vector<std::uint8_t>(s.data(), s.data() + s.size());
}

// RFC 5649 section 6 uses a 192-bit KEK for both examples.
const char* const kRfcKek = "5840df6e29b02af1 ab493b705bf16ea1 ae8338f4dcc176a8";

}  // namespace

TEST(KeyWrap, Rfc5649TwentyByteKey) {
  const SecretBytes kek = secret(kRfcKek);
  const SecretBytes key = secret("c37b7e6492584340 bed1220780894115 5068f738");
  const std::vector<std::uint8_t> expected =
      fromHex("138bdeaa9b8fa7fc 61f97742e72248ee 5ae6ae5360d1ae6a 5f54f373fa543b6a");
  EXPECT_EQ(wrapKey(kek, key), expected);
  EXPECT_EQ(bytesOf(unwrapKey(kek, expected)), bytesOf(key));
}

TEST(KeyWrap, Rfc5649SevenByteKey) {
  const SecretBytes kek = secret(kRfcKek);
  const SecretBytes key = secret("466f7250617369");
  const std::vector<std::uint8_t> expected = fromHex("afbeb0f07dfbf541 9200f2ccb50bb24f");
  EXPECT_EQ(wrapKey(kek, key), expected);
  EXPECT_EQ(bytesOf(unwrapKey(kek, expected)), bytesOf(key));
}

TEST(KeyWrap, RoundTripWith256BitKekForAllSmallLengths) {
  const SecretBytes kek = secret("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
  for (std::size_t length = 1; length <= 40; ++length) {
    SecretBytes key(length);
    for (std::size_t i = 0; i < length; ++i) key.data()[i] = static_cast<std::uint8_t>(0xa0 + i);
    const std::vector<std::uint8_t> wrapped = wrapKey(kek, key);
    EXPECT_EQ(wrapped.size(), (length + 7) / 8 * 8 + 8) << "length " << length;
    EXPECT_EQ(bytesOf(unwrapKey(kek, wrapped)), bytesOf(key)) << "length " << length;
  }
}

TEST(KeyWrap, DataKeyWrapsTo40Bytes) {
  const SecretBytes kek(32);
  const SecretBytes key(32);
  EXPECT_EQ(wrapKey(kek, key).size(), 40u);
}

TEST(KeyWrap, EveryTamperedByteIsDetected) {
  const SecretBytes kek = secret(kRfcKek);
  const SecretBytes key = secret("c37b7e6492584340 bed1220780894115 5068f738");
  const std::vector<std::uint8_t> wrapped = wrapKey(kek, key);
  for (std::size_t i = 0; i < wrapped.size(); ++i) {
    std::vector<std::uint8_t> tampered = wrapped;
    tampered[i] ^= 0x01;
    EXPECT_THROW(unwrapKey(kek, tampered), KeystoreError) << "byte " << i;
  }
}

TEST(KeyWrap, WrongKekIsDetected) {
  const SecretBytes kek = secret(kRfcKek);
  SecretBytes other = secret(kRfcKek);
  other.data()[0] ^= 0x80;
  const std::vector<std::uint8_t> wrapped = wrapKey(kek, secret("466f7250617369"));
  EXPECT_THROW(unwrapKey(other, wrapped), KeystoreError);
}

TEST(KeyWrap, RejectsBadLengths) {
  const SecretBytes kek(32);
  EXPECT_THROW(wrapKey(kek, SecretBytes()), KeystoreError);
  EXPECT_THROW(wrapKey(SecretBytes(20), SecretBytes(32)), KeystoreError);
  EXPECT_THROW(unwrapKey(SecretBytes(31), std::vector<std::uint8_t>(40)), KeystoreError);
  EXPECT_THROW(unwrapKey(kek, std::vector<std::uint8_t>()), KeystoreError);
  EXPECT_THROW(unwrapKey(kek, std::vector<std::uint8_t>(8)), KeystoreError);
  EXPECT_THROW(unwrapKey(kek, std::vector<std::uint8_t>(41)), KeystoreError);
  // A truncated wrap of a real key must fail too.
  std::vector<std::uint8_t> wrapped = wrapKey(kek, SecretBytes(32));
  wrapped.resize(32);
  EXPECT_THROW(unwrapKey(kek, wrapped), KeystoreError);
}

TEST(KeyScopeText, RoundTripsAndRejectsUnknown) {
  for (KeyScope scope : {KeyScope::Study, KeyScope::Series, KeyScope::Instance}) {
    EXPECT_EQ(keyScopeFromString(toString(scope)), scope);
  }
  EXPECT_STREQ(toString(KeyScope::Study), "study");
  EXPECT_THROW(keyScopeFromString("patient"), KeystoreError);
  EXPECT_THROW(keyScopeFromString("Study"), KeystoreError);
}
