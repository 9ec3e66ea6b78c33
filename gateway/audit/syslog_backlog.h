#pragma once
// How many audit records the syslog receiver has not acknowledged yet: the complete lines of the local
// audit log between the forwarder's sent offset and the end of the file. Exported on /metrics as
// pacsgw_audit_syslog_backlog_records, so that an outage of the SIEM is visible before the local log
// fills the disk.
//
// Each byte of the log is read at most once (when a scrape or an acknowledgement needs it), so a long
// outage does not make scrapes slower; the forwarder reports what it sent as a number of lines.
#include <cstdint>
#include <mutex>
#include <string>

namespace pacsgw::audit {

class SyslogBacklog {
 public:
  explicit SyslogBacklog(std::string journalPath) : journalPath_(std::move(journalPath)) {}

  // The forwarder's position in the log with this inode (at start, and after a rotation): count again
  // from there.
  void restart(std::uint64_t inode, std::uint64_t sentOffset);
  // `records` complete lines, up to a byte the log already held, were acknowledged by the receiver.
  void acknowledged(std::uint64_t records);
  // Records in the log not yet acknowledged (0 before the forwarder has read its position).
  std::uint64_t records();

 private:
  void scanLocked();

  std::string journalPath_;
  std::mutex mutex_;
  bool started_ = false;
  std::uint64_t inode_ = 0;
  std::uint64_t scannedTo_ = 0;  // bytes of the log whose newlines are counted
  std::uint64_t unsent_ = 0;
};

}  // namespace pacsgw::audit
