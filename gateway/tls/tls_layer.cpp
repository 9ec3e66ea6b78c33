#include "gateway/tls/tls_layer.h"

#include <dcmtk/dcmnet/dcmtrans.h>

#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <stdexcept>
#include <tuple>

namespace pacsgw::gateway::tls {

namespace {

void setTimeout(int socket, int option, long seconds) {
  timeval tv{};
  tv.tv_sec = seconds;
  ::setsockopt(socket, SOL_SOCKET, option, &tv, sizeof tv);
}

// The requestor side: DCMTK runs the TLS handshake of an outgoing connection with blocking reads on a
// socket whose receive timeout is dcmSocketReceiveTimeout (60 s, process-wide, set when the connection
// object is constructed). The connection is created just before the handshake, so this is where the
// handshake gets the configured bound.
class BoundedHandshakeLayer : public DcmTLSTransportLayer {
 public:
  explicit BoundedHandshakeLayer(unsigned timeoutSeconds)
      : DcmTLSTransportLayer(NET_REQUESTOR, nullptr, OFTrue), timeoutSeconds_(timeoutSeconds) {}

  DcmTransportConnection* createConnection(DcmNativeSocketType openSocket, OFBool useSecureLayer) override {
    // After the base: constructing the connection sets DCMTK's own socket timeouts.
    DcmTransportConnection* connection = DcmTLSTransportLayer::createConnection(openSocket, useSecureLayer);
    if (connection != nullptr && timeoutSeconds_ > 0) setSocketTimeouts(openSocket, timeoutSeconds_);
    return connection;
  }

 private:
  unsigned timeoutSeconds_;
};

DcmTLSSecurityProfile profileFor(const std::string& name) {
  // bcp195-nd (default): TLS 1.2+ with the BCP 195 ciphersuites and no fallback to weaker ones, the
  // DICOM "Non-Downgrading BCP 195 TLS Secure Transport Connection Profile".
  if (name == "bcp195") return TSP_Profile_BCP195;
  if (name == "bcp195-extended") return TSP_Profile_BCP195_Extended;
  return TSP_Profile_BCP195_ND;
}

void check(const OFCondition& cond, const std::string& what) {
  if (cond.bad()) throw std::runtime_error(what + ": " + cond.text());
}

}  // namespace

void setSocketTimeouts(int socket, unsigned seconds) {
  setTimeout(socket, SO_RCVTIMEO, static_cast<long>(seconds));
  setTimeout(socket, SO_SNDTIMEO, static_cast<long>(seconds));
}

void restoreSocketTimeouts(int socket) {
  // -1 means DCMTK leaves the system default (no timeout); 0 is no timeout as well.
  setTimeout(socket, SO_RCVTIMEO, std::max<long>(0, dcmSocketReceiveTimeout.get()));
  setTimeout(socket, SO_SNDTIMEO, std::max<long>(0, dcmSocketSendTimeout.get()));
}

std::unique_ptr<DcmTLSTransportLayer> makeTransportLayer(const config::TlsSection& tls, T_ASC_NetworkRole role,
                                                         unsigned handshakeTimeoutSeconds) {
  auto layer = role == NET_REQUESTOR ? std::make_unique<BoundedHandshakeLayer>(handshakeTimeoutSeconds)
                                     : std::make_unique<DcmTLSTransportLayer>(role, nullptr, OFTrue);
  if (!*layer) throw std::runtime_error("cannot create a TLS context (OpenSSL)");
  check(layer->setTLSProfile(profileFor(tls.profile)), "gateway.tls.profile " + tls.profile);
  check(layer->activateCipherSuites(), "gateway.tls.profile " + tls.profile);
  check(layer->setPrivateKeyFile(tls.privateKey.c_str(), DCF_Filetype_PEM),
        "gateway.tls.private_key " + tls.privateKey);
  check(layer->setCertificateFile(tls.certificate.c_str(), DCF_Filetype_PEM),
        "gateway.tls.certificate " + tls.certificate);
  if (!layer->checkPrivateKeyMatchesCertificate())
    throw std::runtime_error("gateway.tls.private_key " + tls.privateKey + " does not match gateway.tls.certificate " +
                             tls.certificate);
  check(layer->addTrustedCertificateFile(tls.caBundle.c_str(), DCF_Filetype_PEM),
        "gateway.tls.ca_bundle " + tls.caBundle);
  layer->setCertificateVerification(DCV_requireCertificate);
  return layer;
}

std::shared_ptr<const OutgoingTls> outgoingTls(const config::Config& config, const std::optional<bool>& peerTls,
                                               const std::string& expectedIdentity) {
  if (!config::peerUsesTls(config, peerTls)) return nullptr;
  const config::TlsSection& t = config.gateway.tls;
  static std::mutex mutex;
  static std::map<std::tuple<std::string, std::string, std::string, std::string, unsigned>,
                  std::shared_ptr<DcmTLSTransportLayer>>
      layers;
  std::shared_ptr<DcmTLSTransportLayer> layer;
  {
    std::lock_guard<std::mutex> lock(mutex);
    const unsigned handshake = config.gateway.acseTimeoutSeconds;
    auto& slot = layers[{t.certificate, t.privateKey, t.caBundle, t.profile, handshake}];
    if (!slot) slot = makeTransportLayer(t, NET_REQUESTOR, handshake);
    layer = slot;
  }
  return std::make_shared<const OutgoingTls>(OutgoingTls{layer, expectedIdentity});
}

}  // namespace pacsgw::gateway::tls
