// The contract every backend in the backend table must pass, run once per registered backend:
// round trip within its declared loss, tampered ciphertext / associated data / record refused, wrong
// key refused, keys bound to the backend, fresh randomness per call, safe use from several threads.
// A backend joins the table with one line (codecs/CMakeLists.txt) and is tested here automatically.
#include "codecs/backend_key.h"
#include "codecs/backend_table.h"
#include "codecs/exact_retrieval.h"
#include "codecs/pixel_cipher.h"

#include <gtest/gtest.h>
#include <openssl/rand.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace pacsgw::codecs {
namespace {

using Bytes = std::vector<std::uint8_t>;

SecretBytes randomKey() {
  SecretBytes k(32);
  EXPECT_EQ(RAND_bytes(k.data(), 32), 1);
  return k;
}

Bytes randomBytes(std::size_t n) {
  Bytes b(n);
  if (n > 0) EXPECT_EQ(RAND_bytes(b.data(), static_cast<int>(n)), 1);
  return b;
}

// A test image: layout plus one or more segments of random bytes.
struct Sample {
  std::string name;
  PixelLayout layout;
  std::vector<Bytes> segments;

  PixelBuffer view() {
    PixelBuffer p;
    p.layout = layout;
    for (auto& s : segments) p.segments.push_back({s.data(), s.size()});
    return p;
  }
};

Sample native(const std::string& name, std::uint16_t bits, std::uint16_t stored, std::uint16_t samples,
              std::uint32_t frames, std::uint16_t rows = 24, std::uint16_t columns = 20) {
  Sample s;
  s.name = name;
  PixelLayout& l = s.layout;
  l.rows = rows;
  l.columns = columns;
  l.bitsAllocated = bits;
  l.bitsStored = stored;
  l.highBit = static_cast<std::uint16_t>(stored - 1);
  l.samplesPerPixel = samples;
  l.numberOfFrames = frames;
  l.photometricInterpretation = samples == 3 ? "RGB" : "MONOCHROME2";
  s.segments.push_back(randomBytes(std::size_t{rows} * columns * samples * frames * (bits / 8)));
  return s;
}

std::vector<Sample> samplesFor(const BackendInfo& info) {
  std::vector<Sample> out{native("16-bit CT-like", 16, 12, 1, 1), native("8-bit two frames", 8, 8, 1, 2),
                          native("8-bit RGB", 8, 8, 3, 1)};
  if (info.supportsEncapsulated) {
    Sample s;
    s.name = "encapsulated fragments";
    s.layout = native("", 8, 8, 1, 1).layout;
    s.layout.encapsulated = true;
    s.segments = {randomBytes(301), randomBytes(1), randomBytes(4096)};
    out.push_back(std::move(s));
  }
  if (info.supportsFloat) {
    Sample s = native("float", 32, 32, 1, 1);
    s.layout.floatingPoint = true;
    out.push_back(std::move(s));
  }
  return out;
}

// Largest absolute difference between two sample arrays of the layout's word size.
std::uint64_t maxSampleDifference(const Bytes& a, const Bytes& b, const PixelLayout& l) {
  if (l.encapsulated || l.floatingPoint || l.bitsAllocated % 8 != 0) return a == b ? 0 : UINT64_MAX;
  const std::size_t w = l.bitsAllocated / 8;
  std::uint64_t worst = 0;
  for (std::size_t i = 0; i + w <= a.size(); i += w) {
    std::int64_t va = 0, vb = 0;
    for (std::size_t k = 0; k < w; ++k) va |= std::int64_t{a[i + k]} << (8 * k), vb |= std::int64_t{b[i + k]} << (8 * k);
    worst = std::max<std::uint64_t>(worst, static_cast<std::uint64_t>(std::llabs(va - vb)));
  }
  return worst;
}

class BackendContract : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    entry_ = findBackend(GetParam());
    ASSERT_NE(entry_, nullptr);
    cipher_ = makeCipher(GetParam());
  }
  const BackendInfo& info() const { return entry_->info; }

  // Samples this backend protects (it must protect at least one native layout).
  std::vector<Sample> supported() {
    std::vector<Sample> out;
    for (auto& s : samplesFor(info())) {
      try {
        cipher_->checkSupported(s.layout);
        out.push_back(std::move(s));
      } catch (const UnsupportedLayoutError&) {
      }
    }
    EXPECT_FALSE(out.empty()) << "backend protects none of the contract's native layouts";
    return out;
  }

  void expectWithinDeclaredLoss(const Sample& original, const Sample& decrypted) {
    for (std::size_t i = 0; i < original.segments.size(); ++i) {
      if (info().lossless)
        EXPECT_EQ(decrypted.segments[i], original.segments[i]) << original.name << ": not bit-exact";
      else
        EXPECT_LE(maxSampleDifference(original.segments[i], decrypted.segments[i], original.layout),
                  info().maxSampleError)
            << original.name << ": beyond the declared loss";
    }
  }

  const BackendEntry* entry_ = nullptr;
  std::unique_ptr<PixelCipher> cipher_;
};

