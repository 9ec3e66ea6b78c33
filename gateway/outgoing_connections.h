#pragma once
// Every association the gateway opened itself (to the PACS, to move destinations), so a shutdown can
// cut them too: a retrieve blocked on the PACS or a destination must not keep the process alive for
// a whole DIMSE timeout after the inbound connections were closed.
#include <mutex>
#include <set>

namespace pacsgw::gateway {

class OutgoingConnections {
 public:
  static OutgoingConnections& instance();
  // Registers a connected socket; returns a private duplicate to pass to remove() (or -1). After
  // shutdownAll() a newly added socket is shut down at once.
  int add(int socketFd);
  void remove(int handle);  // closes the duplicate
  // Shuts down (both directions) every registered socket: every DCMTK wait on them returns.
  void shutdownAll();

 private:
  std::mutex mutex_;
  std::set<int> handles_;
  bool stopping_ = false;
};

}  // namespace pacsgw::gateway
