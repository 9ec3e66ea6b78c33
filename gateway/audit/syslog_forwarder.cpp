#include "gateway/audit/syslog_forwarder.h"

#include "gateway/audit/syslog_frame.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <vector>

namespace pacsgw::audit {
namespace {

using namespace std::chrono_literals;

std::string thisHost() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "-";
  return name;
}

bool writeFileDurably(const std::string& path, const std::string& content) {
  const std::string temporary = path + ".tmp";
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) return false;
  const bool written = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()) &&
                       ::fsync(fd) == 0;
  ::close(fd);
  if (!written || ::rename(temporary.c_str(), path.c_str()) != 0) return false;
  const auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const int dirFd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirFd >= 0) {
    ::fsync(dirFd);
    ::close(dirFd);
  }
  return true;
}

}  // namespace

SyslogForwarder::SyslogForwarder(std::string journalPath, SyslogSettings settings)
    : journalPath_(std::move(journalPath)), settings_(std::move(settings)), client_(settings_.tls),
      hostname_(thisHost()), backlog_(std::make_shared<SyslogBacklog>(journalPath_)) {}

SyslogForwarder::~SyslogForwarder() { stop(0ms); }

void SyslogForwarder::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { run(); });
}

void SyslogForwarder::notify() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_ = true;
  }
  wake_.notify_one();
}

void SyslogForwarder::stop(std::chrono::milliseconds drain) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
    stopDeadline_ = std::chrono::steady_clock::now() + drain;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
  client_.close();
}

bool SyslogForwarder::waitFor(std::chrono::milliseconds limit) {
  std::unique_lock<std::mutex> lock(mutex_);
  wake_.wait_for(lock, limit, [this] { return pending_ || stopping_; });
  pending_ = false;
  return !stopping_;
}

void SyslogForwarder::backOff(std::chrono::milliseconds limit) {
  // New records do not cut a backoff short: a receiver that is down is not retried per record.
  std::unique_lock<std::mutex> lock(mutex_);
  wake_.wait_for(lock, limit, [this] { return stopping_; });
}

SyslogForwarder::Position SyslogForwarder::loadPosition() const {
  Position p;
  std::ifstream in(offsetPath(journalPath_));
  if (!(in >> p.inode >> p.offset)) p = {};
  return p;
}

void SyslogForwarder::persist(const Position& p) const {
  if (!writeFileDurably(offsetPath(journalPath_), std::to_string(p.inode) + " " + std::to_string(p.offset) + "\n")) {
    // The records are sent; if the offset is lost they are sent again after a restart (at-least-once).
    spdlog::error("audit syslog: cannot persist the sent offset in {}: {}", offsetPath(journalPath_),
                  std::strerror(errno));
  }
}

// Reads complete records from the journal at `position`, sends them as one write and advances the
// persisted offset once the receiver acknowledged them. Returns false when the connection failed.
bool SyslogForwarder::sendBatch(Position& position, std::uint64_t journalSize) {
  std::vector<char> buffer(static_cast<std::size_t>(std::min<std::uint64_t>(kMaxBatchBytes, journalSize - position.offset)));
  const int fd = ::open(journalPath_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return true;
  const ssize_t got = ::pread(fd, buffer.data(), buffer.size(), static_cast<off_t>(position.offset));
  ::close(fd);
  if (got <= 0) return true;
  const char* begin = buffer.data();
  const char* end = begin + got;
  std::string frames;
  std::size_t records = 0;
  const char* line = begin;
  for (const char* newline; (newline = std::find(line, end, '\n')) != end; line = newline + 1) {
    if (skippingOversizedRecord_) {
      skippingOversizedRecord_ = false;  // the tail of a record too long to send
      continue;
    }
    if (newline > line) {
      frames += syslogFrame({hostname_, settings_.appName, std::to_string(::getpid())}, std::string(line, newline));
      ++records;
    }
  }
  std::uint64_t consumed = static_cast<std::uint64_t>(line - begin);
  if (consumed == 0) {
    if (static_cast<std::size_t>(got) < kMaxBatchBytes) return true;  // a record still being written
    spdlog::error("audit syslog: a record at offset {} of {} is longer than {} bytes; not sent", position.offset,
                  journalPath_, kMaxBatchBytes);
    skippingOversizedRecord_ = true;
    consumed = static_cast<std::uint64_t>(got);
  }
  if (!frames.empty()) {
    try {
      client_.write(frames);
    } catch (const std::runtime_error& e) {
      spdlog::warn("audit syslog: {}:{}: {}; {} records will be sent again", settings_.tls.host, settings_.tls.port,
                   e.what(), records);
      return false;
    }
    if (!client_.waitUntilAcknowledged(std::chrono::seconds(settings_.tls.timeoutSeconds))) {
      spdlog::warn("audit syslog: {}:{}: {} records not acknowledged by the receiver; they will be sent again",
                   settings_.tls.host, settings_.tls.port, records);
      client_.close();
      return false;
    }
  }
  position.offset += consumed;
  persist(position);
  backlog_->acknowledged(static_cast<std::uint64_t>(std::count(begin, begin + consumed, '\n')));
  return true;
}

void SyslogForwarder::run() {
  Position position = loadPosition();
  backlog_->restart(position.inode, position.offset);
  auto backoff = 1s;
  const auto maxBackoff = std::chrono::seconds(std::max(1, settings_.retryMaxSeconds));
  for (;;) {
    bool stopping;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping = stopping_;
      if (stopping && std::chrono::steady_clock::now() >= stopDeadline_) break;
    }
    struct stat st {};
    if (::stat(journalPath_.c_str(), &st) != 0) {
      if (!waitFor(1s)) break;
      continue;
    }
    const std::uint64_t inode = static_cast<std::uint64_t>(st.st_ino);
    const std::uint64_t size = static_cast<std::uint64_t>(st.st_size);
    if (position.inode != inode || size < position.offset) {
      if (position.inode != 0) {
        spdlog::warn("audit syslog: {} was replaced or truncated (rotated?); forwarding from its beginning",
                     journalPath_);
      }
      position = {inode, 0};
      skippingOversizedRecord_ = false;
      persist(position);
      backlog_->restart(inode, 0);
    }
    if (position.offset == size) {
      if (stopping) break;
      if (client_.connected() && client_.peerClosed()) client_.close();  // reconnect when there is work
      if (!waitFor(1s)) continue;  // stopping: loop once more to drain
      continue;
    }
    if (client_.connected() && client_.peerClosed()) client_.close();
    if (!client_.connected()) {
      try {
        client_.connect();
        spdlog::info("audit syslog: connected to {}:{} over TLS; sending the audit log from offset {}",
                     settings_.tls.host, settings_.tls.port, position.offset);
        backoff = 1s;
      } catch (const std::runtime_error& e) {
        spdlog::warn("audit syslog: {}; {} bytes of audit records kept in {} to send later (retry in {} s)", e.what(),
                     size - position.offset, journalPath_, backoff.count());
        if (stopping) break;
        backOff(backoff);
        backoff = std::min<std::chrono::seconds>(backoff * 2, maxBackoff);
        continue;
      }
    }
    if (!sendBatch(position, size)) {
      if (stopping) break;
      backOff(backoff);
      backoff = std::min<std::chrono::seconds>(backoff * 2, maxBackoff);
    }
  }
  client_.close();
}

}  // namespace pacsgw::audit
