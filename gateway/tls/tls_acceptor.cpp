#include "gateway/tls/tls_acceptor.h"

#include "gateway/net_util.h"
#include "gateway/tls/tls_layer.h"

#include <dcmtk/dcmtls/tlstrans.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>

namespace pacsgw::gateway::tls {

namespace {

int remainingMs(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// Waits for what OpenSSL asked for; false on timeout, error or a shut-down socket.
bool waitFor(int fd, int sslError, std::chrono::steady_clock::time_point deadline) {
  pollfd p{fd, static_cast<short>(sslError == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN), 0};
  const int ms = remainingMs(deadline);
  if (ms == 0) return false;
  const int n = ::poll(&p, 1, ms);
  return n > 0 && (p.revents & (POLLERR | POLLNVAL)) == 0;
}

std::string openSslReason(SSL* ssl) {
  const long verify = SSL_get_verify_result(ssl);
  std::string reason;
  if (verify != X509_V_OK) reason = X509_verify_cert_error_string(verify);
  const unsigned long err = ERR_get_error();
  if (reason.empty() && err != 0) {
    char text[256];
    ERR_error_string_n(err, text, sizeof(text));
    reason = text;
  }
  ERR_clear_error();
  return reason.empty() ? "connection closed or timed out during the handshake" : reason;
}

std::string peerSubject(SSL* ssl) {
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) return {};
  char line[512];
  X509_NAME_oneline(X509_get_subject_name(cert), line, sizeof(line));
  X509_free(cert);
  return printable(line);
}

void setBlocking(int fd, bool blocking) {
  const int flags = ::fcntl(fd, F_GETFL, 0);
  if (flags >= 0) ::fcntl(fd, F_SETFL, blocking ? (flags & ~O_NONBLOCK) : (flags | O_NONBLOCK));
}

}  // namespace

TlsAcceptor::TlsAcceptor(const config::TlsSection& tls) : layer_(makeTransportLayer(tls, NET_ACCEPTOR)) {}

TlsAcceptor::Result TlsAcceptor::accept(int fd, std::chrono::steady_clock::time_point deadline,
                                        std::uint32_t maxPduBytes) {
  Result result;
  // A bare connect-and-close (health check) is not a handshake failure.
  if (!waitReadable(fd, remainingMs(deadline))) {
    result.failure = "no TLS ClientHello in time";
    return result;
  }
  char probe;
  if (::recv(fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
    result.peerClosed = true;
    return result;
  }
  SSL* ssl = SSL_new(layer_->getNativeHandle());
  if (ssl == nullptr || SSL_set_fd(ssl, fd) != 1) {
    if (ssl != nullptr) SSL_free(ssl);
    result.failure = "cannot create a TLS connection (OpenSSL)";
    return result;
  }
  setBlocking(fd, false);
  const auto fail = [&](const std::string& why) {
    result.failure = why;
    result.peerCertificate = peerSubject(ssl);
    SSL_free(ssl);  // leaves fd open: SSL_set_fd does not own it
    setBlocking(fd, true);
    return std::move(result);
  };
  ERR_clear_error();
  for (;;) {
    const int r = SSL_accept(ssl);
    if (r == 1) break;
    const int e = SSL_get_error(ssl, r);
    if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) && waitFor(fd, e, deadline)) continue;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return fail("TLS handshake not completed in time");
    return fail("TLS handshake failed: " + openSslReason(ssl));
  }
  // The whole A-ASSOCIATE-RQ, decrypted, before the hand-over (DCMTK then reads it without waiting).
  // SSL_peek sees one TLS record at a time; an A-ASSOCIATE-RQ fits in one (16 KiB) record as every
  // DICOM implementation sends it, and a peer that splits it is at least authenticated by now.
  std::string buffer(std::min<std::uint32_t>(maxPduBytes, 16384) + 6, '\0');
  for (;;) {
    const int n = SSL_peek(ssl, buffer.data(), static_cast<int>(buffer.size()));
    if (n > 0) {
      const auto prefix = classifyAssociateRequest(reinterpret_cast<const unsigned char*>(buffer.data()),
                                                   static_cast<std::size_t>(n), maxPduBytes);
      if (prefix.state == AssociateRequestPrefix::State::Invalid)
        return fail("first message inside TLS is not an acceptable A-ASSOCIATE-RQ");
      break;
    }
    const int e = SSL_get_error(ssl, n);
    if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) && waitFor(fd, e, deadline)) continue;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
      return fail("no complete association request inside TLS in time");
    return fail("connection closed after the TLS handshake");
  }
  setBlocking(fd, true);
  result.connection = std::make_unique<DcmTLSConnection>(fd, ssl);
  return result;
}

void HandoverLayer::prepare(int fd, std::unique_ptr<DcmTransportConnection> connection) {
  std::lock_guard<std::mutex> lock(mutex_);
  prepared_[fd] = std::move(connection);
}

bool HandoverLayer::discard(int fd) {
  std::unique_ptr<DcmTransportConnection> left;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = prepared_.find(fd);
    if (it == prepared_.end()) return false;
    left = std::move(it->second);
    prepared_.erase(it);
  }
  return true;  // `left` closes the TLS connection and its socket
}

DcmTransportConnection* HandoverLayer::createConnection(DcmNativeSocketType openSocket, OFBool useSecureLayer) {
  if (!useSecureLayer) return DcmTransportLayer::createConnection(openSocket, useSecureLayer);
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = prepared_.find(static_cast<int>(openSocket));
  if (it == prepared_.end()) return nullptr;  // DCMTK then closes the socket and fails the receive
  DcmTransportConnection* connection = it->second.release();
  prepared_.erase(it);
  return connection;
}

}  // namespace pacsgw::gateway::tls
