// The metrics registry's exposition format and the management HTTP listener, over a real socket.
#include "gateway/metrics/admin_http.h"
#include "gateway/metrics/registry.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <string>
#include <thread>

namespace pacsgw::metrics {
namespace {

// One HTTP/1.0 request to 127.0.0.1:port; returns the whole response (status line, headers, body).
std::string httpRequest(std::uint16_t port, const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(fd, 0);
  timeval timeout{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    ADD_FAILURE() << "cannot connect to the admin listener";
    return {};
  }
  EXPECT_EQ(::send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  std::string response;
  char buffer[4096];
  for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) response.append(buffer, static_cast<std::size_t>(n));
  ::close(fd);
  return response;
}

std::string get(std::uint16_t port, const std::string& path) {
  return httpRequest(port, "GET " + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n");
}

TEST(MetricsRegistry, CountersAddUpPerLabelSet) {
  const Labels accepted{{"role", "modality"}, {"result", "accepted"}};
  const Labels rejected{{"role", "modality"}, {"result", "rejected"}};
  const double before = value("pacsgw_associations_total", accepted);
  increment("pacsgw_associations_total", accepted);
  increment("pacsgw_associations_total", accepted);
  increment("pacsgw_associations_total", rejected);
  EXPECT_EQ(value("pacsgw_associations_total", accepted), before + 2);
  const std::string text = renderPrometheus();
  EXPECT_NE(text.find("# TYPE pacsgw_associations_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("pacsgw_associations_total{role=\"modality\",result=\"accepted\"} " +
                      std::to_string(static_cast<long>(before + 2)) + "\n"),
            std::string::npos)
      << text;
}

TEST(MetricsRegistry, EveryFamilyIsDescribedEvenBeforeItsFirstEvent) {
  const std::string text = renderPrometheus();
  for (const Family& family : catalog()) {
    EXPECT_NE(text.find("# HELP " + family.name + " "), std::string::npos) << family.name;
    EXPECT_NE(text.find("# TYPE " + family.name + " "), std::string::npos) << family.name;
  }
}

TEST(MetricsRegistry, HistogramBucketsAreCumulativeWithSumAndCount) {
  const Labels labels{{"backend", "histogram-test"}};
  observe("pacsgw_encrypt_seconds", labels, 0.0007);  // first bucket above: 0.001
  observe("pacsgw_encrypt_seconds", labels, 0.2);     // 0.25
  observe("pacsgw_encrypt_seconds", labels, 100);     // only +Inf
  const std::string text = renderPrometheus();
  const std::string prefix = "pacsgw_encrypt_seconds_bucket{backend=\"histogram-test\",le=";
  EXPECT_NE(text.find(prefix + "\"0.0005\"} 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find(prefix + "\"0.001\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find(prefix + "\"0.1\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find(prefix + "\"0.25\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find(prefix + "\"30\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find(prefix + "\"+Inf\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("pacsgw_encrypt_seconds_count{backend=\"histogram-test\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("pacsgw_encrypt_seconds_sum{backend=\"histogram-test\"} 100.2007"), std::string::npos);
}

TEST(MetricsRegistry, LabelValuesAreEscaped) {
  increment("pacsgw_upstream_errors_total", {{"kind", "quote\" backslash\\ newline\n"}});
  EXPECT_NE(renderPrometheus().find(R"(pacsgw_upstream_errors_total{kind="quote\" backslash\\ newline\n"} 1)"),
            std::string::npos);
}

TEST(MetricsRegistry, GaugeSourcesAreReadAtScrapeTime) {
  double depth = 3;
  setGaugeSource("pacsgw_spool_depth", {}, [&] { return depth; });
  EXPECT_NE(renderPrometheus().find("\npacsgw_spool_depth 3\n"), std::string::npos);
  depth = 7;
  EXPECT_NE(renderPrometheus().find("\npacsgw_spool_depth 7\n"), std::string::npos);
  clearGaugeSource("pacsgw_spool_depth", {});
}

TEST(MetricsRegistry, UndeclaredNamesAndWrongTypesAreRefused) {
  EXPECT_THROW(increment("pacsgw_no_such_metric"), std::invalid_argument);
  EXPECT_THROW(observe("pacsgw_bytes_total", {}, 1), std::invalid_argument);
  EXPECT_THROW(increment("pacsgw_decrypt_seconds"), std::invalid_argument);
}

TEST(AdminHttp, ServesMetricsLivenessAndReadiness) {
  bool ready = true;
  AdminHttpServer server("127.0.0.1", 0, [&] {
    return std::vector<ReadinessCheck>{{"keystore", true, "open"}, {"upstream", ready, ready ? "" : "PACS down"}};
  });
  ASSERT_NE(server.port(), 0);

  const std::string metrics = get(server.port(), "/metrics");
  EXPECT_EQ(metrics.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << metrics;
  EXPECT_NE(metrics.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(metrics.find("# TYPE pacsgw_instances_total counter"), std::string::npos);

  EXPECT_EQ(get(server.port(), "/health/live").rfind("HTTP/1.0 200 OK\r\n", 0), 0u);
  const std::string up = get(server.port(), "/health/ready");
  EXPECT_EQ(up.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << up;
  EXPECT_EQ(value("pacsgw_ready"), 1);

  ready = false;
  const std::string down = get(server.port(), "/health/ready");
  EXPECT_EQ(down.rfind("HTTP/1.0 503 Service Unavailable\r\n", 0), 0u) << down;
  EXPECT_NE(down.find("upstream: FAIL (PACS down)"), std::string::npos) << down;
  EXPECT_EQ(value("pacsgw_ready"), 0);
}

TEST(AdminHttp, RefusesUnknownPathsOtherMethodsAndGarbage) {
  AdminHttpServer server("127.0.0.1", 0, [] { return std::vector<ReadinessCheck>{}; });
  EXPECT_EQ(get(server.port(), "/secrets").rfind("HTTP/1.0 404 Not Found\r\n", 0), 0u);
  const std::string post = httpRequest(server.port(), "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(post.rfind("HTTP/1.0 405 Method Not Allowed\r\n", 0), 0u) << post;
  // Not HTTP at all: the connection is closed without an answer, and the listener keeps serving.
  EXPECT_EQ(httpRequest(server.port(), std::string("\x16\x03\x01\x00\x05hello\r\n\r\n", 14)), "");
  EXPECT_EQ(get(server.port(), "/health/live").rfind("HTTP/1.0 200 OK\r\n", 0), 0u);
}

TEST(AdminHttp, ReportsWhyItCannotListen) {
  AdminHttpServer first("127.0.0.1", 0, [] { return std::vector<ReadinessCheck>{}; });
  try {
    AdminHttpServer second("127.0.0.1", first.port(), [] { return std::vector<ReadinessCheck>{}; });
    FAIL() << "a second listener on the same port must not start";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot listen for metrics on 127.0.0.1:"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace pacsgw::metrics
