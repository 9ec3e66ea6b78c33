#include "gateway/metrics/admin_http.h"

#include "gateway/metrics/registry.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <thread>

namespace pacsgw::metrics {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kRequestTimeout = std::chrono::seconds(5);
constexpr std::size_t kMaxRequestBytes = 8192;  // request line + headers; bodies are refused

// One HTTP/1.1 connection, served with keep-alive until the client closes or goes quiet.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, const AdminHttpServer::ReadinessProbe& readiness)
      : stream_(std::move(socket)), readiness_(readiness) {}

  void start() {
    beast::error_code ignored;
    stream_.socket().set_option(tcp::no_delay(true), ignored);
    readRequest();
  }

 private:
  void readRequest() {
    parser_.emplace();
    parser_->header_limit(kMaxRequestBytes);
    parser_->body_limit(0);
    stream_.expires_after(kRequestTimeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) { self->onRead(ec); });
  }

  void onRead(beast::error_code ec) {
    if (ec) {
      close();
      return;
    }
    const http::request<http::empty_body>& request = parser_->get();
    response_ = respond(request);
    response_.keep_alive(request.keep_alive());
    response_.prepare_payload();
    if (request.method() == http::verb::head) response_.body().clear();
    stream_.expires_after(kRequestTimeout);
    http::async_write(stream_, response_, [self = shared_from_this()](beast::error_code writeEc, std::size_t) {
      if (writeEc || !self->response_.keep_alive()) {
        self->close();
        return;
      }
      self->readRequest();
    });
  }

  http::response<http::string_body> respond(const http::request<http::empty_body>& request) {
    http::response<http::string_body> response;
    response.version(request.version());
    response.set(http::field::server, "pacsgw");
    response.set(http::field::cache_control, "no-store");
    const auto text = [&](http::status status, std::string body, const char* type = "text/plain; charset=utf-8") {
      response.result(status);
      response.set(http::field::content_type, type);
      response.body() = std::move(body);
    };
    if (request.method() != http::verb::get && request.method() != http::verb::head) {
      response.set(http::field::allow, "GET, HEAD");
      text(http::status::method_not_allowed, "only GET and HEAD are served\n");
      return response;
    }
    std::string_view target(request.target().data(), request.target().size());
    target = target.substr(0, target.find('?'));
    if (target == "/metrics") {
      text(http::status::ok, renderPrometheus(), "text/plain; version=0.0.4; charset=utf-8");
    } else if (target == "/health/live") {
      text(http::status::ok, "live\n");
    } else if (target == "/health/ready") {
      std::string body;
      bool ready = true;
      try {
        for (const ReadinessCheck& check : readiness_()) {
          ready = ready && check.ok;
          body += check.name + (check.ok ? ": ok" : ": FAIL") + (check.detail.empty() ? "" : " (" + check.detail + ")") +
                  "\n";
        }
      } catch (const std::exception& e) {
        ready = false;
        body += std::string("readiness checks failed: ") + e.what() + "\n";
      }
      set("pacsgw_ready", {}, ready ? 1 : 0);
      text(ready ? http::status::ok : http::status::service_unavailable, (ready ? "ready\n" : "not ready\n") + body);
    } else {
      text(http::status::not_found, "not found; try /metrics, /health/live or /health/ready\n");
    }
    return response;
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_{kMaxRequestBytes};
  std::optional<http::request_parser<http::empty_body>> parser_;
  http::response<http::string_body> response_;
  const AdminHttpServer::ReadinessProbe& readiness_;
};

}  // namespace

struct AdminHttpServer::Impl {
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  ReadinessProbe readiness;
  std::thread thread;

  void accept() {
    acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) std::make_shared<Connection>(std::move(socket), readiness)->start();
      accept();
    });
  }
};

AdminHttpServer::AdminHttpServer(const std::string& bindAddress, std::uint16_t port, ReadinessProbe readiness)
    : impl_(std::make_unique<Impl>()) {
  impl_->readiness = std::move(readiness);
  beast::error_code ec;
  tcp::resolver resolver(impl_->io);
  const auto endpoints = resolver.resolve(bindAddress, std::to_string(port),
                                          tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || endpoints.empty()) {
    throw std::runtime_error("metrics.bind " + bindAddress + ": cannot resolve: " + ec.message());
  }
  const tcp::endpoint endpoint = endpoints.begin()->endpoint();
  impl_->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl_->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl_->acceptor.bind(endpoint, ec);
  if (!ec) impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    throw std::runtime_error("cannot listen for metrics on " + bindAddress + ":" + std::to_string(port) + ": " +
                             ec.message());
  }
  impl_->accept();
  impl_->thread = std::thread([impl = impl_.get()] { impl->io.run(); });
}

AdminHttpServer::~AdminHttpServer() {
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::uint16_t AdminHttpServer::port() const { return impl_->acceptor.local_endpoint().port(); }

}  // namespace pacsgw::metrics
