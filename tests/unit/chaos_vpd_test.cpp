// Backend chaos-vpd through the PixelCipher contract: bit-exact round trips for every supported layout,
// determinism, nonce and plaintext sensitivity, authentication, the decoy generator, known answers.
#include "codecs/chaos/chaos_vpd.h"
#include "codecs/chaos/research/chaos_vpd_research.h"
#include "codecs/chaos/decoy_generator.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace pacsgw::codecs {
namespace {

SecretBytes testKey(std::uint8_t base = 1) {
  SecretBytes k(32);
  for (std::size_t i = 0; i < 32; ++i) k.data()[i] = static_cast<std::uint8_t>(base + 7 * i);
  return k;
}

const std::vector<std::uint8_t> kAad = {'P', 'A', 'C', 'S', 0, 1, 2, 3};

struct Image {
  PixelLayout layout;
  std::vector<std::uint8_t> bytes;

  PixelBuffer buffer() {
    PixelBuffer b;
    b.layout = layout;
    b.segments.push_back({bytes.data(), bytes.size()});
    return b;
  }
};

// A smooth CT-like test pattern (so that "looks random afterwards" means something).
Image makeImage(std::uint16_t rows, std::uint16_t cols, std::uint16_t bitsAllocated, std::uint16_t bitsStored,
                bool isSigned, std::uint16_t samples = 1, std::uint32_t frames = 1, std::uint16_t planar = 0) {
  Image img;
  img.layout.rows = rows;
  img.layout.columns = cols;
  img.layout.bitsAllocated = bitsAllocated;
  img.layout.bitsStored = bitsStored;
  img.layout.highBit = static_cast<std::uint16_t>(bitsStored - 1);
  img.layout.pixelRepresentation = isSigned ? 1 : 0;
  img.layout.samplesPerPixel = samples;
  img.layout.planarConfiguration = planar;
  img.layout.numberOfFrames = frames;
  img.layout.photometricInterpretation = samples == 3 ? "RGB" : "MONOCHROME2";
  const std::size_t count = static_cast<std::size_t>(rows) * cols * samples * frames;
  const std::size_t bytesPerSample = bitsAllocated / 8;
  img.bytes.resize(count * bytesPerSample);
  const long maxValue = (1L << (bitsStored - (isSigned ? 1 : 0))) - 1;
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t r = (i / (cols * samples)) % rows, c = (i / samples) % cols;
    const std::size_t frame = i / (static_cast<std::size_t>(rows) * cols * samples);
    long v = static_cast<long>((r * 3 + c * 5 + (i % samples) * 40 + frame * 17) % (maxValue + 1));
    if (isSigned && (r + c) % 4 == 0) v = -v;  // negative values in two's complement
    const auto u = static_cast<std::uint32_t>(v);
    for (std::size_t b = 0; b < bytesPerSample; ++b)
      img.bytes[i * bytesPerSample + b] = static_cast<std::uint8_t>(u >> (8 * b));
  }
  return img;
}

double changedFraction(const std::vector<std::uint8_t>& a, const std::vector<std::uint8_t>& b) {
  std::size_t diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff += a[i] != b[i];
  return a.empty() ? 0.0 : static_cast<double>(diff) / a.size();
}

std::string sha256Hex(const std::vector<std::uint8_t>& data) {
  unsigned char md[32];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  std::string hex;
  char buf[3];
  for (unsigned i = 0; i < len; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", md[i]);
    hex += buf;
  }
  return hex;
}

std::string hex(const std::vector<std::uint8_t>& v) {
  std::string out;
  char buf[3];
  for (auto b : v) {
    std::snprintf(buf, sizeof buf, "%02x", b);
    out += buf;
  }
  return out;
}

std::unique_ptr<PixelCipher> cipher() { return chaosVpdBackend().make(CipherOptions{}); }

TEST(ChaosVpd, BackendInfo) {
  auto c = cipher();
  EXPECT_EQ(c->info().id, "chaos-vpd");
  EXPECT_EQ(c->info().version, "1");
  EXPECT_TRUE(c->info().lossless);
  EXPECT_TRUE(c->info().authenticated);
  EXPECT_FALSE(c->info().supportsEncapsulated);
  EXPECT_EQ(c->device(), Device::Cpu);
}

