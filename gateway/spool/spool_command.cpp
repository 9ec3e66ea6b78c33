#include "gateway/spool/spool_command.h"

#include "config/config.h"
#include "gateway/spool/spool.h"

#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>
#include <stdexcept>

namespace pacsgw::gateway::spool {

namespace {

std::string ageText(std::int64_t receivedUnixMs) {
  if (receivedUnixMs <= 0) return "-";
  const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  const double seconds = static_cast<double>(std::max<std::int64_t>(0, now - receivedUnixMs)) / 1000.0;
  char text[32];
  std::snprintf(text, sizeof text, "%.0f s", seconds);
  return text;
}

int status(const std::string& directory, const config::Config& cfg) {
  const SpoolSnapshot s = inspectSpool(directory);
  std::cout << "spool:        " << directory << " (upstream.forward: " << cfg.upstream.forward << ")\n";
  if (s.inFlight) {
    const std::uint64_t inFlight = std::min(*s.inFlight, s.queued);
    std::cout << "queued:       " << s.queued - inFlight << "\n";
    std::cout << "in flight:    " << inFlight << "\n";
  } else {
    std::cout << "queued:       " << s.queued << "\n";
    std::cout << "in flight:    0 (no running gateway is using this spool)\n";
  }
  std::cout << "quarantined:  " << s.quarantined.size() << "\n";
  std::cout << "queued bytes: " << s.queuedBytes << "\n";
  std::cout << "oldest age:   " << ageText(s.oldestReceivedUnixMs) << "\n";
  if (s.delivered) std::cout << "delivered:    " << *s.delivered << " since the gateway started\n";
  if (s.partial > 0) std::cout << "incomplete:   " << s.partial << " unacknowledged writes (removed at next start)\n";
  for (const QuarantinedRecord& q : s.quarantined) std::cout << "  quarantined " << q.name << ": " << q.reason << "\n";
  return 0;
}

}  // namespace

int runSpoolCommand(const std::vector<std::string>& args) {
  if (args.empty() || (args[0] != "status" && args[0] != "retry")) {
    throw std::invalid_argument("expected 'spool status' or 'spool retry'");
  }
  std::optional<std::string> configPath;
  std::vector<std::string> names;
  for (std::size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--config" || args[i] == "-c") {
      if (i + 1 >= args.size()) throw std::invalid_argument("option " + args[i] + " needs a value");
      configPath = args[++i];
    } else if (args[i].rfind("--", 0) == 0) {
      throw std::invalid_argument("unknown option " + args[i]);
    } else {
      names.push_back(args[i]);
    }
  }
  if (!configPath) throw std::invalid_argument("--config FILE is required");
  const config::Config cfg = config::loadConfig(*configPath);
  const std::string directory = config::spoolDirectory(cfg);
  if (args[0] == "status") {
    if (!names.empty()) throw std::invalid_argument("spool status takes no arguments");
    return status(directory, cfg);
  }
  const std::size_t moved = requeueQuarantined(directory, names);
  std::cout << "returned " << moved << " quarantined instance(s) to the queue";
  if (!names.empty() && moved < names.size()) std::cout << " (" << names.size() - moved << " name(s) not found)";
  std::cout << "; a running gateway retries them and everything waiting for a backoff now\n";
  return !names.empty() && moved < names.size() ? 1 : 0;
}

}  // namespace pacsgw::gateway::spool
