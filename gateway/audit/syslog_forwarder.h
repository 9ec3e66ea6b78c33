#pragma once
// Sends the local audit log to a syslog receiver over TLS (RFC 5424 messages, RFC 5425 transport),
// on its own thread: recording an event never waits for the network.
//
// The local audit log is the journal. The forwarder reads complete records from it, sends them in
// order and then persists how far it got ("sent up to" byte offset and the file's inode) in
// `<audit log>.syslog-sent`, written to a temporary file, fsync'd and renamed. A record counts as sent
// once the receiver's TCP stack has acknowledged all its bytes; a connection that breaks before that
// is re-opened and sending resumes at the persisted offset. Delivery is therefore at-least-once and
// in order: a record is never lost to an outage of the receiver (it stays in the log and is sent on
// reconnect), and after a broken connection or a crash of the gateway the receiver may see a record
// twice. Memory stays bounded while the receiver is down: nothing is queued in memory, at most one
// batch (kMaxBatchBytes) is read at a time.
#include "gateway/audit/syslog_backlog.h"
#include "gateway/audit/tls_client.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace pacsgw::audit {

struct SyslogSettings {
  TlsClientSettings tls;
  std::string appName = "pacsgw";
  int retryMaxSeconds = 60;  // reconnect backoff: 1 s, doubling up to this
};

class SyslogForwarder {
 public:
  static constexpr std::size_t kMaxBatchBytes = 256 * 1024;  // also the longest record that is sent

  // Loads the TLS files (throws std::runtime_error naming the one that fails); does not connect yet.
  SyslogForwarder(std::string journalPath, SyslogSettings settings);
  ~SyslogForwarder();
  SyslogForwarder(const SyslogForwarder&) = delete;
  SyslogForwarder& operator=(const SyslogForwarder&) = delete;

  void start();
  // A record was appended to the journal: send it soon. Never blocks on the network.
  void notify();
  // Sends what is still unsent for at most `drain` (when connected), then stops the thread.
  void stop(std::chrono::milliseconds drain);

  static std::string offsetPath(const std::string& journalPath) { return journalPath + ".syslog-sent"; }
  // Records written to the local log and not yet acknowledged by the receiver (shared: /metrics reads it).
  std::shared_ptr<SyslogBacklog> backlog() const { return backlog_; }

 private:
  struct Position {
    std::uint64_t inode = 0;
    std::uint64_t offset = 0;
  };

  void run();
  bool sendBatch(Position& position, std::uint64_t journalSize);
  Position loadPosition() const;
  void persist(const Position& position) const;
  // Waits for notify() / stop() or until `limit`; returns false when stopping.
  bool waitFor(std::chrono::milliseconds limit);
  // Waits `limit` (or until stop()) before the next connection attempt.
  void backOff(std::chrono::milliseconds limit);

  std::string journalPath_;
  SyslogSettings settings_;
  TlsClient client_;
  std::string hostname_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool pending_ = false;
  bool stopping_ = false;
  std::chrono::steady_clock::time_point stopDeadline_;
  bool skippingOversizedRecord_ = false;
  std::shared_ptr<SyslogBacklog> backlog_;
};

}  // namespace pacsgw::audit