TEST(ChaosVpd, RejectsUnsupportedLayouts) {
  auto c = cipher();
  PixelLayout ok = makeImage(4, 4, 16, 12, false).layout;
  EXPECT_NO_THROW(c->checkSupported(ok));
  PixelLayout l = ok;
  l.encapsulated = true;
  EXPECT_THROW(c->checkSupported(l), UnsupportedLayoutError);
  l = ok;
  l.floatingPoint = true;
  EXPECT_THROW(c->checkSupported(l), UnsupportedLayoutError);
  l = ok;
  l.bitsAllocated = 32;
  l.bitsStored = 32;
  EXPECT_THROW(c->checkSupported(l), UnsupportedLayoutError);
  l = ok;
  l.samplesPerPixel = 2;
  EXPECT_THROW(c->checkSupported(l), UnsupportedLayoutError);
  l = ok;
  l.bitsStored = 17;
  EXPECT_THROW(c->checkSupported(l), UnsupportedLayoutError);

  Image img = makeImage(4, 4, 16, 12, false);
  img.layout.encapsulated = true;
  PixelBuffer b = img.buffer();
  EXPECT_THROW(c->encrypt(b, testKey(), kAad), UnsupportedLayoutError);
}

TEST(ChaosVpd, UnknownOrUnavailableDeviceIsRefused) {
  if (!chaos::DecoyGenerator::cudaAvailable()) {
    EXPECT_THROW(chaosVpdBackend().make(CipherOptions{"cuda"}), CipherError);
  }
  EXPECT_NO_THROW(chaosVpdBackend().make(CipherOptions{"auto"}));
}

struct LayoutCase {
  const char* name;
  std::uint16_t rows, cols, bitsAllocated, bitsStored;
  bool isSigned;
  std::uint16_t samples;
  std::uint32_t frames;
  std::uint16_t planar;
};

class ChaosVpdLayouts : public ::testing::TestWithParam<LayoutCase> {};

TEST_P(ChaosVpdLayouts, RoundTripIsBitExact) {
  const LayoutCase& p = GetParam();
  Image img = makeImage(p.rows, p.cols, p.bitsAllocated, p.bitsStored, p.isSigned, p.samples, p.frames, p.planar);
  const std::vector<std::uint8_t> plain = img.bytes;
  auto c = cipher();
  PixelBuffer b = img.buffer();
  const CipherRecord rec = c->encrypt(b, testKey(), kAad);
  EXPECT_EQ(rec.backendId, "chaos-vpd");
  EXPECT_EQ(rec.nonce.size(), 32u);
  EXPECT_EQ(rec.tag.size(), 32u);
  EXPECT_EQ(rec.params.size(), chaos::kParamsBytes);
  EXPECT_EQ(img.bytes.size(), plain.size());
  if (plain.size() >= 64) {
    EXPECT_GT(changedFraction(plain, img.bytes), 0.95) << p.name;
  }
  c->decrypt(b, testKey(), kAad, rec);
  EXPECT_EQ(img.bytes, plain) << p.name;
}

INSTANTIATE_TEST_SUITE_P(
    AllLayouts, ChaosVpdLayouts,
    ::testing::Values(LayoutCase{"mono8_unsigned", 64, 48, 8, 8, false, 1, 1, 0},
                      LayoutCase{"mono8_signed", 33, 17, 8, 8, true, 1, 1, 0},
                      LayoutCase{"mono12_in16_unsigned", 64, 64, 16, 12, false, 1, 1, 0},
                      LayoutCase{"mono12_in16_signed", 50, 31, 16, 12, true, 1, 1, 0},
                      LayoutCase{"mono16_unsigned", 40, 40, 16, 16, false, 1, 1, 0},
                      LayoutCase{"mono16_signed_ct", 128, 128, 16, 16, true, 1, 1, 0},
                      LayoutCase{"rgb8_interleaved", 32, 24, 8, 8, false, 3, 1, 0},
                      LayoutCase{"rgb8_planar", 20, 30, 8, 8, false, 3, 1, 1},
                      LayoutCase{"multiframe16", 48, 40, 16, 12, false, 1, 7, 0},
                      LayoutCase{"multiframe8_rgb", 16, 16, 8, 8, false, 3, 5, 0},
                      LayoutCase{"multiblock16", 1024, 600, 16, 16, true, 1, 2, 0},
                      LayoutCase{"tiny", 1, 1, 16, 16, false, 1, 1, 0},
                      LayoutCase{"odd_tiny8", 1, 3, 8, 8, false, 1, 1, 0}),
    [](const ::testing::TestParamInfo<LayoutCase>& info) { return std::string(info.param.name); });

