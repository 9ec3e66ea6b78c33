// The evaluation core of ae-he for `pacsgw eval`: chosen nonce, decryption without verification.
#include "codecs/ae_he/ae_he.h"
#include "codecs/eval/cores.h"
#include "codecs/neural/autoencoder.h"

namespace pacsgw::eval {
namespace {

class AeHeCore final : public DeterministicCore {
 public:
  explicit AeHeCore(const std::string& device) { options_.device = device; }
  std::string description() const override {
    return "ae-he with a chosen 16-byte nonce (the cipher image; Paillier draws its own randomness); unverified "
           "decryption decrypts the features with the Paillier key derived from the given key and decodes "
           "whatever codes result";
  }
  std::size_t nonceBytes() const override { return codecs::ae_he::kNonceBytes; }
  codecs::CipherRecord encryptWithNonce(codecs::PixelBuffer& pixels, const SecretBytes& key,
                                        const std::vector<std::uint8_t>& aad,
                                        const std::vector<std::uint8_t>& nonce) override {
    return codecs::ae_he::engine::encrypt(pixels, key, aad, nonce, options_);
  }
  void decryptUnverified(codecs::PixelBuffer& pixels, const SecretBytes& key, const std::vector<std::uint8_t>& aad,
                         const codecs::CipherRecord& record) override {
    codecs::ae_he::engine::decryptUnverified(pixels, key, aad, record, options_);
  }
  // The cipher image is an AES-CTR key stream; Paillier ciphertexts are not key streams.
  std::vector<Stream> keyStreams(const SecretBytes&, const codecs::CipherRecord&, std::size_t) override { return {}; }

 private:
  codecs::CipherOptions options_;
};

}  // namespace

const EvalCoreEntry& aeHeEvalCore() {
  static const EvalCoreEntry entry{
      [](const std::string& device) -> std::unique_ptr<DeterministicCore> { return std::make_unique<AeHeCore>(device); },
      [](int threads) { codecs::neural::setTensorThreads(threads); }};
  return entry;
}

}  // namespace pacsgw::eval
