#include "gateway/health.h"
#include "gateway/peer_endpoints.h"

#include "gateway/metrics/registry.h"
#include "gateway/spool/spool.h"
#include "keystore/keystore.h"

#include <dcmtk/dcmdata/dcuid.h>
#include <spdlog/spdlog.h>

#include <ctime>

namespace pacsgw::gateway {

HealthMonitor::HealthMonitor(const config::Config& config, keystore::Keystore& keys, std::chrono::seconds echoInterval)
    : config_(config), keys_(keys), interval_(echoInterval) {
  thread_ = std::thread([this] { echoLoop(); });
}

HealthMonitor::~HealthMonitor() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void HealthMonitor::addCheck(std::string name, std::function<std::string()> problem) {
  std::lock_guard lock(mutex_);
  extraChecks_.emplace_back(std::move(name), std::move(problem));
}

bool HealthMonitor::echoUpstream(std::string& reason) {
  NetworkTimeouts timeouts;
  timeouts.connectSeconds = static_cast<int>(std::min<unsigned>(config_.gateway.connectTimeoutSeconds, 5));
  timeouts.acseSeconds = static_cast<int>(std::min<unsigned>(config_.gateway.acseTimeoutSeconds, 10));
  timeouts.dimseSeconds = static_cast<int>(std::min<unsigned>(config_.gateway.dimseTimeoutSeconds, 10));
  try {
    auto assoc = PeerAssociation::open(upstreamEndpoint(config_), config_.gateway.aeTitle,
                                       {ProposedContext{UID_VerificationSOPClass, {UID_LittleEndianImplicitTransferSyntax}}},
                                       timeouts, config_.gateway.maxPduBytes);
    DIC_US status = 0;
    DcmDataset* detail = nullptr;
    OFCondition cond = DIMSE_echoUser(assoc->raw(), assoc->nextMessageId(), DIMSE_BLOCKING, timeouts.dimseSeconds,
                                      &status, &detail);
    delete detail;
    if (cond.bad()) {
      assoc->markBroken();
      reason = std::string("C-ECHO failed: ") + cond.text();
      return false;
    }
    if (status != 0) {
      reason = "C-ECHO answered " + describeStatus(status);
      return false;
    }
    return true;
  } catch (const std::exception& e) {
    reason = e.what();
    return false;
  }
}

void HealthMonitor::echoLoop() {
  std::unique_lock lock(mutex_);
  bool wasAnswering = true;  // log the first failure, then only changes
  while (!stopping_) {
    lock.unlock();
    std::string reason;
    const bool ok = echoUpstream(reason);
    lock.lock();
    if (ok) {
      lastEchoOk_ = std::chrono::steady_clock::now();
      everAnswered_ = true;
      metrics::set("pacsgw_upstream_echo_last_success_timestamp_seconds", {}, static_cast<double>(std::time(nullptr)));
      if (!wasAnswering) spdlog::info("upstream PACS answers C-ECHO again");
    } else {
      lastEchoProblem_ = reason;
      metrics::increment("pacsgw_upstream_errors_total", {{"kind", "echo"}});
      if (wasAnswering) spdlog::warn("upstream PACS readiness check: {}", reason);
    }
    wasAnswering = ok;
    wake_.wait_for(lock, interval_, [this] { return stopping_; });
  }
}

std::vector<metrics::ReadinessCheck> HealthMonitor::evaluate() {
  std::vector<metrics::ReadinessCheck> checks;
  {
    metrics::ReadinessCheck keystore{"keystore", true, "open"};
    try {
      // A lookup that goes to the database: fails when the file went away or is locked or corrupt.
      keys_.contains("00000000-0000-0000-0000-000000000000");
    } catch (const std::exception& e) {
      keystore = {"keystore", false, e.what()};
    }
    checks.push_back(keystore);
  }
  std::vector<std::pair<std::string, std::function<std::string()>>> extra;
  {
    std::lock_guard lock(mutex_);
    const auto age = std::chrono::steady_clock::now() - lastEchoOk_;
    const bool recent = everAnswered_ && age < 3 * interval_;
    const long seconds = static_cast<long>(std::chrono::duration_cast<std::chrono::seconds>(age).count());
    checks.push_back({"upstream", recent,
                      recent ? "C-ECHO answered " + std::to_string(seconds) + " s ago"
                             : (everAnswered_ ? "no C-ECHO answer for " + std::to_string(seconds) + " s; last error: "
                                              : "no C-ECHO answer yet; last error: ") +
                                   lastEchoProblem_});
    extra = extraChecks_;
  }
  for (const auto& [name, problem] : extra) {
    std::string reason;
    try {
      reason = problem();
    } catch (const std::exception& e) {
      reason = e.what();
    }
    checks.push_back({name, reason.empty(), reason});
  }
  return checks;
}

std::string spoolQuotaProblem(const spool::SpoolStats& stats, const config::SpoolSection& quota) {
  const std::uint64_t instances = stats.queued + stats.inFlight + stats.quarantined;
  // Integer arithmetic: 95 % of the quota, without overflow for quotas up to 2^50.
  if (stats.bytes * 20 >= quota.maxBytes * 19) {
    return "spool holds " + std::to_string(stats.bytes) + " of " + std::to_string(quota.maxBytes) + " bytes";
  }
  if (instances * 20 >= quota.maxInstances * 19) {
    return "spool holds " + std::to_string(instances) + " of " + std::to_string(quota.maxInstances) + " instances";
  }
  return {};
}

Monitoring startMonitoring(const config::Config& config, keystore::Keystore& keys, const spool::Spool* storeSpool) {
  Monitoring m;
  if (!config.metrics.enabled) return m;
  metrics::set("pacsgw_build_info", {{"version", PACSGW_VERSION}}, 1);
  m.health = std::make_unique<HealthMonitor>(config, keys);
  if (storeSpool != nullptr) {
    m.health->addCheck("spool", [storeSpool, quota = config.spool] {
      return spoolQuotaProblem(storeSpool->stats(), quota);
    });
  }
  m.http = std::make_unique<metrics::AdminHttpServer>(config.metrics.bind, config.metrics.port,
                                                      [health = m.health.get()] { return health->evaluate(); });
  spdlog::info("metrics and health endpoints on http://{}:{}/ (/metrics, /health/live, /health/ready)",
               config.metrics.bind, m.http->port());
  return m;
}

}  // namespace pacsgw::gateway
