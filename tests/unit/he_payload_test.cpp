// The ae-he payload: serialisation, strict parsing of every count and length, and the region mean a
// PACS-side service computes from the payload with the public key only.
#include "codecs/ae_he/he_payload.h"
#include "codecs/he/key_derivation.h"
#include "codecs/he/packed_vector.h"

#include <gtest/gtest.h>

#include <random>

namespace pacsgw::codecs::ae_he {
namespace {

const he::PaillierPrivateKey& key() {
  static const he::PaillierPrivateKey k = [] {
    std::vector<std::uint8_t> seed(32, 0x5a);
    return he::derivePaillierKey(seed.data(), seed.size(), 2048);
  }();
  return k;
}

struct Fixture {
  std::vector<std::vector<std::int32_t>> frames;
  std::vector<std::uint64_t> codes;
  HePayload payload;
};

// Two signed 12-bit frames of 40 x 50 (3 x 4 tiles of 16, partial at the edges) and 300 codes per frame.
const Fixture& fixture() {
  static const Fixture f = [] {
    Fixture x;
    std::mt19937 rng(8);
    const std::size_t rows = 40, columns = 50;
    HePayload& p = x.payload;
    p.modulusBits = 2048;
    p.n = key().publicKey().n();
    p.frames = 2;
    p.codesPerFrame = 300;
    p.codeSlotBits = 8;
    p.imageRows = rows;
    p.imageColumns = columns;
    p.tile = 16;
    p.offset = 2048;
    p.maxSample = 4095;
    const he::PackedPaillier gridHe(key().publicKey(), kGridSlotBits);
    for (int f = 0; f < 2; ++f) {
      std::vector<std::int32_t> s(rows * columns);
      for (auto& v : s) v = static_cast<std::int32_t>(rng() % 4096) - 2048;
      const he::BlockGrid g = he::blockSums(s, rows, columns, 16, 2048, 4095);
      const he::EncryptedImage e = he::encryptGrid(key(), gridHe, g.sums, g.rows, g.columns, g.bound(), 2);
      p.gridRows = static_cast<std::uint16_t>(g.rows);
      p.gridColumns = static_cast<std::uint16_t>(g.columns);
      p.gridCiphertextsPerFrame = static_cast<std::uint32_t>(e.chunks.size());
      for (const auto& c : e.chunks) p.grid.push_back(c.c);
      x.frames.push_back(std::move(s));
    }
    x.codes.resize(600);
    for (auto& c : x.codes) c = rng() % 256;
    p.latent = he::encryptVector(key(), x.codes, 255, 8, 2).ciphertexts;
    return x;
  }();
  return f;
}

TEST(AeHePayload, SerialisesAndParsesBackExactly) {
  const HePayload& p = fixture().payload;
  const auto bytes = serialisePayload(p);
  EXPECT_EQ(bytes.size() % 2, 0u);
  // 44 header bytes, n, then 512-byte ciphertexts: 600 codes / 255 slots -> 3, grid 3 rows x 1 chunk x 2 frames.
  EXPECT_EQ(p.latent.size(), 3u);
  EXPECT_EQ(p.gridCiphertextsPerFrame, 3u);
  EXPECT_EQ(bytes.size(), 44u + 256u + (3u + 6u) * 512u);
  const HePayload q = parsePayload(bytes);
  EXPECT_EQ(q.n, p.n);
  EXPECT_EQ(q.latent, p.latent);
  EXPECT_EQ(q.grid, p.grid);
  EXPECT_EQ(serialisePayload(q), bytes);
  he::EncryptedVector v;
  v.slotBits = 8;
  v.slotBound = 255;
  v.count = 600;
  v.ciphertexts = q.latent;
  EXPECT_EQ(he::decryptVector(key(), v), fixture().codes);
}

TEST(AeHePayload, EveryInconsistentCountOrLengthIsRefused) {
  const auto bytes = serialisePayload(fixture().payload);
  auto expectRefused = [](std::vector<std::uint8_t> b, const char* what) {
    EXPECT_THROW(parsePayload(b), he::HeError) << what;
  };
  expectRefused({}, "empty");
  expectRefused(std::vector<std::uint8_t>(bytes.begin(), bytes.end() - 1), "one byte short");
  auto longer = bytes;
  longer.push_back(0);
  longer.push_back(0);
  expectRefused(longer, "two bytes too many");
  auto mutate = [&](std::size_t at, std::uint8_t value, const char* what) {
    auto b = bytes;
    b[at] = value;
    expectRefused(b, what);
  };
  const std::size_t h = 8 + 256;  // after magic, format, modulus bits and n
  mutate(0, 'X', "magic");
  mutate(4, 2, "format");
  mutate(6, 0x04, "modulus bits");          // 1024 + ...
  mutate(8, 0x00, "modulus top byte");      // n one byte short of its size
  mutate(h + 3, 3, "frames");
  mutate(h + 7, 0xff, "codes per frame");   // 511: five ciphertexts, not three
  mutate(h + 8, 7, "code slot bits");
  mutate(h + 13, 4, "latent ciphertext count");
  mutate(h + 15, 49, "image rows");        // four tile rows, not three
  mutate(h + 19, 8, "tile");
  mutate(h + 21, 4, "grid rows");
  mutate(h + 35, 4, "grid ciphertexts per frame");
}

TEST(AeHePayload, RegionMeanFromThePayloadWithThePublicKeyOnlyEqualsThePlaintext) {
  const Fixture& f = fixture();
  const HePayload p = parsePayload(serialisePayload(f.payload));
  const he::BlockGrid layout = p.blockLayout();
  for (std::uint32_t frame = 0; frame < 2; ++frame)
    for (const he::Region& pixels : {he::Region{0, 0, 40, 50}, he::Region{16, 16, 16, 16}, he::Region{5, 20, 30, 30}}) {
      const he::Region tiles = tilesCovering(p, pixels);
      const he::PackedCiphertext sum = encryptedRegionSum(p, frame, tiles);  // n from the payload, no private key
      EXPECT_EQ(decryptRegionMean(p, key(), frame, tiles, sum), he::plaintextBlockRegionMean(f.frames[frame], layout, tiles));
    }
  EXPECT_EQ(tilesCovering(p, he::Region{5, 20, 30, 30}).columns, 3u);  // columns 20..49 -> tiles 1..3
  EXPECT_THROW(tilesCovering(p, he::Region{30, 0, 11, 1}), he::HeError);
  EXPECT_THROW(encryptedRegionSum(p, 2, he::Region{0, 0, 1, 1}), he::HeError);  // no third frame
}

}  // namespace
}  // namespace pacsgw::codecs::ae_he
