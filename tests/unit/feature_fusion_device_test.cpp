// feature-fusion places its tensors on cipher.device like the other learned backends: cpu and auto work
// here, and a device this machine lacks is a configuration error naming the key, not a crash.
#include "codecs/feature_fusion/model.h"
#include "codecs/pixel_cipher.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace {

using pacsgw::codecs::CipherError;
using pacsgw::codecs::CipherOptions;
using pacsgw::codecs::Device;
using pacsgw::codecs::makeCipher;
namespace ff = pacsgw::codecs::feature_fusion;

pacsgw::codecs::PixelLayout ct64() {
  pacsgw::codecs::PixelLayout l;
  l.rows = 64;
  l.columns = 64;
  l.bitsAllocated = 16;
  l.bitsStored = 12;
  l.highBit = 11;
  l.samplesPerPixel = 1;
  l.photometricInterpretation = "MONOCHROME2";
  return l;
}

TEST(FeatureFusionDevice, CpuAndAutoRunOnTheCpuHere) {
  for (const char* device : {"cpu", "auto", "CPU"}) {
    const auto cipher = makeCipher("feature-fusion", CipherOptions{device});
    const Device expected = std::string(device) == "auto" && ff::FeatureFusionModel::cudaAvailable() ? Device::Cuda : Device::Cpu;
    EXPECT_EQ(cipher->device(), expected) << device;
    // And it works there: a round trip through the backend.
    std::vector<std::uint8_t> pixels(64 * 64 * 2);
    for (std::size_t i = 0; i < pixels.size(); i += 2) pixels[i] = static_cast<std::uint8_t>(i / 2 % 251);
    const std::vector<std::uint8_t> original = pixels;
    pacsgw::codecs::PixelBuffer b;
    b.layout = ct64();
    b.segments.push_back({pixels.data(), pixels.size()});
    pacsgw::SecretBytes key(32);
    const std::vector<std::uint8_t> aad{'d'};
    const auto record = cipher->encrypt(b, key, aad);
    EXPECT_NE(pixels, original);
    cipher->decrypt(b, key, aad, record);
    EXPECT_EQ(pixels.size(), original.size());
  }
}

TEST(FeatureFusionDevice, UnavailableCudaIsAConfigurationErrorNamingTheKey) {
  if (ff::FeatureFusionModel::cudaAvailable()) {
    EXPECT_EQ(makeCipher("feature-fusion", CipherOptions{"cuda"})->device(), Device::Cuda);
    return;
  }
  try {
    makeCipher("feature-fusion", CipherOptions{"cuda"});
    FAIL() << "cuda accepted without a CUDA device";
  } catch (const CipherError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("feature-fusion"), std::string::npos) << what;
    EXPECT_NE(what.find("cipher.device"), std::string::npos) << what;
    EXPECT_NE(what.find("cuda"), std::string::npos) << what;
  }
  EXPECT_THROW(makeCipher("feature-fusion", CipherOptions{"tpu"}), CipherError);
}

}  // namespace
