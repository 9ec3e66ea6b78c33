#pragma once
// The management HTTP listener (Boost.Beast on Boost.Asio, one thread):
//   GET /metrics       the metrics registry in the Prometheus text format
//   GET /health/live   200 while the process serves requests
//   GET /health/ready  200 when every readiness check passes, 503 with the failing checks otherwise
// Anything else is 404 (unknown path) or 405 (method other than GET/HEAD). Requests are small and
// bounded: a slow or silent client is dropped after a few seconds and cannot block the others.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace pacsgw::metrics {

struct ReadinessCheck {
  std::string name;
  bool ok = false;
  std::string detail;  // why it failed, or a short status when it passed
};

class AdminHttpServer {
 public:
  using ReadinessProbe = std::function<std::vector<ReadinessCheck>()>;
  // Binds and starts listening (throws std::runtime_error with the reason when it cannot); port 0
  // picks a free port (see port()).
  AdminHttpServer(const std::string& bindAddress, std::uint16_t port, ReadinessProbe readiness);
  ~AdminHttpServer();  // stops the listener and its thread
  AdminHttpServer(const AdminHttpServer&) = delete;
  AdminHttpServer& operator=(const AdminHttpServer&) = delete;

  std::uint16_t port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pacsgw::metrics
