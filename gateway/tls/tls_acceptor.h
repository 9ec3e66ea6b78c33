#pragma once
// The server side of the TLS listener, run on the connection's own thread before DCMTK sees the
// socket: the TLS handshake (mutual authentication) and the wait for the whole A-ASSOCIATE-RQ inside
// TLS both run non-blocking against the pre-association deadline, so a silent or handshake-stalling
// client only costs its own thread, and admission can still evict it (shutdown wakes the waits).
//
// DCMTK 3.6.7 gives an externally accepted socket its transport connection through the network's
// transport layer (DcmTransportLayer::createConnection in receiveTransportConnectionTCP) and then
// calls serverSideHandshake(), which is a no-op on a connection whose handshake is complete. The
// HandoverLayer below is that transport layer: it hands DCMTK the connection prepared here.
#include "config/config.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmnet/dcmlayer.h>
#include <dcmtk/dcmnet/dcmtrans.h>
#include <dcmtk/dcmtls/tlslayer.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace pacsgw::gateway::tls {

class TlsAcceptor {
 public:
  explicit TlsAcceptor(const config::TlsSection& tls);  // throws std::runtime_error (files, profile)

  struct Result {
    std::unique_ptr<DcmTransportConnection> connection;  // owns the socket when set
    bool peerClosed = false;      // closed before any TLS byte (a TCP health check)
    std::string failure;          // why not, e.g. "TLS handshake failed: certificate has expired"
    std::string peerCertificate;  // subject of the certificate the peer presented, when known
  };
  // Handshake and association-request wait on `fd`, until `deadline`. On failure `fd` is left open
  // (the caller closes it).
  Result accept(int fd, std::chrono::steady_clock::time_point deadline, std::uint32_t maxPduBytes);

 private:
  std::unique_ptr<DcmTLSTransportLayer> layer_;
};

// The transport layer of the gateway's DICOM network: plain connections as DCMTK makes them, TLS
// connections as prepared by TlsAcceptor for the socket being handed over.
class HandoverLayer : public DcmTransportLayer {
 public:
  // Registers the prepared connection of `fd` until DCMTK asks for it (or discard()).
  void prepare(int fd, std::unique_ptr<DcmTransportConnection> connection);
  // Drops a prepared connection DCMTK did not take (closing its socket); true if there was one.
  bool discard(int fd);
  DcmTransportConnection* createConnection(DcmNativeSocketType openSocket, OFBool useSecureLayer) override;

 private:
  std::mutex mutex_;
  std::map<int, std::unique_ptr<DcmTransportConnection>> prepared_;
};

}  // namespace pacsgw::gateway::tls
