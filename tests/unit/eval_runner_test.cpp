// The evaluation end to end: DICOM files in (written here with DCMTK, plus the real CT of the test-data
// cache when present), JSON and HTML out, for every backend of this build.
#include "codecs/eval/dicom_input.h"
#include "codecs/eval/eval_command.h"
#include "codecs/eval/eval_runner.h"
#include "codecs/eval/metrics.h"
#include "codecs/eval/report.h"
#include "codecs/exact_retrieval.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include "codecs/backend_table.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <unistd.h>

namespace pacsgw::eval {
namespace {

namespace fs = std::filesystem;

// A 64 x 64 16-bit signed CT-like phantom (disc on air), written as Explicit VR Little Endian.
std::string writePhantom(const fs::path& dir, int frames = 1, bool withWindow = false) {
  DcmFileFormat file;
  DcmDataset* ds = file.getDataset();
  ds->putAndInsertString(DCM_SOPClassUID, UID_CTImageStorage);
  ds->putAndInsertString(DCM_SOPInstanceUID, "1.2.826.0.1.3680043.10.1234.1");
  ds->putAndInsertString(DCM_Modality, "CT");
  ds->putAndInsertUint16(DCM_Rows, 64);
  ds->putAndInsertUint16(DCM_Columns, 64);
  ds->putAndInsertUint16(DCM_BitsAllocated, 16);
  ds->putAndInsertUint16(DCM_BitsStored, 12);
  ds->putAndInsertUint16(DCM_HighBit, 11);
  ds->putAndInsertUint16(DCM_PixelRepresentation, 1);
  ds->putAndInsertUint16(DCM_SamplesPerPixel, 1);
  ds->putAndInsertString(DCM_PhotometricInterpretation, "MONOCHROME2");
  if (frames > 1) ds->putAndInsertString(DCM_NumberOfFrames, std::to_string(frames).c_str());
  if (withWindow) {  // a window on rescaled units = stored - 1024 that shows the disc (stored 40..70)
    ds->putAndInsertString(DCM_WindowCenter, "-984\\-500");
    ds->putAndInsertString(DCM_WindowWidth, "400\\1500");
    ds->putAndInsertString(DCM_RescaleIntercept, "-1024");
    ds->putAndInsertString(DCM_RescaleSlope, "1");
  }
  std::vector<Uint16> px(64 * 64 * frames);
  for (int f = 0; f < frames; ++f)
    for (int r = 0; r < 64; ++r)
      for (int c = 0; c < 64; ++c) {
        const double d = std::hypot(r - 32.0, c - 32.0);
        const int v = d < 24 ? 40 + (r + c + f) % 30 : -1000;
        px[(f * 64 + r) * 64 + c] = static_cast<Uint16>(static_cast<std::int16_t>(v));
      }
  ds->putAndInsertUint16Array(DCM_PixelData, px.data(), static_cast<unsigned long>(px.size()));
  const fs::path p = dir / ("phantom" + std::to_string(frames) + (withWindow ? "w" : "") + ".dcm");
  EXPECT_TRUE(file.saveFile(p.c_str(), EXS_LittleEndianExplicit).good());
  return p.string();
}

fs::path tempDir() {
  const fs::path d = fs::temp_directory_path() / ("pacsgw-eval-test-" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

TEST(EvalInput, LoadsWrittenFileAndDirectories) {
  const fs::path dir = tempDir();
  const std::string path = writePhantom(dir, 3);
  const EvalImage img = loadDicomImage(path);
  EXPECT_EQ(img.layout.rows, 64);
  EXPECT_EQ(img.layout.numberOfFrames, 3u);
  EXPECT_EQ(img.layout.pixelRepresentation, 1);
  EXPECT_EQ(img.bytes.size(), 64u * 64 * 3 * 2);
  EXPECT_EQ(img.modality, "CT");
  EXPECT_EQ(expandInputs({dir.string()}), std::vector<std::string>{path});
  EXPECT_THROW(loadDicomImage((dir / "missing.dcm").string()), std::runtime_error);
  EXPECT_FALSE(img.dicomWindow.has_value());
  // The first window, linear VOI function, taken back to stored units through the rescale intercept:
  // -984 -/+ 200 (PS3.3 C.11.2.1.2.1: c - 0.5 -/+ (w - 1) / 2) = -1184 .. -785 = stored -160 .. 239.
  const EvalImage windowed = loadDicomImage(writePhantom(dir, 1, true));
  ASSERT_TRUE(windowed.dicomWindow.has_value());
  EXPECT_DOUBLE_EQ(windowed.dicomWindow->first, -160);
  EXPECT_DOUBLE_EQ(windowed.dicomWindow->second, 239);
  fs::remove_all(dir);
}

TEST(EvalInput, DecodesCompressedRealCtWhenAvailable) {
  const fs::path rle = fs::path(PACSGW_TEST_DATA_DIR) / "cache" / "ct_rle.dcm";
  if (!fs::exists(rle)) GTEST_SKIP() << "run scripts/fetch-test-data.sh for the real CT";
  DecoderRegistration codecs;
  const EvalImage img = loadDicomImage(rle.string());
  EXPECT_EQ(img.layout.rows, 512);
  EXPECT_EQ(img.layout.columns, 512);
  EXPECT_EQ(img.layout.bitsAllocated, 16);
  EXPECT_FALSE(img.layout.encapsulated);
  EXPECT_EQ(img.bytes.size(), 512u * 512 * 2);
}

TEST(EvalRunner, ProducesTheDocumentedKeysForEveryBackend) {
  const fs::path dir = tempDir();
  const EvalImage img = loadDicomImage(writePhantom(dir, 1, true));
  EvalOptions opt;
  opt.backends = codecs::availableBackends();
  opt.pairs = 2000;
  opt.timingSeconds = 0.01;
  opt.nistKeyBits = 20000;
  std::ostringstream log;
  const EvalReport report = runEvaluation({img}, opt, log);
  const auto& backends = report.json.find("backends")->items();
  ASSERT_EQ(backends.size(), opt.backends.size());
  for (const auto& b : backends) {
    for (const char* key : {"entropy", "corr_h", "corr_v", "corr_d", "npcr", "uaci", "npcr_pass", "uaci_pass",
                            "lossless", "bit_exact", "decrypt_psnr", "decrypt_ssim", "decrypt_psnr_full_range",
                            "decrypt_ssim_full_range", "decrypt_psnr_dicom_window", "crop_psnr", "salt_pepper_psnr",
                            "gaussian_psnr", "encrypt_mb_s", "decrypt_mb_s", "encrypt_images_per_s",
                            "decrypt_images_per_s", "model_size_bytes", "envelope_bytes_mean"})
      EXPECT_NE(b.find(key), nullptr) << b.find("backend")->string() << " lacks " << key;
    const std::string id = b.find("backend")->string();
    const bool lossless = codecs::findBackend(id)->info.lossless;
    EXPECT_EQ(b.find("lossless")->boolean(), lossless) << id;
    // Through the gateway's path every backend returns the original bytes (the envelope for lossy ones).
    EXPECT_TRUE(b.find("bit_exact")->boolean()) << id;
    if (lossless) {
      EXPECT_TRUE(b.find("decrypt_psnr")->isNull()) << id;  // infinite: bit-exact
      EXPECT_TRUE(b.find("decrypt_psnr_full_range")->isNull()) << id;
      EXPECT_DOUBLE_EQ(b.find("decrypt_ssim")->number(), 1.0) << id;
      EXPECT_EQ(b.find("model_size_bytes")->number(), 0) << id;
      EXPECT_EQ(b.find("envelope_bytes_mean")->number(), 0) << id;
    } else {
      // The model's own reconstruction, not the envelope's exact pixels: finite.
      EXPECT_TRUE(b.find("decrypt_psnr")->isNumber()) << id;
      EXPECT_TRUE(b.find("decrypt_psnr_full_range")->isNumber()) << id;
      EXPECT_TRUE(b.find("decrypt_psnr_dicom_window")->isNumber()) << id;
      EXPECT_LT(b.find("decrypt_ssim")->number(), 1.0) << id;
      EXPECT_EQ(b.find("model_size_bytes")->number(),
                static_cast<double>(fs::file_size(fs::path(PACSGW_TEST_DATA_DIR) / ".." / ".." / "models" / (id + ".pt"))))
          << id;
      EXPECT_GT(b.find("envelope_bytes_mean")->number(), 0) << id;
    }
    EXPECT_GT(b.find("encrypt_images_per_s")->number(), 0) << id;
    EXPECT_GT(b.find("decrypt_images_per_s")->number(), 0) << id;
    EXPECT_TRUE(b.find("wrong_key_rejected")->boolean()) << id;
    EXPECT_TRUE(b.find("tamper_detected")->boolean()) << id;
    // 4096 samples: expected ~7.95 for uniform bytes; feature-fusion's cipher image is a network's output,
    // 7.87 on real slices and 7.88-7.93 here (its shipped-model test asserts the same 7.8 bound).
    EXPECT_GT(b.find("entropy")->number(), id == "feature-fusion" ? 7.8 : 7.9) << id;
    EXPECT_LT(std::fabs(b.find("corr_h")->number()), 0.1) << id;
    // Independent encryptions are unrelated whatever the cipher. feature-fusion's cipher image is a network's
    // output whose values are not uniform (entropy about 7.87 bits on real slices), so more samples coincide
    // by chance: 98.2 % measured on this image against 99.6 % for uniform bytes.
    EXPECT_GT(b.find("npcr_fresh_nonce")->number(), id == "feature-fusion" ? 97.0 : 99.0) << id;
    const Json& image = b.find("images")->items().at(0);
    EXPECT_TRUE(image.find("deterministic_core_verified")->boolean()) << id;
    EXPECT_NE(image.find("nist"), nullptr);
    if (id == "aes-256-gcm") {
      // GCM under the same key and nonce changes only the changed sample: a stream cipher property.
      EXPECT_LT(b.find("npcr")->number(), 1.0);
      EXPECT_FALSE(b.find("npcr_pass")->boolean());
    } else if (id == "chaos-vpd") {
      EXPECT_GT(b.find("npcr")->number(), 99.0) << id;
      EXPECT_GT(b.find("generator_ms")->number(), 0.0);
    } else if (id == "ae-aes" || id == "ae-he") {
      // The cipher image is a key stream of key and nonce alone: same key and nonce, same cipher image.
      EXPECT_LT(b.find("npcr")->number(), 1.0) << id;
    }
  }
  const std::string html = renderHtmlReport(report);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("data:image/png;base64,"), std::string::npos);
  EXPECT_NE(html.find("10.1038/s41598-024-84186-6"), std::string::npos);
  fs::remove_all(dir);
}

// bit_exact is the gateway path's: the envelope intact gives the original, a stripped or damaged one does not.
TEST(EvalRunner, GatewayRetrievalIsBitExactOnlyWithTheIntactEnvelope) {
  const fs::path dir = tempDir();
  const EvalImage img = loadDicomImage(writePhantom(dir));
  SecretBytes key(32);
  for (std::size_t i = 0; i < 32; ++i) key.data()[i] = static_cast<std::uint8_t>(i * 7 + 1);
  const std::vector<std::uint8_t> aad{'e', 'v', 'a', 'l'};
  for (const std::string& id : codecs::availableBackends()) {
    if (codecs::findBackend(id)->info.lossless) continue;
    const auto cipher = codecs::makeCipher(id, codecs::CipherOptions{});
    std::vector<std::uint8_t> c = img.bytes;
    codecs::PixelBuffer b;
    b.layout = img.layout;
    b.segments.push_back({c.data(), c.size()});
    const codecs::ProtectedPixels sealed = codecs::protectPixels(*cipher, b, key, aad, codecs::Retrieval::Exact);
    ASSERT_FALSE(sealed.envelope.empty()) << id;
    EXPECT_TRUE(gatewayRetrieval(*cipher, img.layout, c, key, aad, sealed.record, sealed.envelope, img.bytes).bitExact)
        << id;
    // Envelope bypassed: stripping it is refused (its presence is bound), never reported exact.
    const GatewayRetrieval stripped = gatewayRetrieval(*cipher, img.layout, c, key, aad, sealed.record, {}, img.bytes);
    EXPECT_FALSE(stripped.bitExact) << id;
    EXPECT_NE(stripped.outcome.find("AuthenticationError"), std::string::npos) << id << ": " << stripped.outcome;
    std::vector<std::uint8_t> damaged = sealed.envelope;
    damaged[damaged.size() / 2] ^= 0x01;
    EXPECT_FALSE(gatewayRetrieval(*cipher, img.layout, c, key, aad, sealed.record, damaged, img.bytes).bitExact) << id;
    // The model's reconstruction alone is not the original: the comparison is byte for byte.
    std::vector<std::uint8_t> other = img.bytes;
    other[0] ^= 0x01;
    EXPECT_FALSE(gatewayRetrieval(*cipher, img.layout, c, key, aad, sealed.record, sealed.envelope, other).bitExact)
        << id;
  }
  fs::remove_all(dir);
}

// decrypt_psnr is the model's own reconstruction in the windowed 8-bit view. ae-aes reconstructs from the
// pixels alone (the key only protects the latent), so an independent decryption gives the same figure.
TEST(EvalRunner, DecryptPsnrIsThatOfTheModelsReconstruction) {
  if (codecs::findBackend("ae-aes") == nullptr) GTEST_SKIP() << "built without ae-aes";
  const fs::path dir = tempDir();
  const EvalImage img = loadDicomImage(writePhantom(dir));
  EvalOptions opt;
  opt.backends = {"ae-aes"};
  opt.pairs = 500;
  opt.timingSeconds = 0.01;
  opt.nist = false;
  opt.differentialRuns = 1;
  opt.figureImages = 0;
  std::ostringstream log;
  const EvalReport report = runEvaluation({img}, opt, log);
  const Json& b = report.json.find("backends")->items().at(0);

  const auto cipher = codecs::makeCipher("ae-aes", codecs::CipherOptions{});
  SecretBytes key(32);
  std::vector<std::uint8_t> d = img.bytes;
  codecs::PixelBuffer buf;
  buf.layout = img.layout;
  buf.segments.push_back({d.data(), d.size()});
  const std::vector<std::uint8_t> aad{'x'};
  const codecs::CipherRecord r = cipher->encrypt(buf, key, aad);
  cipher->decrypt(buf, key, aad, r);
  const auto w = frameMinMaxWindows(img.layout, img.bytes.data(), img.bytes.size());
  const double expected = psnr(windowedView(img.layout, img.bytes.data(), img.bytes.size(), w),
                               windowedView(img.layout, d.data(), d.size(), w));
  ASSERT_TRUE(b.find("decrypt_psnr")->isNumber());
  EXPECT_NEAR(b.find("decrypt_psnr")->number(), expected, 1e-9);
  const double full = psnr(storedView(img.layout, img.bytes.data(), img.bytes.size()), storedView(img.layout, d.data(), d.size()));
  EXPECT_NEAR(b.find("decrypt_psnr_full_range")->number(), full, 1e-9);
  EXPECT_FALSE(b.find("lossless")->boolean());
  EXPECT_TRUE(b.find("bit_exact")->boolean());
  fs::remove_all(dir);
}

TEST(EvalCommand, WritesJsonAndReport) {
  const fs::path dir = tempDir();
  const std::string input = writePhantom(dir);
  const std::string json = (dir / "out.json").string(), html = (dir / "out.html").string();
  const int rc = runEvalCommand({"--backend", "aes-256-gcm", "--json", json, "--report", html, "--pairs", "500",
                                 "--timing-seconds", "0.01", "--no-nist", "--quiet", input});
  EXPECT_EQ(rc, 0);
  std::ifstream j(json);
  const std::string text((std::istreambuf_iterator<char>(j)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("\"backend\": \"aes-256-gcm\""), std::string::npos);
  EXPECT_TRUE(fs::exists(html));
  fs::remove_all(dir);
}

TEST(EvalCommand, UsageErrors) {
  EXPECT_EQ(runEvalCommand({"--backend", "aes-256-gcm", "x.dcm"}), 2);              // no --json
  EXPECT_EQ(runEvalCommand({"--backend", "nope", "--json", "/tmp/x", "x.dcm"}), 2);  // unknown backend
  EXPECT_EQ(runEvalCommand({"--bogus"}), 2);
  EXPECT_EQ(runEvalCommand({"--help"}), 0);
  EXPECT_EQ(runEvalCommand({"--backend", "aes-256-gcm", "--json", "/tmp/x", "--quiet", "/nonexistent.dcm"}), 1);
}

}  // namespace
}  // namespace pacsgw::eval
