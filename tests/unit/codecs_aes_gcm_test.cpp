// AES-256-GCM backend: published GCM vectors, segmented processing, tamper detection, and the registry.
#include "codecs/aes_gcm.h"
#include "codecs/pixel_cipher.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <string>
#include <vector>

namespace pacsgw::codecs {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes hex(const std::string& text) {
  Bytes out;
  for (std::size_t i = 0; i + 1 < text.size(); i += 2) out.push_back(static_cast<std::uint8_t>(std::stoi(text.substr(i, 2), nullptr, 16)));
  return out;
}

SecretBytes secret(const Bytes& b) { return SecretBytes(b.data(), b.size()); }

PixelBuffer single(Bytes& data) {
  PixelBuffer p;
  p.segments.push_back(ByteRange{data.data(), data.size()});
  return p;
}

// Splits `data` into segments of the given sizes (the last one takes the rest).
PixelBuffer split(Bytes& data, const std::vector<std::size_t>& sizes) {
  PixelBuffer p;
  std::size_t offset = 0;
  for (std::size_t s : sizes) {
    s = std::min(s, data.size() - offset);
    p.segments.push_back(ByteRange{data.data() + offset, s});
    offset += s;
  }
  p.segments.push_back(ByteRange{data.data() + offset, data.size() - offset});
  return p;
}

struct Vector {
  const char* key;
  const char* nonce;
  const char* plaintext;
  const char* aad;
  const char* ciphertext;
  const char* tag;
};

// AES-256 cases 13-16 of the GCM specification (McGrew & Viega), as used in NIST's validation suite.
const Vector kVectors[] = {
    {"0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000", "", "", "",
     "530f8afbc74536b9a963b4f1c4cb738b"},
    {"0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000",
     "00000000000000000000000000000000", "", "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"},
    {"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
     "",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
     "b094dac5d93471bdec1a502270e3cc6c"},
    {"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
     "feedfacedeadbeeffeedfacedeadbeefabaddad2",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"},
};

TEST(CodecsAesGcm, PublishedVectorsSealAndOpen) {
  for (const auto& v : kVectors) {
    Bytes data = hex(v.plaintext);
    PixelBuffer p = single(data);
    const Bytes tag = detail::aesGcmSeal(p, secret(hex(v.key)), hex(v.nonce), hex(v.aad));
    EXPECT_EQ(data, hex(v.ciphertext));
    EXPECT_EQ(tag, hex(v.tag));
    detail::aesGcmOpen(p, secret(hex(v.key)), hex(v.nonce), hex(v.aad), tag);
    EXPECT_EQ(data, hex(v.plaintext));
  }
}

TEST(CodecsAesGcm, SegmentsFormOneMessage) {
  const Vector& v = kVectors[3];
  for (const auto& sizes : std::vector<std::vector<std::size_t>>{{1}, {15, 17}, {0, 16, 0, 3}, {7, 7, 7, 7, 7}}) {
    Bytes data = hex(v.plaintext);
    PixelBuffer p = split(data, sizes);
    const Bytes tag = detail::aesGcmSeal(p, secret(hex(v.key)), hex(v.nonce), hex(v.aad));
    EXPECT_EQ(data, hex(v.ciphertext));
    EXPECT_EQ(tag, hex(v.tag));
  }
}

// A larger random message, in many segments, against OpenSSL's one-shot encryption of the concatenation.
TEST(CodecsAesGcm, MatchesOneShotOpenSsl) {
  Bytes key(32), nonce(12), aad(300), data(1 << 20);
  ASSERT_EQ(RAND_bytes(key.data(), 32), 1);
  ASSERT_EQ(RAND_bytes(nonce.data(), 12), 1);
  ASSERT_EQ(RAND_bytes(aad.data(), static_cast<int>(aad.size())), 1);
  ASSERT_EQ(RAND_bytes(data.data(), static_cast<int>(data.size())), 1);

  Bytes expected(data.size()), expectedTag(16);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int n = 0;
  ASSERT_EQ(EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key.data(), nonce.data()), 1);
  ASSERT_EQ(EVP_EncryptUpdate(ctx, nullptr, &n, aad.data(), static_cast<int>(aad.size())), 1);
  ASSERT_EQ(EVP_EncryptUpdate(ctx, expected.data(), &n, data.data(), static_cast<int>(data.size())), 1);
  ASSERT_EQ(EVP_EncryptFinal_ex(ctx, expected.data() + n, &n), 1);
  ASSERT_EQ(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, expectedTag.data()), 1);
  EVP_CIPHER_CTX_free(ctx);

  Bytes work = data;
  PixelBuffer p = split(work, {1, 2, 3, 4096, 13, 65535, 0, 100001});
  EXPECT_EQ(detail::aesGcmSeal(p, secret(key), nonce, aad), expectedTag);
  EXPECT_EQ(work, expected);
}

class CodecsAesGcmCipher : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(RAND_bytes(key_.data(), 32), 1);
    plain_.resize(4099);
    for (std::size_t i = 0; i < plain_.size(); ++i) plain_[i] = static_cast<std::uint8_t>(i * 7 + 3);
    data_ = plain_;
    pixels_ = split(data_, {1000, 3});
  }
  std::unique_ptr<PixelCipher> cipher_ = makeCipher("aes-256-gcm");
  SecretBytes key_{32};
  Bytes aad_{1, 2, 3, 4, 5};
  Bytes plain_, data_;
  PixelBuffer pixels_;
};

