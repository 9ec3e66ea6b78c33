#include "gateway/keystore_verifier.h"

#include "gateway/instance_protector.h"
#include "gateway/passthrough_policy.h"
#include "gateway/relay/relay_service.h"

namespace pacsgw::gateway {

E_TransferSyntax KeystoreVerifier::restore(DcmDataset& dataset, E_TransferSyntax xfer, audit::KeyReleases& releases) {
  return protector_().restore(dataset, xfer, &releases);
}

PassthroughDecision KeystoreVerifier::passthrough(DcmDataset& dataset) {
  return decidePassthrough(context_.config.cipher, context_.keys, dataset);
}

void KeystoreVerifier::attachRelayCapsule(DcmDataset& dataset, const config::RelayPeer& peer) {
  context_.relay->attachCapsule(dataset, peer, context_.keys);
}

}  // namespace pacsgw::gateway
