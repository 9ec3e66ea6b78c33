#include "gateway/keystore_verifier.h"

#include "gateway/instance_protector.h"
#include "gateway/large_object_retrieve.h"
#include "gateway/passthrough_policy.h"
#include "gateway/relay/relay_service.h"

#include <dcmtk/dcmdata/dcdeftag.h>

namespace pacsgw::gateway {

E_TransferSyntax KeystoreVerifier::restore(DcmDataset& dataset, E_TransferSyntax xfer, audit::KeyReleases& releases) {
  return protector_().restore(dataset, xfer, &releases);
}

E_TransferSyntax KeystoreVerifier::restoreSpooled(DcmDataset& dataset, E_TransferSyntax xfer,
                                                  std::shared_ptr<SpooledPixelData> pixels,
                                                  audit::KeyReleases& releases) {
  // The checks see the header only, as at encryption; the ciphertext element goes (the file stays open
  // through `pixels`) and a plaintext one replaces it only after the tag verified.
  delete dataset.remove(DCM_PixelData);
  auto [original, message] = protector_().restoreStreaming(
      dataset, xfer, pixels->length(),
      [&pixels](codecs::NativePixelDataOpener& opener) { checkSpooledPixelData(*pixels, opener); }, &releases);
  readSpooledPixelDataDecrypted(dataset, std::move(pixels), std::move(message));
  return original;
}

PassthroughDecision KeystoreVerifier::passthrough(DcmDataset& dataset) {
  return decidePassthrough(context_.config.cipher, context_.keys, dataset);
}

void KeystoreVerifier::attachRelayCapsule(DcmDataset& dataset, const config::RelayPeer& peer) {
  context_.relay->attachCapsule(dataset, peer, context_.keys);
}

}  // namespace pacsgw::gateway
