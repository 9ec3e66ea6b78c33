#include "gateway/log_throttle.h"

#include <spdlog/spdlog.h>

namespace pacsgw::gateway {

LogThrottle::LogThrottle(unsigned linesPerWindow, Clock::duration window)
    : linesPerWindow_(linesPerWindow), window_(window) {}

void LogThrottle::summarise(const std::string& kind, Window& w) {
  if (w.suppressed > 0) {
    spdlog::warn("suppressed {} similar lines in the last {} s: {}", w.suppressed,
                 std::chrono::duration_cast<std::chrono::seconds>(window_).count(), kind);
  }
}

bool LogThrottle::allow(const std::string& kind, Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto [it, inserted] = windows_.try_emplace(kind, Window{now, 0, 0});
  Window& w = it->second;
  if (!inserted && now - w.start >= window_) {
    summarise(kind, w);
    w = Window{now, 0, 0};
  }
  if (w.written < linesPerWindow_) {
    ++w.written;
    return true;
  }
  ++w.suppressed;
  ++suppressedTotal_;
  return false;
}

void LogThrottle::flush(Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = windows_.begin(); it != windows_.end();) {
    if (now - it->second.start < window_) {
      ++it;
      continue;
    }
    summarise(it->first, it->second);
    it = windows_.erase(it);  // a quiet kind starts afresh next time
  }
}

std::uint64_t LogThrottle::suppressedTotal() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return suppressedTotal_;
}

}  // namespace pacsgw::gateway
