#include "codecs/feature_fusion/image_cipher.h"

namespace pacsgw::codecs::feature_fusion {

ProtectedImage protectImage(const FeatureFusionModel& model, const std::vector<float>& values, int rows, int columns,
                            const ImageDigest& digest, const SecretBytes& subkey) {
  const UserKey key = userKeyFromSubkey(subkey);
  const FeatureKeys keys = featureKeys(digest, key, model.config().channels, rows, columns);
  const auto encrypted = model.encrypt(values, rows, columns, keys);
  Codes alpha(encrypted.alpha.size());
  for (std::size_t i = 0; i < alpha.size(); ++i) alpha[i] = alphaToCode(encrypted.alpha[i], model.config().alphaMin);
  ProtectedImage out;
  out.rows = rows;
  out.columns = columns;
  out.cipher = encrypted.cipher;
  out.digest = digest;
  out.ep = AdditiveCoupling(key, alpha.size()).protect(alpha, keys.couplingKey);
  return out;
}

std::vector<float> recoverImage(const FeatureFusionModel& model, const ProtectedImage& image, const SecretBytes& subkey) {
  const UserKey key = userKeyFromSubkey(subkey);
  const FeatureKeys keys = featureKeys(image.digest, key, model.config().channels, image.rows, image.columns);
  const Codes alphaCodes = AdditiveCoupling(key, image.ep.size()).recover(image.ep, keys.couplingKey);
  std::vector<float> alpha(alphaCodes.size());
  for (std::size_t i = 0; i < alpha.size(); ++i) alpha[i] = codeToAlpha(alphaCodes[i], model.config().alphaMin);
  return model.decrypt(image.cipher, image.rows, image.columns, alpha, keys);
}

}  // namespace pacsgw::codecs::feature_fusion
