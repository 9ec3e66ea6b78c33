#include "gateway/audit/syslog_backlog.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

namespace pacsgw::audit {

void SyslogBacklog::restart(std::uint64_t inode, std::uint64_t sentOffset) {
  std::lock_guard<std::mutex> lock(mutex_);
  started_ = true;
  inode_ = inode;
  scannedTo_ = sentOffset;
  unsent_ = 0;
}

void SyslogBacklog::acknowledged(std::uint64_t records) {
  std::lock_guard<std::mutex> lock(mutex_);
  scanLocked();  // the acknowledged lines are counted before they are taken off
  unsent_ -= std::min(records, unsent_);
}

std::uint64_t SyslogBacklog::records() {
  std::lock_guard<std::mutex> lock(mutex_);
  scanLocked();
  return unsent_;
}

void SyslogBacklog::scanLocked() {
  if (!started_) return;
  const int fd = ::open(journalPath_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return;
  }
  const auto inode = static_cast<std::uint64_t>(st.st_ino);
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (inode != inode_ || size < scannedTo_) {
    // Rotated or truncated: the forwarder starts this file from its beginning.
    inode_ = inode;
    scannedTo_ = 0;
    unsent_ = 0;
  }
  // Only newlines are counted, so every byte is read once, also the first part of a record that is
  // still being written (its newline is counted when it arrives).
  std::vector<char> buffer(64 * 1024);
  while (scannedTo_ < size) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), size - scannedTo_));
    const ssize_t got = ::pread(fd, buffer.data(), want, static_cast<off_t>(scannedTo_));
    if (got <= 0) break;
    unsent_ += static_cast<std::uint64_t>(std::count(buffer.data(), buffer.data() + got, '\n'));
    scannedTo_ += static_cast<std::uint64_t>(got);
  }
  ::close(fd);
}

}  // namespace pacsgw::audit