TEST(ChaosVpd, OddByteCountOf8BitDataAndExtraSegments) {
  // An 8-bit object with an odd sample count carries a pad byte; several segments are independent.
  Image img = makeImage(3, 5, 8, 8, false);
  img.bytes.push_back(0);
  std::vector<std::uint8_t> second(1001, 0x5A);
  const auto plain1 = img.bytes, plain2 = second;
  PixelBuffer b = img.buffer();
  b.segments.push_back({second.data(), second.size()});
  auto c = cipher();
  const auto rec = c->encrypt(b, testKey(), kAad);
  EXPECT_GT(changedFraction(plain2, second), 0.95);
  c->decrypt(b, testKey(), kAad, rec);
  EXPECT_EQ(img.bytes, plain1);
  EXPECT_EQ(second, plain2);
}

TEST(ChaosVpd, SixteenBitSegmentMustHoldWholeSamples) {
  Image img = makeImage(3, 3, 16, 16, false);
  img.bytes.push_back(0);
  PixelBuffer b = img.buffer();
  EXPECT_THROW(cipher()->encrypt(b, testKey(), kAad), CipherError);
}

TEST(ChaosVpd, SameKeyAndNonceGiveSameCiphertext) {
  const std::vector<std::uint8_t> nonce(32, 0x42);
  Image a = makeImage(64, 64, 16, 12, true), b = makeImage(64, 64, 16, 12, true);
  PixelBuffer pa = a.buffer(), pb = b.buffer();
  const auto ra = chaos::encryptWithNonce(pa, testKey(), kAad, nonce);
  const auto rb = chaos::encryptWithNonce(pb, testKey(), kAad, nonce);
  EXPECT_EQ(a.bytes, b.bytes);
  EXPECT_EQ(ra.tag, rb.tag);
  EXPECT_EQ(ra.params, rb.params);
}

TEST(ChaosVpd, FreshNonceEveryCall) {
  Image a = makeImage(64, 64, 16, 12, false), b = makeImage(64, 64, 16, 12, false);
  PixelBuffer pa = a.buffer(), pb = b.buffer();
  auto c = cipher();
  const auto ra = c->encrypt(pa, testKey(), kAad);
  const auto rb = c->encrypt(pb, testKey(), kAad);
  EXPECT_NE(ra.nonce, rb.nonce);
  EXPECT_GT(changedFraction(a.bytes, b.bytes), 0.99);
}

TEST(ChaosVpd, DifferentNoncesGiveUnrelatedCiphertexts) {
  Image a = makeImage(128, 128, 16, 16, false), b = makeImage(128, 128, 16, 16, false);
  PixelBuffer pa = a.buffer(), pb = b.buffer();
  chaos::encryptWithNonce(pa, testKey(), kAad, std::vector<std::uint8_t>(32, 1));
  chaos::encryptWithNonce(pb, testKey(), kAad, std::vector<std::uint8_t>(32, 2));
  EXPECT_GT(changedFraction(a.bytes, b.bytes), 0.99);
}

TEST(ChaosVpd, OnePixelChangeChangesEverythingUnderTheSameNonce) {
  const std::vector<std::uint8_t> nonce(32, 7);
  for (std::size_t where : {std::size_t{0}, std::size_t{128 * 64 + 64}, std::size_t{128 * 128 - 1}}) {
    Image a = makeImage(128, 128, 16, 16, false), b = makeImage(128, 128, 16, 16, false);
    b.bytes[2 * where] ^= 1;  // least significant bit of one sample
    PixelBuffer pa = a.buffer(), pb = b.buffer();
    chaos::encryptWithNonce(pa, testKey(), kAad, nonce);
    chaos::encryptWithNonce(pb, testKey(), kAad, nonce);
    EXPECT_GT(changedFraction(a.bytes, b.bytes), 0.99) << where;
  }
}