TEST_P(BackendContract, TableEntryDescribesTheCipherItBuilds) {
  EXPECT_EQ(cipher_->info().id, GetParam());
  EXPECT_EQ(cipher_->info().id, info().id);
  EXPECT_EQ(cipher_->info().version, info().version);
  EXPECT_FALSE(info().version.empty());
  EXPECT_FALSE(info().summary.empty());
  EXPECT_EQ(info().lossless, info().maxSampleError == 0);
  EXPECT_TRUE(info().authenticated) << "the gateway only carries authenticated backends";
  // Capabilities agree with checkSupported.
  PixelLayout enc = native("", 8, 8, 1, 1).layout;
  enc.encapsulated = true;
  if (!info().supportsEncapsulated) EXPECT_THROW(cipher_->checkSupported(enc), UnsupportedLayoutError);
  PixelLayout flt = native("", 32, 32, 1, 1).layout;
  flt.floatingPoint = true;
  if (!info().supportsFloat) EXPECT_THROW(cipher_->checkSupported(flt), UnsupportedLayoutError);
}

TEST_P(BackendContract, RoundTripWithinDeclaredLoss) {
  for (Sample& s : supported()) {
    const Sample original = s;
    const SecretBytes key = randomKey();
    const Bytes aad = randomBytes(77);
    PixelBuffer view = s.view();
    const CipherRecord rec = cipher_->encrypt(view, key, aad);
    EXPECT_EQ(rec.backendId, info().id);
    EXPECT_EQ(rec.backendVersion, info().version);
    EXPECT_NE(s.segments, original.segments) << s.name << ": ciphertext equals plaintext";
    for (std::size_t i = 0; i < s.segments.size(); ++i) EXPECT_EQ(s.segments[i].size(), original.segments[i].size());
    cipher_->decrypt(view, key, aad, rec);
    expectWithinDeclaredLoss(original, s);
  }
}

TEST_P(BackendContract, TamperedCiphertextIsRefusedAndLeavesNoPlaintext) {
  for (Sample& s : supported()) {
    const SecretBytes key = randomKey();
    const Bytes aad = randomBytes(20);
    PixelBuffer view = s.view();
    const CipherRecord rec = cipher_->encrypt(view, key, aad);
    Bytes& seg = s.segments.back();
    for (std::size_t pos : {std::size_t{0}, seg.size() / 2, seg.size() - 1}) {
      seg[pos] ^= 0x01;
      const auto tampered = s.segments;
      EXPECT_THROW(cipher_->decrypt(view, key, aad, rec), AuthenticationError) << s.name << " byte " << pos;
      EXPECT_EQ(s.segments, tampered) << s.name << ": refused decryption left other bytes than the ciphertext";
      seg[pos] ^= 0x01;
    }
  }
}