TEST_F(CodecsAesGcmCipher, InfoDescribesTheBackend) {
  const BackendInfo& info = cipher_->info();
  EXPECT_EQ(info.id, "aes-256-gcm");
  EXPECT_EQ(info.version, "1");
  EXPECT_TRUE(info.lossless);
  EXPECT_TRUE(info.authenticated);
  EXPECT_TRUE(info.supportsEncapsulated);
  EXPECT_TRUE(info.supportsFloat);
  EXPECT_EQ(cipher_->device(), Device::Cpu);
}

TEST_F(CodecsAesGcmCipher, RoundTripWithFreshNonces) {
  const CipherRecord a = cipher_->encrypt(pixels_, key_, aad_);
  EXPECT_NE(data_, plain_);
  EXPECT_EQ(a.backendId, "aes-256-gcm");
  EXPECT_EQ(a.backendVersion, "1");
  EXPECT_EQ(a.nonce.size(), 12u);
  EXPECT_EQ(a.tag.size(), 16u);
  EXPECT_TRUE(a.params.empty());
  const Bytes first = data_;
  cipher_->decrypt(pixels_, key_, aad_, a);
  EXPECT_EQ(data_, plain_);

  const CipherRecord b = cipher_->encrypt(pixels_, key_, aad_);
  EXPECT_NE(a.nonce, b.nonce);
  EXPECT_NE(data_, first);
  cipher_->decrypt(pixels_, key_, aad_, b);
  EXPECT_EQ(data_, plain_);
}

TEST_F(CodecsAesGcmCipher, EveryAlterationFailsAndLeavesCiphertext) {
  const CipherRecord record = cipher_->encrypt(pixels_, key_, aad_);
  const Bytes ciphertext = data_;

  auto expectRejected = [&](const CipherRecord& r, const Bytes& aad, const SecretBytes& key) {
    EXPECT_THROW(cipher_->decrypt(pixels_, key, aad, r), AuthenticationError);
    EXPECT_EQ(data_, ciphertext);  // no unverified plaintext left behind
  };
  for (std::size_t i : {std::size_t{0}, std::size_t{999}, std::size_t{1000}, std::size_t{1003}, data_.size() - 1}) {
    data_[i] ^= 0x01;
    EXPECT_THROW(cipher_->decrypt(pixels_, key_, aad_, record), AuthenticationError) << "byte " << i;
    data_[i] ^= 0x01;
    EXPECT_EQ(data_, ciphertext);
  }
  CipherRecord r = record;
  r.nonce[5] ^= 0x80;
  expectRejected(r, aad_, key_);
  r = record;
  r.tag[15] ^= 0x01;
  expectRejected(r, aad_, key_);
  r = record;
  r.tag.pop_back();
  expectRejected(r, aad_, key_);
  r = record;
  r.params = {1, 2};
  expectRejected(r, aad_, key_);
  Bytes aad = aad_;
  aad.back() ^= 0x01;
  expectRejected(record, aad, key_);
  SecretBytes other(32);
  expectRejected(record, aad_, other);

  cipher_->decrypt(pixels_, key_, aad_, record);
  EXPECT_EQ(data_, plain_);
}

TEST_F(CodecsAesGcmCipher, RefusesBadKeysAndForeignRecords) {
  SecretBytes shortKey(16);
  EXPECT_THROW(cipher_->encrypt(pixels_, shortKey, aad_), CipherError);
  EXPECT_EQ(data_, plain_);
  const CipherRecord record = cipher_->encrypt(pixels_, key_, aad_);
  CipherRecord foreign = record;
  foreign.backendId = "chaos-vpd";
  EXPECT_THROW(cipher_->decrypt(pixels_, key_, aad_, foreign), CipherError);
  foreign = record;
  foreign.backendVersion = "2";
  EXPECT_THROW(cipher_->decrypt(pixels_, key_, aad_, foreign), CipherError);
  Bytes nonce(11);
  EXPECT_THROW(detail::aesGcmSeal(pixels_, key_, nonce, aad_), CipherError);
}

TEST_F(CodecsAesGcmCipher, EmptyBufferStillAuthenticatesAad) {
  PixelBuffer empty;
  const CipherRecord record = cipher_->encrypt(empty, key_, aad_);
  EXPECT_NO_THROW(cipher_->decrypt(empty, key_, aad_, record));
  Bytes aad = aad_;
  aad[0] ^= 1;
  EXPECT_THROW(cipher_->decrypt(empty, key_, aad, record), AuthenticationError);
}

TEST(CodecsRegistry, ListsAndMakesBackends) {
  const auto ids = availableBackends();
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), "aes-256-gcm");
  for (const auto& id : ids) {
    auto c = makeCipher(id);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->info().id, id);
  }
}

TEST(CodecsRegistry, UnknownBackendNamesTheAvailableOnes) {
  try {
    makeCipher("rot13");
    FAIL() << "no exception";
  } catch (const CipherError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("rot13"), std::string::npos);
    EXPECT_NE(what.find("aes-256-gcm"), std::string::npos);
  }
  CipherOptions bad;
  bad.device = "tpu";
  EXPECT_THROW(makeCipher("aes-256-gcm", bad), CipherError);
}

TEST(CodecsRegistry, ResolvesDevices) {
  EXPECT_EQ(resolveDevice("cpu", true), Device::Cpu);
  EXPECT_EQ(resolveDevice("auto", true), Device::Cuda);
  EXPECT_EQ(resolveDevice("auto", false), Device::Cpu);
  EXPECT_EQ(resolveDevice("cuda", true), Device::Cuda);
  EXPECT_EQ(resolveDevice("AUTO", false), Device::Cpu);
  EXPECT_THROW(resolveDevice("cuda", false), CipherError);
  EXPECT_THROW(resolveDevice("gpu", true), CipherError);
}

}  // namespace
}  // namespace pacsgw::codecs
