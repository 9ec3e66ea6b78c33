// Paillier on OpenSSL BIGNUM: known answers, homomorphic properties on random inputs, slot packing and
// its overflow guard, and the region mean computed on ciphertext against the plaintext mean.
#include "codecs/he/encrypted_region.h"
#include "codecs/he/paillier.h"
#include "codecs/he/slot_packing.h"

#include <gtest/gtest.h>

#include <random>
#include <thread>

namespace pacsgw::codecs::he {
namespace {

// Reference values computed independently with Python integers (pow), primes from `openssl prime`.
const char* const kP =
    "FBB502B957191E38F0ED5C541C5211A1CB29D517245AA0A4E17AFB15C304FE610A67D4B13FC4AA3F9B5361B639ADC901"
    "35E59D8CDDB8BD7EFB0A80B2FA44AAA640AE864AE3F5364D7B912F37CC1D9E218C94AECED207FC11FAEA7613E628046C"
    "902FF1F0F4F1B8FD35CB25E751D444E42DC7C9DB0FEAE63A11A65065E60BCF65";

const char* const kQ =
    "D42A32D89B09B092CFED1E8C0085B8D54C6E25FB91B760EE49051826CCD627FEADF5B0D7D7CD2AAE84B7D47DD713EEDE"
    "2695AB6DB87AE8BD43A505DE4F966BE1DC857D12409B7E3D38B352D076A8D6531A1F69018171528DA79D6322277815FE"
    "D36C0E0850D452349937FC94B8B486D6351396AECA0A49A3A55FBC70B6510A1B";

const char* const kM =
    "123456789ABCDEF0123456789ABCDEF";

const char* const kR =
    "102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F202122232425262728292A2B2C2D2E2F303"
    "132333435363738393A3B3C3D3E3F404142434445464748494A4B4C4D4E4F505152535455565758595A5B5C5D5E5F606"
    "162636465666768696A6B6C6D6E6F707172737475767778797A7B7C7D7E7F808182838485868788898A8B8C8D8E8F909"
    "192939495969798999A9B9C9D9E9FA0A1A2A3A4A5A6A7A8A9AAABACADAEAFB0B1B2B3B4B5B6B7B8B9BABBBCBDBEBFC0C"
    "1C2C3C4C5C6C7";

const char* const kC =
    "726A3C0DC315A681BBEABF48FA37ACCAB867665A2B1B8D4460F3B40DF204DFFC7AB81DE96E1BFF9257A3334D08C5E51E"
    "154C57D541D20A51BABACB360797D544A43EDD39F26DC8B895A5256E67481D57542980913D3CA1A511600E9A07F41408"
    "BF5BD494CE43F597918F1A95A782E015302704C2088D236E2D2A21778F391E56E5D0E443C1217345F18BE92910BD6284"
    "406AB4F5C4083A29F4C0D7CD5BB33ADB873925956841A076279174F9DC7CD7CE4372ED0422D2554CAE1AE0BABAF08AFD"
    "92287E51FBAB27C1B01143576872C92CC7993FF1CC9F3DBB5C79D61F445F21F97CEFF2005BC8079331AA5A33F1526255"
    "4CFAB7EB750785AEA2F41B252D84D5F257DD8CE0BA9DEF31E63285D3E16AC5AB2596ED7E2D06F6F6229CD363EA8D903D"
    "8729137A558E00BF42E1C706465DB55EC10708C296AB03634781B20278B7ED3A496C530FE086FEE7AB1DEEAF91922B7C"
    "3E6B0B146D3A96829BF5171CB60BA9CBE1CB6C0EA22369B6B81FEDB0ED91B2E33C0FF74804C778CCF8493CF459234D46"
    "32A5F38AF481EED09BECF7CA758B1CCB43132675ADD812DF5170C8F94F126962548701D2700FC75547334CD50AA7AA81"
    "1801010D7E5E89DB888AAC626BC3E14F8F85F1EB19AC8748D2C94E460656A4EE855378CA6CD888A6D99E41FE307B1EAE"
    "D310C479E82B35EA484C7A10D0965BBFCAE52D53CB7BA912DF59994A89D921C3";

const char* const kM2 =
    "2A";

const char* const kR2 =
    "FEEDFACECAFEBEEF";

const char* const kC2 =
    "9DD0E8F9D7600E7B5B838C36AD75AE6EF83DB2FB571AE619A756E3F795E07ED4C73EF2D20F2DE7ADCF379FA722EDF277"
    "B7C2C84EF39CA8222F36823C42EA807345A1B8A60973D7F125BCDFCE6FCC5A7328B0C8C27CF033B2995EE902FB0C6A9F"
    "227CBDBE43178700AAE655D31310A6FBA46F8563AD4024D0C280939AA4A6188A4163231DEA7A88776032EFC0AC74A173"
    "41BB2F7294F6EAF123C7EA89C11FD8753E820A2942EDD72E3557150238B992FD9BC17CC9AB84266111B34AD1A608B75B"
    "E054B9B32232A26E07D88DD9935FFC96CDDDE92B45028F44DA6190AB371C365633FA6204C895E413DEAC092A5891982B"
    "C6CDD0A931460FF9D0A93DA79E2F7B91E9EF0C06C9BE8608D792E8D3732E7C54DD3552DFA3D6F55CFF5D61A6ACED7529"
    "B2897F8E383F5DDE63556051030878C97CF3BF40D2C8A05BB07306943CB12FB3C19F5F29AA9FA43AD9AEAEEF71C2C302"
    "9CFDED918A33C0BDC8D344D6C847A062F4AE684125D2E9CDB098A009996D8161FDB045BF5175CBB7140FC1F0BBCE795C"
    "1D86919364CD0120E025A6A686C738DEF4B421A1827444A454A6516B6183984E9C095442237926F73F2DE32544398EA2"
    "87FC2DD1446CE350C16CDAF9E9D5F016A9F4A7EE54CDFE16FFD8C9724B8DEE64FA4B6603E9E18C1090B2D2C174EBF5B0"
    "F9D5571BA95739A5F65AC89C47B88143082C5638851549394CCBB03E847492AC";

const char* const kSum =
    "4C1AC054FE5D6D7BAAED1F26BE2FC728F673D7C6CAC87ED025D8CB4C09A6D310011278758629E00760A135FF1B4DAAF3"
    "4398EF88F9E7B9488ED8B7FD0F7FE2010FAA6D53D3920CEA9FE5F87AD10807754AA88D2FF5B80D058449C12C01887FFF"
    "71CD0429AB25DB747DA1C03868D13894309FAD6CE64F876D96F2E75B8EA2B31FF551112BA138C4E56AB33D7393540AE6"
    "B9BDEA5522C9FE091BDE87CB2E6F2132519CC9ACB430B352D17D0137AC9FB1A63AC8B84C6A1A9CC0EFAFAC7526CC38A1"
    "2AC121B80A6AFB2A4400024C1F47DC38013D8A519465EE90EE888D908130E77D15D83E83FFCDD5C93B769B52CC78B670"
    "716188B7CB50F33CC1FEFE14AC06F6A30ED08AE0D63F73943006C4B83F4A0C3091C39698CA20517CE2E7505F6CDD192D"
    "3B44A0164C3A5A94F2416D2B3C1FAF95B113EF971AAF024AF413678EBC4CD0E1906EDDB6C85EAA07EE5351158887D7A2"
    "D27B9FFEE01319A23EF96659F500E77F2BBBD5D0F78109773A4E81F514FE02AD4972BE88C4BC1F9841F318C8BB3743F8"
    "6E5ACD766C54BC1149A2BC02B11566AD4DD9FB95DD1CE14F7300C53805F59D2C9F572F79DDC7F407B1533B6B67ED5AD8"
    "DDF74FA36E4EA7ACE7EE0D1CC649811DBEE40EBB0A8695B78CDFFF2E54730E26D69D901103E5A779CD746F6A8E7B8548"
    "0A24876915E819557472D2BE36B66105453BE902B39297EC89965B7AC3E8D2F7";

const char* const kTimes7 =
    "3E045BE5F47E8C71894777C6C89E8C0D254770A4D875FD148FE77D9D172FE985A520351E1364C8BB345D47FCCFB00F06"
    "84AA254881642CED3BB68E60B0EA590C0920434276B36A26D1CFDA554C38803F1B99B00A634A255124020C8E6E223E73"
    "C45ECC72C63387381F57D56F383454AC5B2DE2FF6BBD69A2E6192652CE321592F0925C7ABC5E8CCBD443A8E3DE7440D8"
    "95AC63B0E1314593BF1F7E553A17CCB03A5576A070675F68BF651854EB99EA69C76A01B9E516CC3648D123D47ADA9A36"
    "9F612290A4812AE2F5F44F5C4D273B3D196B10E2387FB3D536ECC3A24EF527311C7AA2C4058B798AD6579882FC6D1505"
    "B1BEF5AEE2C8EC23F70277BF5B68105ADF0913F91C05B076B6C843FB2ADF779EFC6E391C4F6E3744BAB17744AAD21BF7"
    "48671A2E18E44C2EBDF51C24BD49009356EB12E0C44589C3D9366E77C686308090F90A511874A833FF66504969BC1C64"
    "B8387D7357074A7B57F0DD4AA6DC3B6EB0C961EFF688FBE6EF9189DC3B48E50713A95670AA1027ED02F2AC17DA1FF6BC"
    "01884C3AE9FCB05231F521863957F57CFE76FB95ECCE7288CE7A3AB4FDB4EE8D990DC7B4260918EA507BC11CD37E6814"
    "8D7CAF862BCBF19ABB3119294B9AB284B00BE6FD4AAAF5529814AC31EA0C50A1714B63C89CC5C64D1ACD5EC42275769A"
    "FEE9EDB80646E416B715D3EB145BADBB164F232FA18C5E50B20A2FE15ACA60B9";

const PaillierPrivateKey& katKey() {
  static const PaillierPrivateKey key(BigNum::fromHex(kP), BigNum::fromHex(kQ));
  return key;
}

// One generated 2048-bit key shared by the property tests (key generation takes a fraction of a second).
const PaillierPrivateKey& randomKey() {
  static const PaillierPrivateKey key = generatePaillierKey(2048);
  return key;
}

BigNum randomBelow(const BigNum& bound) {
  BigNum r;
  EXPECT_EQ(BN_rand_range(r.get(), bound.get()), 1);
  return r;
}

TEST(Paillier, EncryptionMatchesIndependentlyComputedCiphertext) {
  const auto& pub = katKey().publicKey();
  EXPECT_EQ(pub.modulusBits(), 2048);
  EXPECT_EQ(pub.encryptWithRandomness(BigNum::fromHex(kM), BigNum::fromHex(kR)), BigNum::fromHex(kC));
  EXPECT_EQ(pub.encryptWithRandomness(BigNum::fromHex(kM2), BigNum::fromHex(kR2)), BigNum::fromHex(kC2));
}

TEST(Paillier, CrtAndTextbookDecryptionRecoverTheKnownPlaintext) {
  EXPECT_EQ(katKey().decrypt(BigNum::fromHex(kC)), BigNum::fromHex(kM));
  EXPECT_EQ(katKey().decryptWithoutCrt(BigNum::fromHex(kC)), BigNum::fromHex(kM));
  EXPECT_EQ(katKey().decrypt(BigNum::fromHex(kC2)), BigNum::fromHex(kM2));
}

TEST(Paillier, HomomorphicOperationsMatchKnownAnswers) {
  const auto& pub = katKey().publicKey();
  const BigNum c = BigNum::fromHex(kC), c2 = BigNum::fromHex(kC2);
  EXPECT_EQ(pub.add(c, c2), BigNum::fromHex(kSum));
  EXPECT_EQ(pub.multiplyPlain(c, BigNum::fromWord(7)), BigNum::fromHex(kTimes7));
  BigNum expectedSum = BigNum::fromHex(kM);
  ASSERT_EQ(BN_add_word(expectedSum.get(), 42), 1);
  EXPECT_EQ(katKey().decrypt(BigNum::fromHex(kSum)), expectedSum);
}

TEST(Paillier, KeyGenerationGivesTheRequestedModulusAndRefusesWeakSizes) {
  EXPECT_EQ(randomKey().publicKey().modulusBits(), 2048);
  EXPECT_THROW(generatePaillierKey(1024), HeError);
  EXPECT_THROW(generatePaillierKey(2049), HeError);
  EXPECT_THROW(PaillierPrivateKey(BigNum::fromHex(kP), BigNum::fromHex(kP)), HeError);
  BigNum notPrime = BigNum::fromHex(kQ);
  ASSERT_EQ(BN_add_word(notPrime.get(), 2), 1);  // odd, same size, composite with overwhelming probability
  if (BN_check_prime(notPrime.get(), nullptr, nullptr) == 0) {
    EXPECT_THROW(PaillierPrivateKey(BigNum::fromHex(kP), notPrime), HeError);
  }
}

TEST(Paillier, EveryEncryptionUsesFreshRandomness) {
  const auto& pub = randomKey().publicKey();
  const BigNum m = BigNum::fromWord(12345);
  const BigNum a = pub.encrypt(m), b = pub.encrypt(m);
  EXPECT_NE(a, b);
  EXPECT_EQ(randomKey().decrypt(a), m);
  EXPECT_EQ(randomKey().decrypt(b), m);
}

TEST(Paillier, RandomisedRoundTripAndHomomorphy) {
  const auto& key = randomKey();
  const auto& pub = key.publicKey();
  for (int i = 0; i < 12; ++i) {
    const BigNum a = randomBelow(pub.n()), b = randomBelow(pub.n()), k = randomBelow(pub.n());
    const BigNum ca = pub.encrypt(a), cb = pub.encrypt(b);
    EXPECT_EQ(key.decrypt(ca), a);
    EXPECT_EQ(key.decryptWithoutCrt(ca), a);
    BnCtx ctx;
    BigNum sum, product, plainSum;
    ASSERT_EQ(BN_mod_add(sum.get(), a.get(), b.get(), pub.n().get(), ctx.get()), 1);
    ASSERT_EQ(BN_mod_mul(product.get(), a.get(), k.get(), pub.n().get(), ctx.get()), 1);
    EXPECT_EQ(key.decrypt(pub.add(ca, cb)), sum);
    EXPECT_EQ(key.decrypt(pub.addPlain(ca, b)), sum);
    EXPECT_EQ(key.decrypt(pub.multiplyPlain(ca, k)), product);
  }
}

TEST(Paillier, InvalidInputsAreRefused) {
  const auto& key = randomKey();
  const auto& pub = key.publicKey();
  EXPECT_THROW(pub.encrypt(pub.n()), HeError);                 // plaintext must be < n
  EXPECT_THROW(key.decrypt(BigNum()), HeError);                // 0 is no ciphertext
  EXPECT_THROW(key.decrypt(pub.nSquared()), HeError);          // out of range
  EXPECT_THROW(key.decrypt(pub.n()), HeError);                 // not invertible mod n
  EXPECT_THROW(pub.multiplyPlain(pub.encrypt(BigNum::fromWord(1)), pub.n()), HeError);
}

TEST(Paillier, ThreadsShareOneKey) {
  const auto& key = randomKey();
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 3; ++i) {
        const BigNum m = BigNum::fromWord(static_cast<BN_ULONG>(1000 * t + i));
        if (key.decrypt(key.publicKey().encrypt(m)) != m) ++failures[t];
      }
    });
  for (auto& th : threads) th.join();
  for (int f : failures) EXPECT_EQ(f, 0);
}

