// The evaluation core of ae-aes for `pacsgw eval`: chosen nonce, decryption without verification.
#include "codecs/ae_aes/ae_aes.h"
#include "codecs/eval/cores.h"
#include "codecs/neural/autoencoder.h"

namespace pacsgw::eval {
namespace {

class AeAesCore final : public DeterministicCore {
 public:
  explicit AeAesCore(const std::string& device) { options_.device = device; }
  std::string description() const override {
    return "ae-aes with a chosen 12-byte nonce; unverified decryption runs AES-256 in GCM's counter mode and "
           "decodes whatever latent results";
  }
  std::size_t nonceBytes() const override { return codecs::ae_aes::kNonceBytes; }
  codecs::CipherRecord encryptWithNonce(codecs::PixelBuffer& pixels, const SecretBytes& key,
                                        const std::vector<std::uint8_t>& aad,
                                        const std::vector<std::uint8_t>& nonce) override {
    return codecs::ae_aes::engine::encrypt(pixels, key, aad, nonce, options_);
  }
  void decryptUnverified(codecs::PixelBuffer& pixels, const SecretBytes& key, const std::vector<std::uint8_t>& aad,
                         const codecs::CipherRecord& record) override {
    codecs::ae_aes::engine::decryptUnverified(pixels, key, aad, record, options_);
  }
  // The cipher image is an AES-CTR key stream; there are no other key streams to test.
  std::vector<Stream> keyStreams(const SecretBytes&, const codecs::CipherRecord&, std::size_t) override { return {}; }

 private:
  codecs::CipherOptions options_;
};

}  // namespace

const EvalCoreEntry& aeAesEvalCore() {
  static const EvalCoreEntry entry{
      [](const std::string& device) -> std::unique_ptr<DeterministicCore> { return std::make_unique<AeAesCore>(device); },
      [](int threads) { codecs::neural::setTensorThreads(threads); }};
  return entry;
}

}  // namespace pacsgw::eval