TEST(ChaosVpd, TamperingAndWrongKeysAreDetectedBeforeDecrypting) {
  Image img = makeImage(64, 64, 16, 12, true);
  const auto plain = img.bytes;
  PixelBuffer b = img.buffer();
  auto c = cipher();
  const CipherRecord rec = c->encrypt(b, testKey(), kAad);
  const auto cipherBytes = img.bytes;

  auto expectRejected = [&](const SecretBytes& key, const std::vector<std::uint8_t>& aad, const CipherRecord& r) {
    EXPECT_THROW(c->decrypt(b, key, aad, r), AuthenticationError);
    EXPECT_EQ(img.bytes, cipherBytes) << "ciphertext must be left untouched";
  };
  expectRejected(testKey(2), kAad, rec);
  SecretBytes oneBit = testKey();
  oneBit.data()[31] ^= 0x80;
  expectRejected(oneBit, kAad, rec);
  auto aad = kAad;
  aad.back() ^= 1;
  expectRejected(testKey(), aad, rec);
  for (auto field : {&CipherRecord::nonce, &CipherRecord::tag, &CipherRecord::params}) {
    CipherRecord r = rec;
    (r.*field)[5] ^= 0x01;
    expectRejected(testKey(), kAad, r);
    r = rec;
    (r.*field).pop_back();
    expectRejected(testKey(), kAad, r);
  }
  img.bytes[1000] ^= 0x10;
  EXPECT_THROW(c->decrypt(b, testKey(), kAad, rec), AuthenticationError);
  img.bytes[1000] ^= 0x10;

  CipherRecord other = rec;
  other.backendId = "aes-256-gcm";
  EXPECT_THROW(c->decrypt(b, testKey(), kAad, other), CipherError);
  other = rec;
  other.backendVersion = "2";
  EXPECT_THROW(c->decrypt(b, testKey(), kAad, other), CipherError);

  c->decrypt(b, testKey(), kAad, rec);
  EXPECT_EQ(img.bytes, plain);
}

TEST(ChaosVpd, UnauthenticatedCoreShowsThePapersBehaviour) {
  Image img = makeImage(128, 128, 16, 12, false);
  const auto plain = img.bytes;
  PixelBuffer b = img.buffer();
  const auto rec = chaos::encryptWithNonce(b, testKey(), kAad, std::vector<std::uint8_t>(32, 3));
  const auto cipherBytes = img.bytes;
  // Wrong key: garbage instead of an error.
  chaos::decryptUnauthenticated(b, testKey(9), kAad, rec);
  EXPECT_GT(changedFraction(plain, img.bytes), 0.99);
  // Right key, damaged ciphertext: most pixels still come back (no diffusion in decryption).
  img.bytes = cipherBytes;
  for (std::size_t i = 0; i < 200; ++i) img.bytes[i] = 0;
  chaos::decryptUnauthenticated(b, testKey(), kAad, rec);
  EXPECT_LT(changedFraction(plain, img.bytes), 0.05);
}

TEST(ChaosVpd, FixedSivExposesTheLayersOwnDiffusion) {
  std::array<std::uint8_t, chaos::kSivBytes> siv{};
  const std::vector<std::uint8_t> nonce(32, 5);
  Image a = makeImage(128, 128, 16, 16, false), b = makeImage(128, 128, 16, 16, false);
  b.bytes[2 * (128 * 128 - 1)] ^= 1;  // last sample: the forward-only VPD chain spreads it little
  PixelBuffer pa = a.buffer(), pb = b.buffer();
  chaos::encryptWithFixedSiv(pa, testKey(), kAad, nonce, siv);
  chaos::encryptWithFixedSiv(pb, testKey(), kAad, nonce, siv);
  EXPECT_LT(changedFraction(a.bytes, b.bytes), 0.9);
}

TEST(ChaosVpd, KnownAnswer) {
  // Pins the whole format: HKDF labels, synthetic IV, decoy generator, SHA-512 schedule, map, layers, tag.
  Image img = makeImage(32, 32, 16, 12, true);
  PixelBuffer b = img.buffer();
  std::vector<std::uint8_t> nonce(32);
  for (std::size_t i = 0; i < 32; ++i) nonce[i] = static_cast<std::uint8_t>(i);
  const auto rec = chaos::encryptWithNonce(b, testKey(), kAad, nonce);
  EXPECT_EQ(sha256Hex(img.bytes), "5d02e85e7142762850e30c875f632e4c38d37201f22d5b04700b023752cc0299");
  EXPECT_EQ(hex(rec.tag), "fc576d9ddfa23b0b203890f3a38100bf82e02f799f886e8b5e0e8c4185e6f929");
  EXPECT_EQ(hex(rec.params), "0102041001001400fad7d1523bf95b602f39bbc8a4f0c5ad69bd3fb1e255d3031fa6904bf7b4ac7f");
}

