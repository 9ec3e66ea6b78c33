#include "gateway/connection_admission.h"

#include "gateway/net_util.h"

#include <sys/socket.h>
#include <unistd.h>

namespace pacsgw::gateway {

ConnectionAdmission::ConnectionAdmission(AdmissionLimits limits, Hooks hooks)
    : limits_(limits), hooks_(std::move(hooks)) {
  if (!hooks_.requestComplete) {
    hooks_.requestComplete = [](int handle) { return handle >= 0 && associateRequestComplete(handle); };
  }
  if (!hooks_.evict) {
    hooks_.evict = [](int handle) {
      if (handle >= 0) ::shutdown(handle, SHUT_RDWR);
    };
  }
}

ConnectionAdmission::~ConnectionAdmission() {
  for (const Entry& e : entries_) {
    if (e.handle >= 0) ::close(e.handle);
  }
}

void ConnectionAdmission::forget(Entries::iterator it) {
  auto count = perAddress_.find(it->address);
  if (count != perAddress_.end() && --count->second == 0) perAddress_.erase(count);
  if (it->handle >= 0) ::close(it->handle);
  byId_.erase(it->id);
  entries_.erase(it);
}

bool ConnectionAdmission::evictOldestPending(const std::string& address) {
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (!it->pending || (!address.empty() && it->address != address)) continue;
    if (hooks_.requestComplete(it->handle)) {
      it->pending = false;
      continue;
    }
    hooks_.evict(it->handle);
    forget(it);
    return true;
  }
  return false;
}

ConnectionAdmission::Decision ConnectionAdmission::admit(const std::string& address, int shutdownHandle) {
  std::lock_guard<std::mutex> lock(mutex_);
  Decision decision;
  const auto fromAddress = [&] {
    auto it = perAddress_.find(address);
    return it == perAddress_.end() ? 0u : it->second;
  };
  // Room is made from the connections that have not identified themselves yet, oldest first; those
  // that completed an association request are never cut for a newcomer.
  while (fromAddress() >= limits_.maxPerAddress) {
    if (!evictOldestPending(address)) {
      decision.refusal = "per-address connection limit";
      break;
    }
    ++decision.evicted;
  }
  while (decision.refusal[0] == '\0' && entries_.size() >= limits_.maxConnections) {
    if (!evictOldestPending("")) {
      decision.refusal = "connection limit";
      break;
    }
    ++decision.evicted;
  }
  if (decision.refusal[0] != '\0') {
    if (shutdownHandle >= 0) ::close(shutdownHandle);
    return decision;
  }
  decision.admitted = true;
  decision.id = nextId_++;
  entries_.push_back(Entry{decision.id, address, shutdownHandle, true});
  byId_[decision.id] = std::prev(entries_.end());
  ++perAddress_[address];
  return decision;
}

bool ConnectionAdmission::associationRequested(std::uint64_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = byId_.find(id);
  if (it == byId_.end()) return false;
  it->second->pending = false;
  return true;
}

void ConnectionAdmission::release(std::uint64_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = byId_.find(id);
  if (it != byId_.end()) forget(it->second);
}

void ConnectionAdmission::shutdownAll() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const Entry& e : entries_) {
    if (e.handle >= 0) ::shutdown(e.handle, SHUT_RDWR);
  }
}

unsigned ConnectionAdmission::openConnections() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<unsigned>(entries_.size());
}

unsigned ConnectionAdmission::openFrom(const std::string& address) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = perAddress_.find(address);
  return it == perAddress_.end() ? 0u : it->second;
}

}  // namespace pacsgw::gateway
