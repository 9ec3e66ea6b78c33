#include "terminal/progress_line.h"

#include <unistd.h>

namespace pacsgw::terminal {

ProgressLine::ProgressLine(std::string label, std::string unit, std::size_t total, std::FILE* out)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), out_(out), active_(drawsOn(out)) {}

bool ProgressLine::drawsOn(std::FILE* out) { return out != nullptr && ::isatty(::fileno(out)) == 1; }

ProgressLine::~ProgressLine() { finish(); }

std::string ProgressLine::formatDuration(double seconds) {
  const long s = seconds > 0 ? static_cast<long>(seconds + 0.5) : 0;
  char text[32];
  if (s >= 3600) {
    std::snprintf(text, sizeof text, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  } else {
    std::snprintf(text, sizeof text, "%ld:%02ld", s / 60, s % 60);
  }
  return text;
}

void ProgressLine::update(std::size_t done, double bytes, const std::string& prefix) {
  if (!active_) return;
  const auto now = std::chrono::steady_clock::now();
  if (drawn_ && done < total_ && now - lastDraw_ < std::chrono::milliseconds(100)) return;
  lastDraw_ = now;
  const double seconds = std::chrono::duration<double>(now - start_).count();
  const double rate = seconds > 0 ? bytes / seconds / 1e6 : 0;
  const std::string eta = done > 0 && done <= total_
                              ? formatDuration(seconds / static_cast<double>(done) * static_cast<double>(total_ - done))
                              : "-:--";
  // \r returns to the line start; \033[K clears what a longer previous drawing left behind.
  std::fprintf(out_, "\r%s: %s%zu/%zu %s, %.1f MB/s, ETA %s\033[K", label_.c_str(), prefix.c_str(), done, total_,
               unit_.c_str(), rate, eta.c_str());
  std::fflush(out_);
  drawn_ = true;
}

void ProgressLine::finish() {
  if (active_ && drawn_) {
    std::fputs("\n", out_);
    std::fflush(out_);
  }
  drawn_ = false;
  active_ = false;
}

}  // namespace pacsgw::terminal
