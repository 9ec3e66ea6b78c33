#pragma once
// Who a verified peer certificate names: its subject DN, common name and subjectAltName entries, and
// whether it satisfies a configured certificate_identity rule.
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace pacsgw::gateway::tls {

struct CertificateIdentity {
  std::string subject;                // RFC 2253 form, e.g. "CN=ws1,O=Hospital"
  std::string commonName;             // the (last) CN of the subject, or ""
  std::vector<std::string> altNames;  // "DNS:ws1.example", "IP:10.0.0.5", "URI:...", "email:..."

  // Parses a DER certificate; nullopt when it is not one.
  static std::optional<CertificateIdentity> fromDer(const unsigned char* der, std::size_t length);
  // Whether `rule` (config: "CN=name", a whole subject DN with '=' signs, or "DNS:"/"IP:"/"URI:"/
  // "email:" followed by a subjectAltName value) names this certificate. Exact, case-sensitive
  // comparison except DNS names, which compare case-insensitively.
  bool matches(const std::string& rule) const;
  // For logs and audit records: the subject and the alt names (values escaped by the caller).
  std::string describe() const;
};

}  // namespace pacsgw::gateway::tls
