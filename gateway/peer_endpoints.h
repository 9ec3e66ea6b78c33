#pragma once
// Where and how (plain or TLS, expected certificate identity) the gateway reaches a configured peer.
#include "config/config.h"
#include "gateway/peer_association.h"

namespace pacsgw::gateway {

PeerEndpoint upstreamEndpoint(const config::Config& config);
PeerEndpoint workstationEndpoint(const config::Config& config, const config::Workstation& workstation);
PeerEndpoint relayPeerEndpoint(const config::Config& config, const config::RelayPeer& peer);

}  // namespace pacsgw::gateway
