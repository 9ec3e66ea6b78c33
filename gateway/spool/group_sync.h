#pragma once
// Group commit: many writers, one sync at a time. A writer is covered only by a sync that started
// after its own write; writers arriving while a sync runs share the next one.
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace pacsgw::gateway::spool {

class GroupSync {
 public:
  // Call after the write to be made durable. `sync` (e.g. fdatasync of a file, fsync of a directory)
  // returns false on failure. Returns true when the sync that covered this call succeeded; a failure of
  // that sync (or of a later one that covered it) leaves the write's durability unknown.
  template <class SyncFunction>
  bool run(SyncFunction sync) {
    std::unique_lock<std::mutex> lock(mutex_);
    const std::uint64_t ticket = ++requested_;  // our write happened before this
    while (completed_ < ticket) {
      if (running_) {
        done_.wait(lock);
        continue;
      }
      // This sync starts after every write that took a ticket up to `covers`.
      running_ = true;
      const std::uint64_t covers = requested_;
      lock.unlock();
      const bool ok = sync();
      lock.lock();
      running_ = false;
      completed_ = covers;
      if (!ok) failedUpTo_ = covers;
      done_.notify_all();
    }
    return failedUpTo_ < ticket;
  }

 private:
  std::mutex mutex_;
  std::condition_variable done_;
  std::uint64_t requested_ = 0;
  std::uint64_t completed_ = 0;
  std::uint64_t failedUpTo_ = 0;
  bool running_ = false;
};

}  // namespace pacsgw::gateway::spool
