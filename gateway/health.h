#pragma once
// What /health/ready reports: the keystore answers, the PACS answered a C-ECHO recently, and (when a
// spool is configured) the spool is below its quota. A background thread C-ECHOes the PACS on a fixed
// interval so readiness reflects the PACS even when no modality is sending.
#include "config/config.h"
#include "gateway/metrics/admin_http.h"
#include "gateway/peer_association.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace pacsgw::keystore {
class Keystore;
}
namespace pacsgw::gateway::spool {
class Spool;
struct SpoolStats;
}

namespace pacsgw::gateway {

class HealthMonitor {
 public:
  // Echo every `echoInterval`; the PACS counts as answering while the last success is younger than
  // three intervals (one lost echo does not flip readiness).
  HealthMonitor(const config::Config& config, keystore::Keystore& keys,
                std::chrono::seconds echoInterval = std::chrono::seconds(10));
  ~HealthMonitor();  // stops the echo thread
  HealthMonitor(const HealthMonitor&) = delete;
  HealthMonitor& operator=(const HealthMonitor&) = delete;

  // An extra check (e.g. spool below quota); returns a failure reason, or an empty string when fine.
  void addCheck(std::string name, std::function<std::string()> problem);
  std::vector<metrics::ReadinessCheck> evaluate();

 private:
  void echoLoop();
  bool echoUpstream(std::string& reason);

  const config::Config& config_;
  keystore::Keystore& keys_;
  const std::chrono::seconds interval_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::chrono::steady_clock::time_point lastEchoOk_{};
  bool everAnswered_ = false;
  std::string lastEchoProblem_ = "no C-ECHO attempted yet";
  std::vector<std::pair<std::string, std::function<std::string()>>> extraChecks_;
  std::thread thread_;
};

// The health monitor and the HTTP listener serving it with /metrics, as configured by `metrics:`.
struct Monitoring {
  std::unique_ptr<HealthMonitor> health;
  std::unique_ptr<metrics::AdminHttpServer> http;
};
// Nothing (both null) when the configuration has no metrics section; throws when it cannot listen.
// With a store-and-forward spool, readiness also requires the spool to be below its quota.
Monitoring startMonitoring(const config::Config& config, keystore::Keystore& keys,
                           const spool::Spool* storeSpool = nullptr);

// Empty while the spool has room; otherwise why new stores would be refused (95 % of either quota:
// a load balancer stops sending here before modalities get A700).
std::string spoolQuotaProblem(const spool::SpoolStats& stats, const config::SpoolSection& quota);

}  // namespace pacsgw::gateway