TEST(SlotPacking, LayoutIsLittleEndianSlotsOfTheDeclaredWidth) {
  const SlotPacking packing(katKey().publicKey(), 48);
  EXPECT_EQ(packing.slots(), 2047u / 48u);  // 42
  EXPECT_EQ(packing.slotLimit(), (std::uint64_t{1} << 48) - 1);
  // 1 + 2 * 2^48 + 3 * 2^96
  EXPECT_EQ(packing.pack({1, 2, 3}), BigNum::fromHex("3" "000000000002" "000000000001"));
  EXPECT_EQ(packing.unpack(packing.pack({1, 2, 3}), 4), (std::vector<std::uint64_t>{1, 2, 3, 0}));
  EXPECT_THROW(packing.pack(std::vector<std::uint64_t>(43, 1)), HeError);
  EXPECT_THROW(packing.pack({std::uint64_t{1} << 48}), HeError);
}

TEST(SlotPacking, RandomisedPackedSumsAndScalingAreExact) {
  const auto& key = randomKey();
  const PackedPaillier he(key.publicKey());
  const std::size_t n = he.packing().slots();
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<std::uint64_t> sample(0, 65535);
  std::vector<std::uint64_t> a(n), b(n);
  for (int round = 0; round < 4; ++round) {
    for (std::size_t i = 0; i < n; ++i) a[i] = sample(rng), b[i] = sample(rng);
    const auto ca = he.encrypt(a, 65535), cb = he.encrypt(b, 65535);
    const std::uint64_t k = 1 + rng() % 100000;
    const auto sum = he.decrypt(key, he.add(ca, cb), n);
    const auto scaled = he.decrypt(key, he.multiply(ca, k), n);
    for (std::size_t i = 0; i < n; ++i) {
      EXPECT_EQ(sum[i], a[i] + b[i]);
      EXPECT_EQ(scaled[i], a[i] * k);
    }
  }
}

