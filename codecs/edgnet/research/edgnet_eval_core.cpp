// The evaluation core of edgnet for `pacsgw eval`: chosen nonce, decryption without verification.
#include "codecs/edgnet/edgnet_backend.h"
#include "codecs/eval/cores.h"
#include "codecs/neural/autoencoder.h"

namespace pacsgw::eval {
namespace {

class EdgNetCore final : public DeterministicCore {
 public:
  explicit EdgNetCore(const std::string& device) { options_.device = device; }
  std::string description() const override {
    return "edgnet with a chosen 12-byte nonce; unverified decryption removes the AES-256-CTR mask and opens the "
           "windows in GCM's counter mode with whatever key is given, then runs the decrypting generator";
  }
  std::size_t nonceBytes() const override { return codecs::edgnet::kNonceBytes; }
  codecs::CipherRecord encryptWithNonce(codecs::PixelBuffer& pixels, const SecretBytes& key,
                                        const std::vector<std::uint8_t>& aad,
                                        const std::vector<std::uint8_t>& nonce) override {
    return codecs::edgnet::engine::encrypt(pixels, key, aad, nonce, options_);
  }
  void decryptUnverified(codecs::PixelBuffer& pixels, const SecretBytes& key, const std::vector<std::uint8_t>& aad,
                         const codecs::CipherRecord& record) override {
    codecs::edgnet::engine::decryptUnverified(pixels, key, aad, record, options_);
  }
  // The mask is an AES-CTR key stream; there are no other key streams to test.
  std::vector<Stream> keyStreams(const SecretBytes&, const codecs::CipherRecord&, std::size_t) override { return {}; }

 private:
  codecs::CipherOptions options_;
};

}  // namespace

const EvalCoreEntry& edgNetEvalCore() {
  static const EvalCoreEntry entry{
      [](const std::string& device) -> std::unique_ptr<DeterministicCore> { return std::make_unique<EdgNetCore>(device); },
      [](int threads) { codecs::neural::setTensorThreads(threads); }};
  return entry;
}

}  // namespace pacsgw::eval
