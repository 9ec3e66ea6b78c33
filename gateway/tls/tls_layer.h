#pragma once
// DCMTK TLS transport layers built from gateway.tls: the gateway's certificate and key, the CA bundle
// peers must chain to (mutual authentication: a peer without a valid certificate fails the handshake),
// and the BCP 195 profile. One acceptor layer for the TLS listener, one requestor layer shared by every
// outgoing TLS association.
#include "config/config.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmtls/tlslayer.h>

#include <memory>
#include <string>

namespace pacsgw::gateway::tls {

// Throws std::runtime_error naming the file or setting that is wrong. For NET_REQUESTOR,
// `handshakeTimeoutSeconds` bounds the TLS handshake of every outgoing connection (and the association
// request that follows): a peer that accepts TCP and then stays silent must not hold a gateway thread
// for DCMTK's 60 s socket timeout, or longer. PeerAssociation restores DCMTK's socket timeouts once
// the association is established (restoreSocketTimeouts).
std::unique_ptr<DcmTLSTransportLayer> makeTransportLayer(const config::TlsSection& tls, T_ASC_NetworkRole role,
                                                         unsigned handshakeTimeoutSeconds = 0);

// Sets the send and receive timeouts of a socket (seconds; 0: none).
void setSocketTimeouts(int socket, unsigned seconds);
// Puts back the socket timeouts DCMTK gives every association socket (dcmSocketSendTimeout /
// dcmSocketReceiveTimeout) after an outgoing TLS association is established.
void restoreSocketTimeouts(int socket);

// TLS settings of one outgoing peer (PACS, workstation, peer gateway): the shared requestor layer and
// the identity the peer's certificate must carry (empty: any certificate the CA bundle accepts).
struct OutgoingTls {
  std::shared_ptr<DcmTLSTransportLayer> layer;
  std::string expectedIdentity;
};

// The outgoing TLS settings for a peer with these settings, or nullptr for a plain peer. The requestor
// layer is built on first use and shared (process-wide, keyed by the gateway.tls files).
std::shared_ptr<const OutgoingTls> outgoingTls(const config::Config& config, const std::optional<bool>& peerTls,
                                               const std::string& expectedIdentity);

}  // namespace pacsgw::gateway::tls
