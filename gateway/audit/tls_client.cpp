#include "gateway/audit/tls_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace pacsgw::audit {
namespace {

std::string opensslErrors() {
  std::string text;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!text.empty()) text += "; ";
    text += buf;
  }
  return text.empty() ? "no details" : text;
}

bool isIpAddress(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

int connectWithTimeout(const std::string& host, std::uint16_t port, int timeoutSeconds) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
  if (rc != 0) throw std::runtime_error("cannot resolve " + host + ": " + gai_strerror(rc));
  std::string lastError = "no address";
  int fd = -1;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) continue;
    int err = 0;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        const int ready = ::poll(&p, 1, timeoutSeconds * 1000);
        socklen_t len = sizeof err;
        if (ready <= 0) err = ETIMEDOUT;
        else if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      }
    }
    if (err != 0) {
      lastError = std::strerror(err);
      ::close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd < 0) throw std::runtime_error("cannot connect: " + lastError);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  timeval tv{timeoutSeconds, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

}  // namespace

TlsClient::TlsClient(TlsClientSettings settings) : settings_(std::move(settings)) {
  context_ = SSL_CTX_new(TLS_client_method());
  if (context_ == nullptr) throw std::runtime_error("cannot create a TLS context: " + opensslErrors());
  SSL_CTX_set_min_proto_version(context_, TLS1_2_VERSION);
  SSL_CTX_set_verify(context_, SSL_VERIFY_PEER, nullptr);
  auto fail = [this](const std::string& what) {
    const std::string text = what + ": " + opensslErrors();
    SSL_CTX_free(context_);
    context_ = nullptr;
    throw std::runtime_error(text);
  };
  if (SSL_CTX_load_verify_locations(context_, settings_.caBundle.c_str(), nullptr) != 1)
    fail("cannot load the CA bundle " + settings_.caBundle);
  if (!settings_.certificate.empty()) {
    if (SSL_CTX_use_certificate_chain_file(context_, settings_.certificate.c_str()) != 1)
      fail("cannot load the client certificate " + settings_.certificate);
    if (SSL_CTX_use_PrivateKey_file(context_, settings_.privateKey.c_str(), SSL_FILETYPE_PEM) != 1)
      fail("cannot load the private key " + settings_.privateKey);
    if (SSL_CTX_check_private_key(context_) != 1)
      fail("the private key " + settings_.privateKey + " does not belong to " + settings_.certificate);
  }
}

TlsClient::~TlsClient() {
  close();
  if (context_ != nullptr) SSL_CTX_free(context_);
}

void TlsClient::connect() {
  close();
  ERR_clear_error();
  const std::string where = settings_.host + ":" + std::to_string(settings_.port);
  try {
    fd_ = connectWithTimeout(settings_.host, settings_.port, settings_.timeoutSeconds);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(where + ": " + e.what());
  }
  ssl_ = SSL_new(context_);
  if (ssl_ == nullptr || SSL_set_fd(ssl_, fd_) != 1) {
    const std::string text = opensslErrors();
    close();
    throw std::runtime_error(where + ": cannot set up TLS: " + text);
  }
  // The certificate must name the host we connected to: its DNS name, or its IP address.
  if (isIpAddress(settings_.host)) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), settings_.host.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl_, settings_.host.c_str());
    SSL_set1_host(ssl_, settings_.host.c_str());
  }
  if (SSL_connect(ssl_) != 1) {
    const long verify = SSL_get_verify_result(ssl_);
    std::string text = verify != X509_V_OK ? std::string("certificate verify failed: ") +
                                                 X509_verify_cert_error_string(verify)
                                           : opensslErrors();
    close();
    throw std::runtime_error(where + ": TLS handshake failed: " + text);
  }
}

void TlsClient::close() {
  if (ssl_ != nullptr) {
    // close_notify when the peer is still there; never wait for its answer.
    if (!peerClosed()) SSL_shutdown(ssl_);
    SSL_free(ssl_);
    ssl_ = nullptr;
  }
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

bool TlsClient::peerClosed() const {
  if (fd_ < 0) return true;
  char probe;
  const ssize_t n = ::recv(fd_, &probe, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK;
  return true;  // 0 = orderly close; > 0 = a TLS alert or data a syslog receiver never sends
}

void TlsClient::write(const std::string& bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    if (ssl_ == nullptr) throw std::runtime_error("not connected");
    ERR_clear_error();
    const int n = SSL_write(ssl_, bytes.data() + done, static_cast<int>(bytes.size() - done));
    if (n <= 0) {
      const int error = SSL_get_error(ssl_, n);
      const std::string text = error == SSL_ERROR_SYSCALL ? std::string(std::strerror(errno)) : opensslErrors();
      const_cast<TlsClient*>(this)->close();
      throw std::runtime_error("write failed: " + text);
    }
    done += static_cast<std::size_t>(n);
  }
}

bool TlsClient::waitUntilAcknowledged(std::chrono::milliseconds limit) const {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (fd_ >= 0) {
    int unacknowledged = 0;
    if (::ioctl(fd_, SIOCOUTQ, &unacknowledged) != 0) return false;
    if (unacknowledged == 0) return true;
    if (std::chrono::steady_clock::now() >= deadline || peerClosed()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

}  // namespace pacsgw::audit
