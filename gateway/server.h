#pragma once
// The DICOM listener: accepts associations from configured peers and runs one Session per
// association on its own thread, up to gateway.max_associations at once.
#include "config/config.h"
#include "gateway/access_policy.h"
#include "gateway/connection_admission.h"
#include "gateway/log_throttle.h"
#include "gateway/session.h"
#include "gateway/spool/forwarder.h"
#include "gateway/spool/spool.h"
#include "gateway/relay/relay_service.h"
#include "gateway/tls/tls_acceptor.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>

namespace pacsgw::gateway {

class GatewayServer {
 public:
  GatewayServer(const config::Config& config, keystore::Keystore& keys);
  ~GatewayServer();
  // Blocks until requestStop(); then waits for running associations to finish (bounded).
  void run();
  // Async-signal-safe.
  void requestStop() { stopping_.store(true); }
  // The spool behind upstream.forward: queued (nullptr in sync mode); stats() is cheap.
  const spool::Spool* storeSpool() const { return spool_.get(); }

 private:
  void startSpool();
  // Accept-time checks (allow-lists, caps); true when a connection thread should serve `fd`.
  bool admitConnection(int fd, std::uint64_t& admissionId);
  void serveConnection(int fd, std::uint64_t admissionId, bool overTls);
  // Accepts or rejects; `counted` tells whether the association took one of max_associations.
  bool negotiate(T_ASC_Association* assoc, const PeerIdentity& peer, bool& counted);

  const config::Config& config_;
  AccessPolicy policy_;
  std::atomic<bool> stopping_{false};
  RetrieveRegistry retrieves_;
  MemoryBudget memory_;
  GatewayContext context_;
  std::unique_ptr<spool::Spool> spool_;
  std::unique_ptr<spool::Forwarder> forwarder_;
  std::unique_ptr<relay::RelayService> relay_;  // with a relay: section
  T_ASC_Network* network_ = nullptr;
  tls::HandoverLayer transport_;              // the network's transport layer (plain and prepared TLS)
  std::unique_ptr<tls::TlsAcceptor> tlsAcceptor_;  // with gateway.tls
  std::mutex receiveMutex_;  // DCMTK's external-socket hand-over is a process global
  ConnectionAdmission admission_;  // caps and evictions; holds a duplicate of every live socket
  LogThrottle throttle_;            // for lines any peer can provoke at will
  std::mutex countMutex_;  // guards the counters
  std::condition_variable countChanged_;
  unsigned connections_ = 0;  // connection threads, negotiated or not
  unsigned negotiated_ = 0;   // accepted associations from modalities and workstations
};

}  // namespace pacsgw::gateway