TEST(ChaosVpd, KeyStreamsAreDeterministicAndDistinct) {
  Image img = makeImage(16, 16, 16, 16, false);
  PixelBuffer b = img.buffer();
  const auto rec = chaos::encryptWithNonce(b, testKey(), kAad, std::vector<std::uint8_t>(32, 9));
  const auto s1 = chaos::keyStreams(testKey(), rec, 1000);
  const auto s2 = chaos::keyStreams(testKey(), rec, 1000);
  for (std::size_t l = 0; l < chaos::kLanes; ++l) {
    EXPECT_EQ(s1[l], s2[l]);
    EXPECT_EQ(s1[l].size(), 1000u);
    for (std::size_t m = 0; m < l; ++m) EXPECT_NE(s1[l], s1[m]);
  }
}

TEST(ChaosVpd, ConcurrentUseIsSafe) {
  auto c = cipher();
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5; ++i) {
        Image img = makeImage(96, 80, 16, 12, t % 2 == 0);
        const auto plain = img.bytes;
        PixelBuffer b = img.buffer();
        const auto rec = c->encrypt(b, testKey(static_cast<std::uint8_t>(t)), kAad);
        c->decrypt(b, testKey(static_cast<std::uint8_t>(t)), kAad, rec);
        ok[t] += img.bytes == plain;
      }
    });
  for (auto& th : threads) th.join();
  for (int v : ok) EXPECT_EQ(v, 5);
}

// ---- Decoy generator ----

std::vector<std::uint8_t> latent(std::uint8_t seed) {
  std::vector<std::uint8_t> z(chaos::kLatentBytes);
  std::mt19937 rng(seed);
  for (auto& v : z) v = static_cast<std::uint8_t>(rng());
  return z;
}

TEST(ChaosDecoyGenerator, ArchitectureAndPinnedWeights) {
  const auto& g = chaos::DecoyGenerator::shared(Device::Cpu);
  EXPECT_EQ(g.parameterCount(), 64u * 128 * 16 + 128u * 64 * 16 + 64u * 32 * 16 + 32u * 3 * 16);
  const auto d = g.weightsDigest();
  EXPECT_EQ(hex(std::vector<std::uint8_t>(d.begin(), d.end())),
            "d47fa7e92c230f4142febdb3b68e649adb573bcbab16dd1cd306261163731dda");
}

// The pinned decoy hash was reproduced by an independent pure-integer implementation of the same
// generator (splitmix64 weights, transposed convolutions, power-of-two rescaling) outside LibTorch.
TEST(ChaosDecoyGenerator, DeterministicAcrossInstancesAndPinned) {
  chaos::DecoyGenerator first(Device::Cpu), second(Device::Cpu);
  const auto z = latent(1);
  const auto a = first.generate(z.data());
  const auto b = second.generate(z.data());
  EXPECT_EQ(a, b);
  EXPECT_EQ(first.generate(z.data()), a);
  EXPECT_EQ(sha256Hex(std::vector<std::uint8_t>(a.begin(), a.end())),
            "4913e5f1eaeced260095df5b86d5ceb9d99949ab57e92fd1cb547bf908be056b");
  EXPECT_NE(first.generate(latent(2).data()), a);
}

TEST(ChaosDecoyGenerator, GemmFormulationEqualsNativeConvTranspose) {
  const auto& g = chaos::DecoyGenerator::shared(Device::Cpu);
  for (std::uint8_t s = 0; s < 3; ++s) EXPECT_TRUE(g.matchesNativeConvTranspose(latent(s).data()));
}

TEST(ChaosDecoyGenerator, DecoyUsesTheWholeRange) {
  const auto img = chaos::DecoyGenerator::shared(Device::Cpu).generate(latent(4).data());
  int lo = 255, hi = 0;
  for (auto v : img) {
    lo = std::min<int>(lo, v);
    hi = std::max<int>(hi, v);
  }
  EXPECT_LT(lo, 64);
  EXPECT_GT(hi, 192);
}

TEST(ChaosDecoyGenerator, DecoyAndSumsForARecord) {
  Image img = makeImage(16, 16, 8, 8, false);
  PixelBuffer b = img.buffer();
  const auto rec = chaos::encryptWithNonce(b, testKey(), kAad, std::vector<std::uint8_t>(32, 1));
  const auto d = chaos::decoyFor(testKey(), rec);
  ASSERT_EQ(d.image.size(), chaos::kDecoyBytes);
  long sums[3] = {1, 1, 1};
  for (std::size_t i = 0; i < d.image.size(); ++i) sums[i / 1024] += d.image[i];
  EXPECT_EQ(d.sums, std::to_string(sums[0]) + "," + std::to_string(sums[1]) + "," + std::to_string(sums[2]));
}

}  // namespace
}  // namespace pacsgw::codecs
