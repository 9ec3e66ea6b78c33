#pragma once
// The DICOM listener: accepts associations from configured peers and runs one Session per
// association on its own thread, up to gateway.max_associations at once.
#include "config/config.h"
#include "gateway/access_policy.h"
#include "gateway/session.h"
#include "gateway/spool/forwarder.h"
#include "gateway/spool/spool.h"

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
  void serveConnection(int fd);
  // Accepts or rejects; `counted` tells whether the association took one of max_associations.
  bool negotiate(T_ASC_Association* assoc, const PeerIdentity& peer, bool& counted);

  const config::Config& config_;
  AccessPolicy policy_;
  std::atomic<bool> stopping_{false};
  RetrieveRegistry retrieves_;
  GatewayContext context_;
  std::unique_ptr<spool::Spool> spool_;
  std::unique_ptr<spool::Forwarder> forwarder_;
  T_ASC_Network* network_ = nullptr;
  std::mutex receiveMutex_;  // DCMTK's external-socket hand-over is a process global
  std::mutex countMutex_;  // guards the counters and liveFds_
  std::condition_variable countChanged_;
  unsigned connections_ = 0;  // connection threads, negotiated or not
  unsigned negotiated_ = 0;   // accepted associations from modalities and workstations
  std::set<int> liveFds_;     // duplicates of live sockets, shut down when stopping
};

}  // namespace pacsgw::gateway
