// The key holder's fast Paillier encryption (CRT), batch encryption on threads, keys derived from a
// seed, fixed-point feature codes in densely packed ciphertexts, and the exact block-mean feature with
// its region mean computed on ciphertext.
#include "codecs/he/batch.h"
#include "codecs/he/encrypted_region.h"
#include "codecs/he/key_derivation.h"
#include "codecs/he/packed_vector.h"
#include "codecs/he/paillier.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <cmath>
#include <random>

namespace pacsgw::codecs::he {
namespace {

// The known-answer key and ciphertext of he_paillier_test.cpp (computed independently with Python).
const char* const kP =
    "FBB502B957191E38F0ED5C541C5211A1CB29D517245AA0A4E17AFB15C304FE610A67D4B13FC4AA3F9B5361B639ADC901"
    "35E59D8CDDB8BD7EFB0A80B2FA44AAA640AE864AE3F5364D7B912F37CC1D9E218C94AECED207FC11FAEA7613E628046C"
    "902FF1F0F4F1B8FD35CB25E751D444E42DC7C9DB0FEAE63A11A65065E60BCF65";
const char* const kQ =
    "D42A32D89B09B092CFED1E8C0085B8D54C6E25FB91B760EE49051826CCD627FEADF5B0D7D7CD2AAE84B7D47DD713EEDE"
    "2695AB6DB87AE8BD43A505DE4F966BE1DC857D12409B7E3D38B352D076A8D6531A1F69018171528DA79D6322277815FE"
    "D36C0E0850D452349937FC94B8B486D6351396AECA0A49A3A55FBC70B6510A1B";
const char* const kM = "123456789ABCDEF0123456789ABCDEF";
const char* const kR =
    "102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F202122232425262728292A2B2C2D2E2F303"
    "132333435363738393A3B3C3D3E3F404142434445464748494A4B4C4D4E4F505152535455565758595A5B5C5D5E5F606"
    "162636465666768696A6B6C6D6E6F707172737475767778797A7B7C7D7E7F808182838485868788898A8B8C8D8E8F909"
    "192939495969798999A9B9C9D9E9FA0A1A2A3A4A5A6A7A8A9AAABACADAEAFB0B1B2B3B4B5B6B7B8B9BABBBCBDBEBFC0C"
    "1C2C3C4C5C6C7";

const PaillierPrivateKey& katKey() {
  static const PaillierPrivateKey key(BigNum::fromHex(kP), BigNum::fromHex(kQ));
  return key;
}

std::vector<std::uint8_t> seedOf(std::uint8_t first) {
  std::vector<std::uint8_t> seed(32);
  for (std::size_t i = 0; i < seed.size(); ++i) seed[i] = static_cast<std::uint8_t>(first + i);
  return seed;
}

// One derived 2048-bit key shared by the tests below.
const PaillierPrivateKey& derivedKey() {
  static const PaillierPrivateKey key = [] {
    const auto seed = seedOf(0);
    return derivePaillierKey(seed.data(), seed.size(), 2048);
  }();
  return key;
}

std::string sha256Hex(const std::string& s) {
  unsigned char d[32];
  unsigned int len = 0;
  EXPECT_EQ(EVP_Digest(s.data(), s.size(), d, &len, EVP_sha256(), nullptr), 1);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char b : d) out += hex[b >> 4], out += hex[b & 15];
  return out;
}

TEST(PaillierFastEncryption, EqualsTextbookEncryptionWithTheCorrespondingRandomness) {
  // r^n mod p^2 = (r^q mod p)^p mod p^2: with s_p = r^q mod p and s_q = r^p mod q the key holder's
  // encryption must give the independently computed textbook ciphertext bit for bit.
  const BigNum p = BigNum::fromHex(kP), q = BigNum::fromHex(kQ), r = BigNum::fromHex(kR);
  BnCtx ctx;
  BigNum sp, sq;
  ASSERT_EQ(BN_mod_exp(sp.get(), r.get(), q.get(), p.get(), ctx.get()), 1);
  ASSERT_EQ(BN_mod_exp(sq.get(), r.get(), p.get(), q.get(), ctx.get()), 1);
  const BigNum m = BigNum::fromHex(kM);
  EXPECT_EQ(katKey().encryptWithResidueSeeds(m, sp, sq), katKey().publicKey().encryptWithRandomness(m, r));
  EXPECT_THROW(katKey().encryptWithResidueSeeds(m, p, sq), HeError);   // seed must be below p
  EXPECT_THROW(katKey().encryptWithResidueSeeds(m, BigNum(), sq), HeError);
  EXPECT_THROW(katKey().encrypt(katKey().publicKey().n()), HeError);  // plaintext must be below n
}

TEST(PaillierFastEncryption, RoundTripFreshRandomnessAndHomomorphyWithPublicCiphertexts) {
  const auto& key = derivedKey();
  const auto& pub = key.publicKey();
  std::mt19937_64 rng(3);
  for (int i = 0; i < 6; ++i) {
    const BigNum a = BigNum::fromWord(rng()), b = BigNum::fromWord(rng());
    const BigNum ca = key.encrypt(a), ca2 = key.encrypt(a), cb = pub.encrypt(b);
    EXPECT_NE(ca, ca2);
    EXPECT_EQ(key.decrypt(ca), a);
    EXPECT_EQ(key.decryptWithoutCrt(ca2), a);
    BigNum sum;
    ASSERT_EQ(BN_add(sum.get(), a.get(), b.get()), 1);
    EXPECT_EQ(key.decrypt(pub.add(ca, cb)), sum);
  }
}

TEST(PaillierFastEncryption, BatchesKeepTheirOrderOnSeveralThreads) {
  const auto& key = derivedKey();
  std::vector<BigNum> plain;
  for (BN_ULONG i = 0; i < 9; ++i) plain.push_back(BigNum::fromWord(1000 + i));
  const auto cipher = encryptAll(key, plain, 3);
  ASSERT_EQ(cipher.size(), plain.size());
  EXPECT_EQ(decryptAll(key, cipher, 2), plain);
  EXPECT_EQ(decryptAll(key, cipher, 1), plain);
  std::vector<BigNum> bad = cipher;
  bad[5] = key.publicKey().n();  // not a ciphertext: the error reaches the caller
  EXPECT_THROW(decryptAll(key, bad, 3), HeError);
  EXPECT_TRUE(encryptAll(key, {}, 4).empty());
}

TEST(PaillierKeyDerivation, TheSameSeedGivesTheSameKeyOnEveryMachine) {
  // Pinned: SHA-256 of n (uppercase hex) for seed 00 01 .. 1F at 2048 bits, computed independently
  // with Python (hmac/hashlib HKDF and a Miller-Rabin test).
  EXPECT_EQ(derivedKey().publicKey().modulusBits(), 2048);
  EXPECT_EQ(sha256Hex(derivedKey().publicKey().n().hex()),
            "eb2b9ccb647b1a2dbea459707658341181e96312f4cad56164e019c2e2bf299a");
  const auto other = seedOf(1);
  EXPECT_NE(derivePaillierKey(other.data(), other.size(), 2048).publicKey().n(), derivedKey().publicKey().n());
  const auto seed = seedOf(0);
  EXPECT_THROW(derivePaillierKey(seed.data(), 16, 2048), HeError);      // seed too short
  EXPECT_THROW(derivePaillierKey(seed.data(), seed.size(), 1024), HeError);
  EXPECT_THROW(derivePaillierKey(seed.data(), seed.size(), 2050), HeError);
}

TEST(PaillierKeyDerivation, TheCacheDerivesOncePerSeedAndStaysBounded) {
  PaillierKeyCache cache(1);
  const auto a = seedOf(0), b = seedOf(1);
  const auto k1 = cache.get(a.data(), a.size(), 2048);
  EXPECT_EQ(k1->publicKey().n(), derivedKey().publicKey().n());
  EXPECT_EQ(cache.get(a.data(), a.size(), 2048).get(), k1.get());  // cached: the same object
  const auto k2 = cache.get(b.data(), b.size(), 2048);
  EXPECT_NE(k2->publicKey().n(), k1->publicKey().n());
  EXPECT_NE(cache.get(a.data(), a.size(), 2048).get(), k1.get());  // capacity 1: a was dropped, derived again
}

TEST(FixedPoint, CodesRoundTripWithinHalfAStepAndClampOutsideTheRange) {
  const FixedPointCode code{-1.0f, 3.0f, 10};
  EXPECT_EQ(code.maxCode(), 1023u);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> v(-1.0f, 3.0f);
  for (int i = 0; i < 1000; ++i) {
    const float x = v(rng);
    EXPECT_LE(std::fabs(code.decode(code.encode(x)) - x), code.step() / 2 + 1e-6f);
  }
  EXPECT_EQ(code.encode(-5.0f), 0u);
  EXPECT_EQ(code.encode(7.0f), 1023u);
  EXPECT_EQ(code.encode(std::nanf("")), 0u);
  EXPECT_THROW((FixedPointCode{1.0f, 1.0f, 8}.validate()), HeError);
  EXPECT_THROW((FixedPointCode{0.0f, 1.0f, 33}.validate()), HeError);
}

TEST(EncryptedVector, DensePackingRoundTripAndSlotSums) {
  const auto& key = derivedKey();
  std::mt19937 rng(2);
  std::vector<std::uint64_t> a(1000), b(1000);
  for (auto& x : a) x = rng() % 256;
  for (auto& x : b) x = rng() % 256;
  // 8-bit codes in 10-bit slots: 204 slots per 2048-bit ciphertext, 2 bits of headroom (4 vectors).
  const auto ea = encryptVector(key, a, 255, 10, 2), eb = encryptVector(key, b, 255, 10, 2);
  EXPECT_EQ(slotsPerCiphertext(key.publicKey(), 10), 204u);
  EXPECT_EQ(ea.ciphertexts.size(), 5u);  // ceil(1000 / 204)
  EXPECT_EQ(decryptVector(key, ea), a);
  const auto sum = addVectors(key.publicKey(), ea, eb);
  const auto plain = decryptVector(key, sum);
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_EQ(plain[i], a[i] + b[i]);
  // Bounds: 255 * 4 = 1020 fits 10 bits, a fifth addend could carry and is refused.
  auto acc = addVectors(key.publicKey(), sum, sum);
  EXPECT_EQ(acc.slotBound, 1020u);
  EXPECT_THROW(addVectors(key.publicKey(), acc, ea), HeError);
  EXPECT_THROW(encryptVector(key, {256}, 255, 10), HeError);   // value above its bound
  EXPECT_THROW(encryptVector(key, {1}, 1024, 10), HeError);    // bound above the slot width
  auto truncated = ea;
  truncated.ciphertexts.pop_back();
  EXPECT_THROW(decryptVector(key, truncated), HeError);
}

TEST(EncryptedVector, AnotherKeyDoesNotDecrypt) {
  const auto& key = derivedKey();
  const auto otherSeed = seedOf(9);
  const PaillierPrivateKey other = derivePaillierKey(otherSeed.data(), otherSeed.size(), 2048);
  std::vector<std::uint64_t> v(300, 200);
  const auto e = encryptVector(key, v, 255, 8);
  bool refusedOrWrong = false;
  try {
    refusedOrWrong = decryptVector(other, e) != v;
  } catch (const HeError&) {
    refusedOrWrong = true;
  }
  EXPECT_TRUE(refusedOrWrong);
}

TEST(BlockGrid, RegionMeanOnCiphertextEqualsTheMeanOfTheOriginalSignedSamples) {
  const auto& key = derivedKey();
  const PackedPaillier he(key.publicKey());
  // A 70 x 90 signed 16-bit image (CT-like, -1024..3071) in 16 x 16 tiles: 5 x 6 tiles, the last row
  // and column of tiles partial.
  const std::size_t rows = 70, columns = 90;
  std::mt19937 rng(4);
  std::uniform_int_distribution<int> hu(-1024, 3071);
  std::vector<std::int32_t> samples(rows * columns);
  for (auto& s : samples) s = hu(rng);
  const BlockGrid grid = blockSums(samples, rows, columns, 16, 32768, 65535);
  EXPECT_EQ(grid.rows, 5u);
  EXPECT_EQ(grid.columns, 6u);
  const EncryptedImage enc = encryptGrid(key, he, grid.sums, grid.rows, grid.columns, grid.bound(), 2);
  for (const Region& tiles : {Region{0, 0, 5, 6}, Region{1, 2, 2, 3}, Region{4, 5, 1, 1}, Region{0, 4, 5, 2}}) {
    const PackedCiphertext sum = encryptedRegionSum(he, enc, tiles);
    EXPECT_EQ(decryptBlockRegionMean(key, he, enc, grid, sum, tiles), plaintextBlockRegionMean(samples, grid, tiles))
        << tiles.row << "," << tiles.column << " " << tiles.rows << "x" << tiles.columns;
  }
  EXPECT_EQ(grid.pixels(Region{4, 5, 1, 1}), 6u * 10u);
  std::vector<std::int32_t> outOfRange = samples;
  outOfRange[7] = -40000;
  EXPECT_THROW(blockSums(outOfRange, rows, columns, 16, 32768, 65535), HeError);
}

}  // namespace
}  // namespace pacsgw::codecs::he
