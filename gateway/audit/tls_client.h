#pragma once
// A blocking TLS client connection for the audit forwarder (OpenSSL 3): TLS 1.2 or later, the
// server's certificate verified against a configured CA bundle and matched against the host name
// (or IP address) the connection was made to, an optional client certificate for mutual
// authentication. Every network wait is bounded by `timeoutSeconds`.
#include <chrono>
#include <cstdint>
#include <string>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace pacsgw::audit {

struct TlsClientSettings {
  std::string host;
  std::uint16_t port = 0;
  std::string caBundle;     // PEM file with the CA certificates that may sign the server's certificate
  std::string certificate;  // PEM client certificate (chain); empty = no client authentication
  std::string privateKey;   // PEM key of `certificate`
  int timeoutSeconds = 10;
};

class TlsClient {
 public:
  // Loads the CA bundle and client credentials; throws std::runtime_error naming the file that fails.
  explicit TlsClient(TlsClientSettings settings);
  ~TlsClient();
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  // TCP connect and TLS handshake with verification; throws std::runtime_error saying why it failed
  // (connection refused, timeout, "certificate verify failed: unable to get local issuer certificate").
  void connect();
  void close();
  bool connected() const { return ssl_ != nullptr; }
  // The peer closed or reset the connection, or sent something (a syslog receiver never does).
  bool peerClosed() const;
  // Writes all bytes; throws std::runtime_error on failure (the connection is then closed).
  void write(const std::string& bytes);
  // Waits until the peer's TCP stack acknowledged every byte written, at most `limit`.
  bool waitUntilAcknowledged(std::chrono::milliseconds limit) const;

 private:
  TlsClientSettings settings_;
  SSL_CTX* context_ = nullptr;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
};

}  // namespace pacsgw::audit
