// The software master key provider: the master key is in process memory (from a file or the
// environment) and data keys are wrapped with the row-bound RFC 5649 format 2.
#include "keystore/master_key_provider.h"

namespace pacsgw::keystore {

namespace {

constexpr int kRowBoundWrap = 2;

class SoftwareMasterKey final : public MasterKeyProvider {
 public:
  SoftwareMasterKey(SecretBytes key, std::string description)
      : key_(std::move(key)), description_(std::move(description)), check_(masterKeyCheckValue(key_)) {}

  std::string describe() const override { return description_; }
  std::vector<std::uint8_t> checkValue() const override { return check_; }
  int wrapFormat() const override { return kRowBoundWrap; }
  std::vector<std::uint8_t> wrapForRow(const std::string& keyId, KeyScope scope, const std::string& scopeUid,
                                       const SecretBytes& key) const override {
    return wrapKeyForRow(key_, keyId, scope, scopeUid, key);
  }
  SecretBytes unwrapForRow(const std::string& keyId, KeyScope scope, const std::string& scopeUid,
                           const std::vector<std::uint8_t>& wrapped) const override {
    return unwrapKeyForRow(key_, keyId, scope, scopeUid, wrapped);
  }
  const SecretBytes* rawKey() const override { return &key_; }

 private:
  SecretBytes key_;
  std::string description_;
  std::vector<std::uint8_t> check_;  // computed once: every insert compares it with the stored one
};

}  // namespace

std::unique_ptr<MasterKeyProvider> softwareMasterKey(SecretBytes key, std::string description) {
  if (key.size() != 32) throw KeystoreError("master key must be 32 bytes, got " + std::to_string(key.size()));
  return std::make_unique<SoftwareMasterKey>(std::move(key), std::move(description));
}

}  // namespace pacsgw::keystore
