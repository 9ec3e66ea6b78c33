#include "gateway/tls/certificate_identity.h"

#include <openssl/bio.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <arpa/inet.h>
#include <cctype>
#include <memory>

namespace pacsgw::gateway::tls {

namespace {

std::string rfc2253(X509_NAME* name) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  if (!bio || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0) return {};
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio.get(), &data);
  return length > 0 ? std::string(data, static_cast<std::size_t>(length)) : std::string();
}

std::string asn1Text(const ASN1_STRING* s) {
  if (s == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<std::size_t>(ASN1_STRING_length(s)));
}

std::string ipText(const ASN1_OCTET_STRING* s) {
  char out[INET6_ADDRSTRLEN] = {};
  const int length = ASN1_STRING_length(s);
  const unsigned char* bytes = ASN1_STRING_get0_data(s);
  if (length == 4) inet_ntop(AF_INET, bytes, out, sizeof(out));
  else if (length == 16) inet_ntop(AF_INET6, bytes, out, sizeof(out));
  return out;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

}  // namespace

std::optional<CertificateIdentity> CertificateIdentity::fromDer(const unsigned char* der, std::size_t length) {
  const unsigned char* p = der;
  std::unique_ptr<X509, decltype(&X509_free)> cert(d2i_X509(nullptr, &p, static_cast<long>(length)), X509_free);
  if (!cert) return std::nullopt;
  CertificateIdentity id;
  X509_NAME* subject = X509_get_subject_name(cert.get());
  id.subject = rfc2253(subject);
  for (int i = X509_NAME_get_index_by_NID(subject, NID_commonName, -1); i >= 0;
       i = X509_NAME_get_index_by_NID(subject, NID_commonName, i)) {
    id.commonName = asn1Text(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i)));
  }
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr));
  if (names != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
      const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
      switch (n->type) {
        case GEN_DNS: id.altNames.push_back("DNS:" + asn1Text(n->d.dNSName)); break;
        case GEN_IPADD: id.altNames.push_back("IP:" + ipText(n->d.iPAddress)); break;
        case GEN_URI: id.altNames.push_back("URI:" + asn1Text(n->d.uniformResourceIdentifier)); break;
        case GEN_EMAIL: id.altNames.push_back("email:" + asn1Text(n->d.rfc822Name)); break;
        default: break;
      }
    }
    GENERAL_NAMES_free(names);
  }
  return id;
}

bool CertificateIdentity::matches(const std::string& rule) const {
  if (rule.empty()) return true;
  if (rule.rfind("DNS:", 0) == 0) {
    return std::any_of(altNames.begin(), altNames.end(),
                       [&](const std::string& n) { return n.rfind("DNS:", 0) == 0 && lower(n) == lower(rule); });
  }
  if (rule.rfind("IP:", 0) == 0 || rule.rfind("URI:", 0) == 0 || rule.rfind("email:", 0) == 0) {
    return std::find(altNames.begin(), altNames.end(), rule) != altNames.end();
  }
  // "CN=name" alone names the common name; anything else with '=' is a whole subject DN.
  if (rule.rfind("CN=", 0) == 0 && rule.find(',') == std::string::npos) return rule.substr(3) == commonName;
  return rule == subject;
}

std::string CertificateIdentity::describe() const {
  std::string out = "subject '" + subject + "'";
  if (!altNames.empty()) {
    out += ", alt names";
    for (const auto& n : altNames) out += " '" + n + "'";
  }
  return out;
}

}  // namespace pacsgw::gateway::tls
