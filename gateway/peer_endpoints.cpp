#include "gateway/peer_endpoints.h"

namespace pacsgw::gateway {

PeerEndpoint upstreamEndpoint(const config::Config& config) {
  const config::UpstreamSection& up = config.upstream;
  return PeerEndpoint{up.aeTitle, up.host, up.port, tls::outgoingTls(config, up.tls, up.certificateIdentity)};
}

PeerEndpoint workstationEndpoint(const config::Config& config, const config::Workstation& workstation) {
  return PeerEndpoint{workstation.aeTitle, workstation.host, workstation.port,
                      tls::outgoingTls(config, workstation.tls, workstation.certificateIdentity)};
}

PeerEndpoint relayPeerEndpoint(const config::Config& config, const config::RelayPeer& peer) {
  return PeerEndpoint{peer.aeTitle, peer.host, peer.port, tls::outgoingTls(config, peer.tls, peer.certificateIdentity)};
}

}  // namespace pacsgw::gateway
