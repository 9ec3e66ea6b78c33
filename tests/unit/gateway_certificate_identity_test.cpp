// Which certificate_identity rules a peer certificate satisfies: CN, whole subject DN, SAN entries.
#include "gateway/tls/certificate_identity.h"

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <gtest/gtest.h>

#include <memory>
#include <vector>

using pacsgw::gateway::tls::CertificateIdentity;

namespace {

// A self-signed certificate (P-256) with subject O=Hospital,CN=<cn> and the given subjectAltName.
std::vector<unsigned char> certificateDer(const std::string& cn, const std::string& altNames) {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"), EVP_PKEY_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), X509_free);
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("Hospital"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509_set_pubkey(cert.get(), key.get());
  if (!altNames.empty()) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, altNames.c_str());
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  X509_sign(cert.get(), key.get(), EVP_sha256());
  const int length = i2d_X509(cert.get(), nullptr);
  std::vector<unsigned char> der(static_cast<std::size_t>(length));
  unsigned char* out = der.data();
  i2d_X509(cert.get(), &out);
  return der;
}

}  // namespace

TEST(CertificateIdentity, ReadsSubjectCommonNameAndAltNames) {
  const auto der = certificateDer("ws1", "DNS:ws1.example,IP:10.0.0.5,email:pacs@example.org");
  const auto id = CertificateIdentity::fromDer(der.data(), der.size());
  ASSERT_TRUE(id);
  EXPECT_EQ(id->commonName, "ws1");
  EXPECT_EQ(id->subject, "CN=ws1,O=Hospital");
  EXPECT_EQ(id->altNames, (std::vector<std::string>{"DNS:ws1.example", "IP:10.0.0.5", "email:pacs@example.org"}));
}

TEST(CertificateIdentity, MatchesOnlyTheNamedIdentity) {
  const auto der = certificateDer("ws1", "DNS:ws1.example,IP:10.0.0.5");
  const auto id = CertificateIdentity::fromDer(der.data(), der.size());
  ASSERT_TRUE(id);
  EXPECT_TRUE(id->matches("CN=ws1"));
  EXPECT_TRUE(id->matches("CN=ws1,O=Hospital"));
  EXPECT_TRUE(id->matches("DNS:WS1.example"));  // DNS names ignore case
  EXPECT_TRUE(id->matches("IP:10.0.0.5"));
  EXPECT_FALSE(id->matches("CN=ws2"));
  EXPECT_FALSE(id->matches("CN=ws"));               // no prefix match
  EXPECT_FALSE(id->matches("CN=ws1,O=Other"));
  EXPECT_FALSE(id->matches("DNS:ws1.example.evil"));
  EXPECT_FALSE(id->matches("IP:10.0.0.6"));
  EXPECT_FALSE(id->matches("email:ws1.example"));   // a value of another SAN type does not count
}

TEST(CertificateIdentity, RejectsWhatIsNotACertificate) {
  const unsigned char junk[] = {0x30, 0x03, 0x02, 0x01, 0x01};
  EXPECT_FALSE(CertificateIdentity::fromDer(junk, sizeof(junk)));
  EXPECT_FALSE(CertificateIdentity::fromDer(nullptr, 0));
}
