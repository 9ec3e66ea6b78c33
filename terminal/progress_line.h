#pragma once
// One self-rewriting progress line for long command-line work (migrate, eval, encrypt/decrypt of a
// folder): items done of a total, MB/s and ETA. It draws only when its stream is a terminal, so
// output piped to a file or read by cron carries no control characters.
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <string>

namespace pacsgw::terminal {

class ProgressLine {
 public:
  // `label` starts the line ("encrypt"), `unit` names the items ("files"); `total` items expected.
  ProgressLine(std::string label, std::string unit, std::size_t total, std::FILE* out = stderr);
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;
  ~ProgressLine();

  // `done` items finished so far, `bytes` processed so far; `prefix` goes before the item count
  // (e.g. "study 2/5, "). Redraws at most every 100 ms, and always for the last item.
  void update(std::size_t done, double bytes, const std::string& prefix = "");
  // Ends the line (a newline after the last drawing); also done by the destructor.
  void finish();
  // Whether this line draws at all (its stream is a terminal).
  bool active() const { return active_; }
  // Whether a progress line on `out` would draw.
  static bool drawsOn(std::FILE* out);

  // "M:SS" or "H:MM:SS".
  static std::string formatDuration(double seconds);

 private:
  std::string label_, unit_;
  std::size_t total_;
  std::FILE* out_;
  bool active_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point lastDraw_{};
};

}  // namespace pacsgw::terminal