TEST_P(BackendContract, TamperedAssociatedDataIsRefused) {
  Sample s = supported().front();
  const SecretBytes key = randomKey();
  const Bytes aad = randomBytes(40);
  PixelBuffer view = s.view();
  const CipherRecord rec = cipher_->encrypt(view, key, aad);
  Bytes flipped = aad;
  flipped[17] ^= 0x80;
  Bytes longer = aad;
  longer.push_back(0);
  for (const Bytes& wrong : {flipped, longer, Bytes{}})
    EXPECT_THROW(cipher_->decrypt(view, key, wrong, rec), AuthenticationError);
  EXPECT_NO_THROW(cipher_->decrypt(view, key, aad, rec));
}

TEST_P(BackendContract, TamperedRecordIsRefused) {
  Sample s = supported().front();
  const SecretBytes key = randomKey();
  const Bytes aad = randomBytes(12);
  PixelBuffer view = s.view();
  const CipherRecord rec = cipher_->encrypt(view, key, aad);
  std::vector<CipherRecord> altered;
  for (Bytes CipherRecord::*field : {&CipherRecord::nonce, &CipherRecord::tag, &CipherRecord::params}) {
    if ((rec.*field).empty()) continue;
    CipherRecord r = rec;
    (r.*field).back() ^= 0x01;
    altered.push_back(r);
    r = rec;
    (r.*field).pop_back();
    altered.push_back(r);
  }
  CipherRecord other = rec;
  other.backendId = "another-backend";
  altered.push_back(other);
  other = rec;
  other.backendVersion += "9";
  altered.push_back(other);
  for (const CipherRecord& r : altered) EXPECT_THROW(cipher_->decrypt(view, key, aad, r), CipherError);
  EXPECT_NO_THROW(cipher_->decrypt(view, key, aad, rec));
}

// Backends with a payload (CipherRecord::payload, stored in its own element) authenticate it.

// Through the codecs layer's exact-retrieval envelope every backend is bit-exact; a lossy backend
// without the envelope returns its reconstruction (reported as lossy), and removing or altering the
// envelope, or a wrong key, is refused.
TEST_P(BackendContract, ExactRetrievalEnvelopeIsBitExact) {
  for (Sample& s : supported()) {
    const Sample original = s;
    const SecretBytes key = randomKey();
    const Bytes aad = randomBytes(30);
    PixelBuffer view = s.view();
    const ProtectedPixels sealed = protectPixels(*cipher_, view, key, aad, Retrieval::Exact);
    EXPECT_EQ(sealed.envelope.empty(), info().lossless) << s.name;
    EXPECT_EQ(sealed.envelope.size() % 2, 0u);
    if (!info().lossless) {
      const auto cipherImage = s.segments;
      Bytes altered = sealed.envelope;
      altered[altered.size() / 2] ^= 0x01;
      EXPECT_THROW(recoverPixels(*cipher_, view, key, aad, sealed.record, altered), AuthenticationError) << s.name;
      EXPECT_THROW(recoverPixels(*cipher_, view, key, aad, sealed.record, {}), AuthenticationError)
          << s.name << ": envelope removed";
      EXPECT_THROW(recoverPixels(*cipher_, view, randomKey(), aad, sealed.record, sealed.envelope), AuthenticationError);
      EXPECT_EQ(s.segments, cipherImage) << s.name << ": a refused retrieval changed the pixels";
    }
    EXPECT_EQ(recoverPixels(*cipher_, view, key, aad, sealed.record, sealed.envelope), Retrieval::Exact);
    EXPECT_EQ(s.segments, original.segments) << s.name << ": not bit-exact through the envelope";
  }
  if (info().lossless) return;
  Sample s = supported().front();
  const Sample original = s;
  const SecretBytes key = randomKey();
  const Bytes aad = randomBytes(30);
  PixelBuffer view = s.view();
  const ProtectedPixels lossy = protectPixels(*cipher_, view, key, aad, Retrieval::Lossy);
  EXPECT_TRUE(lossy.envelope.empty());
  EXPECT_EQ(recoverPixels(*cipher_, view, key, aad, lossy.record, {}), Retrieval::Lossy);
  expectWithinDeclaredLoss(original, s);
}

