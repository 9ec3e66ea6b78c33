#pragma once
// The key side of the sub-operation intake as the gateway runs it: the association's InstanceProtector,
// the passthrough policy and the relay service.
#include "gateway/gateway_context.h"
#include "gateway/sub_operation_intake.h"

#include <functional>

namespace pacsgw::gateway {

class InstanceProtector;

class KeystoreVerifier : public SubOperationVerifier {
 public:
  KeystoreVerifier(GatewayContext& context, std::function<InstanceProtector&()> protector)
      : context_(context), protector_(std::move(protector)) {}
  E_TransferSyntax restore(DcmDataset& dataset, E_TransferSyntax xfer, audit::KeyReleases& releases) override;
  E_TransferSyntax restoreSpooled(DcmDataset& dataset, E_TransferSyntax xfer, std::shared_ptr<SpooledPixelData> pixels,
                                  audit::KeyReleases& releases) override;
  PassthroughDecision passthrough(DcmDataset& dataset) override;
  void attachRelayCapsule(DcmDataset& dataset, const config::RelayPeer& peer) override;

 private:
  GatewayContext& context_;
  std::function<InstanceProtector&()> protector_;
};


}  // namespace pacsgw::gateway
