#include "gateway/outgoing_connections.h"

#include <sys/socket.h>
#include <unistd.h>

namespace pacsgw::gateway {

OutgoingConnections& OutgoingConnections::instance() {
  static OutgoingConnections registry;
  return registry;
}

int OutgoingConnections::add(int socketFd) {
  if (socketFd < 0) return -1;
  // A duplicate, so the number stays ours even after DCMTK closed (and the kernel reused) socketFd.
  const int handle = ::dup(socketFd);
  if (handle < 0) return -1;
  std::lock_guard<std::mutex> lock(mutex_);
  handles_.insert(handle);
  if (stopping_) ::shutdown(handle, SHUT_RDWR);
  return handle;
}

void OutgoingConnections::remove(int handle) {
  if (handle < 0) return;
  std::lock_guard<std::mutex> lock(mutex_);
  handles_.erase(handle);
  ::close(handle);
}

void OutgoingConnections::shutdownAll() {
  std::lock_guard<std::mutex> lock(mutex_);
  stopping_ = true;
  for (int handle : handles_) ::shutdown(handle, SHUT_RDWR);
}

}  // namespace pacsgw::gateway
