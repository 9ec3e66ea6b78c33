// The chaos-vpd research hooks: thin, explicit entry points over the backend's engine. Linked by
// `pacsgw-eval` and the tests only.
#include "codecs/chaos/research/chaos_vpd_research.h"

namespace pacsgw::codecs::chaos {

CallTimings lastCallTimings() { return engine::lastCallTimings(); }

CipherRecord encryptWithNonce(PixelBuffer& pixels, const SecretBytes& dataKey, const std::vector<std::uint8_t>& aad,
                              const std::vector<std::uint8_t>& nonce, Device device) {
  return engine::encrypt(pixels, dataKey, aad, nonce, nullptr, device);
}

CipherRecord encryptWithFixedSiv(PixelBuffer& pixels, const SecretBytes& dataKey, const std::vector<std::uint8_t>& aad,
                                 const std::vector<std::uint8_t>& nonce, const std::array<std::uint8_t, kSivBytes>& siv,
                                 Device device) {
  return engine::encrypt(pixels, dataKey, aad, nonce, &siv, device);
}

void decryptUnauthenticated(PixelBuffer& pixels, const SecretBytes& dataKey, const std::vector<std::uint8_t>&,
                            const CipherRecord& record, Device device) {
  engine::invertLayers(pixels, dataKey, record, device);
}

LaneStreams keyStreams(const SecretBytes& dataKey, const CipherRecord& record, std::size_t outputsPerLane,
                       Device device) {
  return engine::keyStreams(dataKey, record, outputsPerLane, device);
}

DecoySummary decoyFor(const SecretBytes& dataKey, const CipherRecord& record, Device device) {
  return engine::decoyFor(dataKey, record, device);
}

}  // namespace pacsgw::codecs::chaos
