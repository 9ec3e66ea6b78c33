#include "gateway/tls/tls_layer.h"

#include <map>
#include <mutex>
#include <stdexcept>
#include <tuple>

namespace pacsgw::gateway::tls {

namespace {

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

std::unique_ptr<DcmTLSTransportLayer> makeTransportLayer(const config::TlsSection& tls, T_ASC_NetworkRole role) {
  auto layer = std::make_unique<DcmTLSTransportLayer>(role, nullptr, OFTrue);
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
  static std::map<std::tuple<std::string, std::string, std::string, std::string>, std::shared_ptr<DcmTLSTransportLayer>>
      layers;
  std::shared_ptr<DcmTLSTransportLayer> layer;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto& slot = layers[{t.certificate, t.privateKey, t.caBundle, t.profile}];
    if (!slot) slot = makeTransportLayer(t, NET_REQUESTOR);
    layer = slot;
  }
  return std::make_shared<const OutgoingTls>(OutgoingTls{layer, expectedIdentity});
}

}  // namespace pacsgw::gateway::tls