TEST(SlotPacking, AnOperationThatCouldOverflowASlotIsRefused) {
  const auto& key = randomKey();
  const PackedPaillier he(key.publicKey(), 20);  // 20-bit slots: limit 1 048 575
  const auto c = he.encrypt({65535, 1}, 65535);
  EXPECT_NO_THROW(he.multiply(c, 16));  // 1 048 560 fits
  EXPECT_THROW(he.multiply(c, 17), HeError);
  auto sum = c;
  for (int i = 0; i < 15; ++i) sum = he.add(sum, c);  // bound 16 * 65535
  EXPECT_THROW(he.add(sum, c), HeError);
  EXPECT_EQ(he.decrypt(key, sum, 2), (std::vector<std::uint64_t>{16 * 65535, 16}));
}

std::vector<std::uint16_t> randomImage(std::size_t rows, std::size_t columns, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> v(0, 4095);  // 12-bit CT-like values
  std::vector<std::uint16_t> img(rows * columns);
  for (auto& s : img) s = static_cast<std::uint16_t>(v(rng));
  return img;
}

TEST(EncryptedRegion, MeanComputedOnCiphertextEqualsThePlaintextMean) {
  const auto& key = randomKey();
  const PackedPaillier he(key.publicKey());
  const std::size_t rows = 12, columns = 50;
  const auto image = randomImage(rows, columns, 11);
  const EncryptedImage enc = encryptImage(he, image, rows, columns, 4095);
  EXPECT_EQ(enc.chunkWidth, 21u);  // 42 slots of 48 bits in a 2048-bit modulus, half of them for data
  EXPECT_EQ(enc.chunksPerRow, 3u);
  std::mt19937 rng(5);
  std::vector<Region> regions{{0, 0, rows, columns}, {3, 20, 1, 1}, {2, 19, 5, 3}, {0, 42, 12, 8}};
  for (int i = 0; i < 4; ++i) {
    Region r;
    r.row = rng() % rows;
    r.column = rng() % columns;
    r.rows = 1 + rng() % (rows - r.row);
    r.columns = 1 + rng() % (columns - r.column);
    regions.push_back(r);
  }
  for (const Region& r : regions) {
    const PackedCiphertext sum = encryptedRegionSum(he, enc, r);
    // Exact: the sums are integers, divided by the same count on both sides.
    EXPECT_EQ(decryptRegionMean(key, he, enc, sum, r), plaintextRegionMean(image, columns, r))
        << "region at " << r.row << "," << r.column << " size " << r.rows << "x" << r.columns;
  }
  EXPECT_THROW(encryptedRegionSum(he, enc, Region{0, 45, 1, 6}), HeError);  // past the right edge
}

TEST(EncryptedRegion, TheKeyHolderLearnsTheSumButNotThePartialSums) {
  const auto& key = randomKey();
  const PackedPaillier he(key.publicKey());
  const auto image = randomImage(4, 21, 3);
  const EncryptedImage enc = encryptImage(he, image, 4, 21, 4095);
  const Region r{1, 2, 2, 10};
  const auto a = he.decrypt(key, encryptedRegionSum(he, enc, r), he.packing().slots());
  const auto b = he.decrypt(key, encryptedRegionSum(he, enc, r), he.packing().slots());
  EXPECT_EQ(a[enc.chunkWidth - 1], b[enc.chunkWidth - 1]);
  std::size_t differing = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (i != enc.chunkWidth - 1 && a[i] != b[i]) ++differing;
  EXPECT_GE(differing, a.size() - 3);  // fresh blinding every time (equal by chance with probability ~2^-40)
}

}  // namespace
}  // namespace pacsgw::codecs::he
