// The evaluation core of feature-fusion for `pacsgw eval`: chosen nonce, decryption without verification
// (the side information decrypted in GCM's counter mode, whatever the key), the feature-key orbits.
#include "codecs/eval/cores.h"
#include "codecs/feature_fusion/feature_fusion_backend.h"
#include "codecs/feature_fusion/model.h"

namespace pacsgw::eval {
namespace {

class FeatureFusionCore final : public DeterministicCore {
 public:
  explicit FeatureFusionCore(const std::string& device) { options_.device = device; }
  std::string description() const override {
    return "feature-fusion with a chosen 12-byte nonce; unverified decryption opens the side information in "
           "GCM's counter mode without the tag and decodes with whatever keys and coefficients result";
  }
  std::size_t nonceBytes() const override { return codecs::feature_fusion::kNonceBytes; }
  codecs::CipherRecord encryptWithNonce(codecs::PixelBuffer& pixels, const SecretBytes& key,
                                        const std::vector<std::uint8_t>& aad,
                                        const std::vector<std::uint8_t>& nonce) override {
    return codecs::feature_fusion::engine::encrypt(pixels, key, aad, nonce, options_);
  }
  void decryptUnverified(codecs::PixelBuffer& pixels, const SecretBytes& key, const std::vector<std::uint8_t>& aad,
                         const codecs::CipherRecord& record) override {
    codecs::feature_fusion::engine::decryptUnverified(pixels, key, aad, record, options_);
  }
  // The Logistic orbit of the first feature key (x0^1) of the object's first frame.
  std::vector<Stream> keyStreams(const SecretBytes& key, const codecs::CipherRecord& record, std::size_t bits) override {
    return {{"logistic x0^1", codecs::feature_fusion::engine::keyStreamBytes(key, record, (bits + 7) / 8, options_)}};
  }

 private:
  codecs::CipherOptions options_;
};

}  // namespace

const EvalCoreEntry& featureFusionEvalCore() {
  static const EvalCoreEntry entry{
      [](const std::string& device) -> std::unique_ptr<DeterministicCore> { return std::make_unique<FeatureFusionCore>(device); },
      [](int threads) { codecs::feature_fusion::setTorchThreads(threads); }};
  return entry;
}

}  // namespace pacsgw::eval