TEST_P(BackendContract, WrongKeyIsRefused) {
  Sample s = supported().front();
  const SecretBytes key = randomKey();
  const Bytes aad = randomBytes(8);
  PixelBuffer view = s.view();
  const CipherRecord rec = cipher_->encrypt(view, key, aad);
  SecretBytes oneBitOff = key;
  oneBitOff.data()[31] ^= 0x01;
  EXPECT_THROW(cipher_->decrypt(view, randomKey(), aad, rec), AuthenticationError);
  EXPECT_THROW(cipher_->decrypt(view, oneBitOff, aad, rec), AuthenticationError);
  EXPECT_THROW(cipher_->decrypt(view, SecretBytes(16), aad, rec), CipherError);  // not a 32-byte key
  EXPECT_NO_THROW(cipher_->decrypt(view, key, aad, rec));
}

// As the codecs layer uses it (key-reference format 3): the backend's subkey of the data key.
TEST_P(BackendContract, KeysAreBoundToTheBackend) {
  Sample s = supported().front();
  const Sample original = s;
  const SecretBytes dataKey = randomKey();
  const SecretBytes mine = backendSubkey(dataKey, GetParam());
  const Bytes aad = randomBytes(8);
  PixelBuffer view = s.view();
  const CipherRecord rec = cipher_->encrypt(view, mine, aad);
  EXPECT_THROW(cipher_->decrypt(view, dataKey, aad, rec), AuthenticationError);
  EXPECT_THROW(cipher_->decrypt(view, backendSubkey(dataKey, GetParam() + "x"), aad, rec), AuthenticationError);
  for (const std::string& other : availableBackends())
    if (other != GetParam())
      EXPECT_THROW(cipher_->decrypt(view, backendSubkey(dataKey, other), aad, rec), AuthenticationError);
  cipher_->decrypt(view, backendSubkey(dataKey, GetParam()), aad, rec);
  expectWithinDeclaredLoss(original, s);
}

TEST_P(BackendContract, EveryEncryptionUsesFreshRandomness) {
  Sample a = supported().front();
  Sample b = a;
  const SecretBytes key = randomKey();
  const Bytes aad = randomBytes(8);
  PixelBuffer va = a.view(), vb = b.view();
  const CipherRecord ra = cipher_->encrypt(va, key, aad);
  const CipherRecord rb = cipher_->encrypt(vb, key, aad);
  EXPECT_NE(ra.nonce, rb.nonce);
  EXPECT_NE(a.segments, b.segments) << "same plaintext, key and AAD gave the same ciphertext twice";
  EXPECT_NE(ra.tag, rb.tag);
}

