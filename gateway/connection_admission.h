#pragma once
// Admission of TCP connections before any DICOM is read: a total cap, a cap per source address, and
// eviction of the oldest connection that has not yet sent a complete A-ASSOCIATE-RQ when a cap is
// reached. Silent sockets therefore cannot keep a real peer out, not even one sharing its address.
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <mutex>
#include <string>

namespace pacsgw::gateway {

struct AdmissionLimits {
  unsigned maxConnections = 72;        // open connections, negotiating or associated
  unsigned maxPerAddress = 16;         // open connections from one source address
};

class ConnectionAdmission {
 public:
  // How pending connections are looked at and cut, given their shutdown handle. Defaults: a connection
  // whose complete A-ASSOCIATE-RQ already sits in its receive buffer counts as identified even before its
  // thread got to it (so a fast flood cannot evict a real peer in that window); eviction is shutdown(2)
  // both ways, which wakes the thread waiting for that connection's request.
  struct Hooks {
    std::function<bool(int)> requestComplete;
    std::function<void(int)> evict;
  };
  explicit ConnectionAdmission(AdmissionLimits limits, Hooks hooks = {});
  ~ConnectionAdmission();
  ConnectionAdmission(const ConnectionAdmission&) = delete;
  ConnectionAdmission& operator=(const ConnectionAdmission&) = delete;

  struct Decision {
    bool admitted = false;
    std::uint64_t id = 0;          // when admitted: pass to associationRequested() and release()
    unsigned evicted = 0;          // pending connections cut to make room
    const char* refusal = "";      // when refused: which cap was full of associated connections
  };
  // Admits a connection from `address`. `shutdownHandle` (a duplicate of the socket, or -1) is owned by
  // this object from now on: it is closed on release() or eviction. Never blocks on the network.
  Decision admit(const std::string& address, int shutdownHandle);
  // The connection's association request arrived complete: it may no longer be evicted. False when it
  // was evicted meanwhile (its socket is already shut down: drop it).
  bool associationRequested(std::uint64_t id);
  // The connection has ended (no-op for an evicted one).
  void release(std::uint64_t id);
  // Shuts down every open connection (gateway stop).
  void shutdownAll();
  unsigned openConnections() const;
  unsigned openFrom(const std::string& address) const;

 private:
  struct Entry {
    std::uint64_t id;
    std::string address;
    int handle;
    bool pending;  // no complete association request yet
  };
  using Entries = std::list<Entry>;  // in admission order: the first pending entry is the oldest
  // Evicts the oldest pending entry (from `address` when not empty). Caller holds mutex_.
  bool evictOldestPending(const std::string& address);
  void forget(Entries::iterator it);

  const AdmissionLimits limits_;
  Hooks hooks_;
  mutable std::mutex mutex_;
  Entries entries_;
  std::map<std::uint64_t, Entries::iterator> byId_;
  std::map<std::string, unsigned> perAddress_;
  std::uint64_t nextId_ = 1;
};

}  // namespace pacsgw::gateway
