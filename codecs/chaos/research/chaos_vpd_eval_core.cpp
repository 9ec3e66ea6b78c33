// The evaluation core of chaos-vpd for `pacsgw eval`, over the research hooks.
#include "codecs/chaos/decoy_generator.h"
#include "codecs/chaos/research/chaos_vpd_research.h"
#include "codecs/eval/cores.h"

#include <array>

namespace pacsgw::eval {
namespace {

class ChaosVpdCore final : public DeterministicCore {
 public:
  explicit ChaosVpdCore(codecs::Device device) : device_(device) {}
  std::string description() const override {
    return "chaos-vpd with a chosen 32-byte nonce (codecs/chaos/research/chaos_vpd_research.h)";
  }
  std::size_t nonceBytes() const override { return codecs::chaos::kNonceBytes; }

  codecs::CipherRecord encryptWithNonce(codecs::PixelBuffer& pixels, const SecretBytes& key,
                                        const std::vector<std::uint8_t>& aad,
                                        const std::vector<std::uint8_t>& nonce) override {
    auto rec = codecs::chaos::encryptWithNonce(pixels, key, aad, nonce, device_);
    generatorMs_ = codecs::chaos::lastCallTimings().generatorMs;
    return rec;
  }

  void decryptUnverified(codecs::PixelBuffer& pixels, const SecretBytes& key, const std::vector<std::uint8_t>& aad,
                         const codecs::CipherRecord& record) override {
    codecs::chaos::decryptUnauthenticated(pixels, key, aad, record, device_);
  }

  std::vector<Stream> keyStreams(const SecretBytes& key, const codecs::CipherRecord& record,
                                 std::size_t bits) override {
    const std::size_t words = (bits + 31) / 32;
    const auto lanes = codecs::chaos::keyStreams(key, record, words, device_);
    std::vector<Stream> out;
    for (std::size_t l = 0; l < lanes.size(); ++l) {
      Stream s{"K" + std::to_string(l + 1), {}};
      s.bytes.reserve(words * 4);
      for (std::uint32_t w : lanes[l])
        for (int b = 3; b >= 0; --b) s.bytes.push_back(static_cast<std::uint8_t>(w >> (8 * b)));
      out.push_back(std::move(s));
    }
    return out;
  }

  bool encryptLayersOnly(codecs::PixelBuffer& pixels, const SecretBytes& key, const std::vector<std::uint8_t>& aad,
                         const std::vector<std::uint8_t>& nonce) override {
    const std::array<std::uint8_t, codecs::chaos::kSivBytes> fixedSiv{};
    codecs::chaos::encryptWithFixedSiv(pixels, key, aad, nonce, fixedSiv, device_);
    return true;
  }

  double lastGeneratorMs() const override { return generatorMs_; }

 private:
  codecs::Device device_;
  double generatorMs_ = 0;
};
}  // namespace

const EvalCoreEntry& chaosVpdEvalCore() {
  static const EvalCoreEntry entry{
      [](const std::string& device) -> std::unique_ptr<DeterministicCore> {
        return std::make_unique<ChaosVpdCore>(
            codecs::resolveDevice(device, codecs::chaos::DecoyGenerator::cudaAvailable()));
      },
      [](int threads) { codecs::chaos::setTensorThreads(threads); }};
  return entry;
}

}  // namespace pacsgw::eval
