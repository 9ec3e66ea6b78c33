#pragma once
// Rate limit for log lines a peer can trigger at will (refused connections, silent sockets): the first
// few lines of a kind per window are written, the rest are counted and summarised once the window ends
// as "suppressed N similar lines: <kind>", so a flood cannot fill the disk with identical warnings.
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace pacsgw::gateway {

class LogThrottle {
 public:
  using Clock = std::chrono::steady_clock;
  explicit LogThrottle(unsigned linesPerWindow = 5, Clock::duration window = std::chrono::seconds(10));
  // True when a line of this kind may be written now; otherwise counts it as suppressed.
  bool allow(const std::string& kind) { return allow(kind, Clock::now()); }
  bool allow(const std::string& kind, Clock::time_point now);
  // Writes the summary line of every kind whose window has ended with suppressed lines.
  void flush() { flush(Clock::now()); }
  void flush(Clock::time_point now);
  // Lines counted but not written since start (all kinds).
  std::uint64_t suppressedTotal() const;

 private:
  struct Window {
    Clock::time_point start;
    unsigned written = 0;
    std::uint64_t suppressed = 0;
  };
  void summarise(const std::string& kind, Window& w);

  const unsigned linesPerWindow_;
  const Clock::duration window_;
  mutable std::mutex mutex_;
  std::map<std::string, Window> windows_;
  std::uint64_t suppressedTotal_ = 0;
};

}  // namespace pacsgw::gateway