TEST_P(BackendContract, OneInstanceServesSeveralThreads) {
  const Sample templ = supported().front();
  constexpr int kThreads = 4, kRounds = 6;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < kRounds; ++i) {
        Sample s = templ;
        for (auto& seg : s.segments) seg = randomBytes(seg.size());
        const Sample original = s;
        const SecretBytes key = randomKey();
        const Bytes aad = randomBytes(16);
        try {
          PixelBuffer view = s.view();
          const CipherRecord rec = cipher_->encrypt(view, key, aad);
          s.segments.front()[0] ^= 0x04;
          bool refused = false;
          try {
            cipher_->decrypt(view, key, aad, rec);
          } catch (const AuthenticationError&) {
            refused = true;
          }
          s.segments.front()[0] ^= 0x04;
          cipher_->decrypt(view, key, aad, rec);
          if (!refused || (info().lossless && s.segments != original.segments)) ++failures;
        } catch (const std::exception&) {
          ++failures;
        }
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

// Test names from backend ids ("aes-256-gcm" -> "aes_256_gcm").
std::string backendTestName(const ::testing::TestParamInfo<std::string>& p) {
  std::string name;
  for (char c : p.param) name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return name;
}

INSTANTIATE_TEST_SUITE_P(EveryRegisteredBackend, BackendContract, ::testing::ValuesIn(availableBackends()),
                         backendTestName);

// The backend payload (0077,xx0E) is checked on the backends that write one: the lossy ones, whose
// decoders need more than the cipher image. Lossless backends keep everything in the cipher image.
std::vector<std::string> backendsWithPayload() {
  std::vector<std::string> ids;
  for (const std::string& id : availableBackends())
    if (!findBackend(id)->info.lossless) ids.push_back(id);
  return ids;
}

class PayloadContract : public BackendContract {};

TEST_P(PayloadContract, TamperedPayloadIsRefused) {
  Sample s = supported().front();
  const SecretBytes key = randomKey();
  const Bytes aad = randomBytes(12);
  PixelBuffer view = s.view();
  const CipherRecord rec = cipher_->encrypt(view, key, aad);
  ASSERT_FALSE(rec.payload.empty()) << "a lossy backend carries what its decoder needs in the payload";
  EXPECT_EQ(rec.payload.size() % 2, 0u) << "payloads are stored in DICOM elements: even length";
  const auto cipherImage = s.segments;
  for (std::size_t pos : {std::size_t{0}, rec.payload.size() / 2, rec.payload.size() - 1}) {
    CipherRecord r = rec;
    r.payload[pos] ^= 0x20;
    EXPECT_THROW(cipher_->decrypt(view, key, aad, r), AuthenticationError) << "payload byte " << pos;
    EXPECT_EQ(s.segments, cipherImage) << "a refused payload changed the pixels";
  }
  CipherRecord shorter = rec;
  shorter.payload.resize(rec.payload.size() - 2);
  EXPECT_THROW(cipher_->decrypt(view, key, aad, shorter), CipherError);
  CipherRecord none = rec;
  none.payload.clear();
  EXPECT_THROW(cipher_->decrypt(view, key, aad, none), CipherError);
  // Another object's payload (same key, same size) does not fit this cipher image.
  Sample t = supported().front();
  PixelBuffer other = t.view();
  CipherRecord swapped = rec;
  swapped.payload = cipher_->encrypt(other, key, aad).payload;
  EXPECT_THROW(cipher_->decrypt(view, key, aad, swapped), AuthenticationError);
  EXPECT_NO_THROW(cipher_->decrypt(view, key, aad, rec));
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(PayloadContract);  // a build without LibTorch has no lossy backend
INSTANTIATE_TEST_SUITE_P(LossyBackends, PayloadContract, ::testing::ValuesIn(backendsWithPayload()),
                         backendTestName);

TEST(BackendTable, IdsAreUniqueAndTheDefaultComesFirst) {
  const auto ids = availableBackends();
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), "aes-256-gcm");
  auto sorted = ids;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end());
  EXPECT_EQ(findBackend("rot13"), nullptr);
  EXPECT_THROW(makeCipher("rot13"), CipherError);
}

TEST(BackendSubkey, MatchesIndependentHkdfAndDiffersPerBackend) {
  SecretBytes dataKey(32);
  for (int i = 0; i < 32; ++i) dataKey.data()[i] = static_cast<std::uint8_t>(i);
  auto hexOf = [](const SecretBytes& k) {
    static const char* digits = "0123456789abcdef";
    std::string s;
    for (std::size_t i = 0; i < k.size(); ++i) s += {digits[k.data()[i] >> 4], digits[k.data()[i] & 15]};
    return s;
  };
  // HKDF-SHA-256 computed with Python's hmac module: IKM 00..1f, no salt,
  // info "pacsgw backend subkey v1" 0x00 id.
  EXPECT_EQ(hexOf(backendSubkey(dataKey, "aes-256-gcm")),
            "de3b017201c1d99e9557332b16a4424caa62469798e825919645a9f88d7094bb");
  EXPECT_EQ(hexOf(backendSubkey(dataKey, "chaos-vpd")),
            "2aba7f19b3eb1d824020ac528cb76be130fc4fb3c960de765700f6af64f4e3f5");
  EXPECT_THROW(backendSubkey(SecretBytes(31), "aes-256-gcm"), CipherError);
  EXPECT_THROW(backendSubkey(dataKey, ""), CipherError);
}

}  // namespace
}  // namespace pacsgw::codecs
