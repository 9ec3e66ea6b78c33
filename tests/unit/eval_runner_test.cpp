// The evaluation end to end: DICOM files in (written here with DCMTK, plus the real CT of the test-data
// cache when present), JSON and HTML out, for every backend of this build.
#include "codecs/eval/dicom_input.h"
#include "codecs/eval/eval_command.h"
#include "codecs/eval/eval_runner.h"
#include "codecs/eval/report.h"

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
std::string writePhantom(const fs::path& dir, int frames = 1) {
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
  std::vector<Uint16> px(64 * 64 * frames);
  for (int f = 0; f < frames; ++f)
    for (int r = 0; r < 64; ++r)
      for (int c = 0; c < 64; ++c) {
        const double d = std::hypot(r - 32.0, c - 32.0);
        const int v = d < 24 ? 40 + (r + c + f) % 30 : -1000;
        px[(f * 64 + r) * 64 + c] = static_cast<Uint16>(static_cast<std::int16_t>(v));
      }
  ds->putAndInsertUint16Array(DCM_PixelData, px.data(), static_cast<unsigned long>(px.size()));
  const fs::path p = dir / ("phantom" + std::to_string(frames) + ".dcm");
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
  const EvalImage img = loadDicomImage(writePhantom(dir));
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
                            "lossless", "decrypt_psnr", "decrypt_ssim", "encrypt_mb_s", "decrypt_mb_s"})
      EXPECT_NE(b.find(key), nullptr) << b.find("backend")->string() << " lacks " << key;
    const std::string id = b.find("backend")->string();
    const bool lossless = codecs::findBackend(id)->info.lossless;
    EXPECT_EQ(b.find("lossless")->boolean(), lossless) << id;
    if (lossless) {
      EXPECT_TRUE(b.find("decrypt_psnr")->isNull()) << id;  // infinite: bit-exact
      EXPECT_DOUBLE_EQ(b.find("decrypt_ssim")->number(), 1.0) << id;
    } else {
      EXPECT_TRUE(b.find("decrypt_psnr")->isNumber()) << id;  // the model's own reconstruction
    }
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
