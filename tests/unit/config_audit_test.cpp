// The audit section: the local log's path (default under data_dir) and forwarding to syslog over TLS.
#include "config/config.h"

#include <gtest/gtest.h>

#include <string>

using namespace pacsgw::config;

namespace {

std::string document(const std::string& rest = "") {
  return "gateway: { ae_title: GATEWAY, port: 11113, data_dir: /srv/pacsgw }\n"
         "upstream: { ae_title: PACS, host: pacs.example.org, port: 104 }\n"
         "keystore: { path: /srv/ks.db, master_key_file: /srv/master.key }\n" + rest;
}

std::string messagesOf(const std::string& yaml) {
  try {
    parseConfig(yaml, "test.yaml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(ConfigAudit, DefaultIsTheDataDirectoryAndNoForwarding) {
  const Config c = parseConfig(document());
  EXPECT_EQ(auditLogPath(c), "/srv/pacsgw/audit.log");
  EXPECT_FALSE(c.audit.syslog.enabled);
  EXPECT_EQ(toYaml(c).find("syslog:"), std::string::npos);
}

TEST(ConfigAudit, PathAndSyslogWithEveryKeyRoundTrip) {
  const Config c = parseConfig(document(
      "audit:\n  path: /var/log/pacsgw/audit.log\n  syslog:\n    host: siem.example.org\n    port: 6515\n"
      "    ca_bundle: /etc/pacsgw/ca.pem\n    certificate: /etc/pacsgw/gw.pem\n    private_key: /etc/pacsgw/gw.key\n"
      "    app_name: pacsgw-ct\n    retry_max_s: 30\n"));
  EXPECT_EQ(auditLogPath(c), "/var/log/pacsgw/audit.log");
  const AuditSyslogSection& s = c.audit.syslog;
  EXPECT_TRUE(s.enabled);
  EXPECT_EQ(s.host, "siem.example.org");
  EXPECT_EQ(s.port, 6515);
  EXPECT_EQ(s.caBundle, "/etc/pacsgw/ca.pem");
  EXPECT_EQ(s.certificate, "/etc/pacsgw/gw.pem");
  EXPECT_EQ(s.privateKey, "/etc/pacsgw/gw.key");
  EXPECT_EQ(s.appName, "pacsgw-ct");
  EXPECT_EQ(s.retryMaxSeconds, 30u);
  const Config again = parseConfig(toYaml(c));
  EXPECT_EQ(auditLogPath(again), "/var/log/pacsgw/audit.log");
  EXPECT_EQ(again.audit.syslog.host, s.host);
  EXPECT_EQ(again.audit.syslog.port, s.port);
  EXPECT_EQ(again.audit.syslog.privateKey, s.privateKey);
  EXPECT_EQ(again.audit.syslog.appName, s.appName);
}

TEST(ConfigAudit, SyslogDefaultsToPort6514AndAppNamePacsgw) {
  const Config c = parseConfig(document("audit: { syslog: { host: 10.1.2.3, ca_bundle: /ca.pem } }\n"));
  EXPECT_EQ(c.audit.syslog.port, 6514);
  EXPECT_EQ(c.audit.syslog.appName, "pacsgw");
  EXPECT_EQ(c.audit.syslog.retryMaxSeconds, 60u);
  EXPECT_TRUE(c.audit.syslog.certificate.empty());
}

TEST(ConfigAudit, MistakesAreNamedAtTheirKey) {
  EXPECT_NE(messagesOf(document("audit: { syslog: { host: h } }\n")).find("audit.syslog.ca_bundle: is required"),
            std::string::npos)
      << messagesOf(document("audit: { syslog: { host: h } }\n"));
  EXPECT_NE(messagesOf(document("audit: { syslog: { ca_bundle: /ca.pem } }\n")).find("audit.syslog.host: is required"),
            std::string::npos);
  EXPECT_NE(messagesOf(document("audit: { syslog: { host: h, ca_bundle: /c, certificate: /x } }\n"))
                .find("set both certificate and private_key"),
            std::string::npos);
  EXPECT_NE(messagesOf(document("audit: { syslog: { host: h, ca_bundle: /c, app_name: \"my app\" } }\n"))
                .find("audit.syslog.app_name: must be 1 to 48 printable ASCII"),
            std::string::npos);
  EXPECT_NE(messagesOf(document("audit: { syslog: { host: h, ca_bundle: /c, port: 0 } }\n")).find("audit.syslog.port"),
            std::string::npos);
  EXPECT_NE(messagesOf(document("audit: { file: /x }\n")).find("audit.file: unknown key"), std::string::npos)
      << messagesOf(document("audit: { file: /x }\n"));
  EXPECT_NE(messagesOf(document("audit: { syslog: { host: h, ca_bundle: /c, tls: yes } }\n"))
                .find("audit.syslog.tls: unknown key"),
            std::string::npos);
}

TEST(ConfigAudit, ConfigCheckNamesAMissingLogDirectoryAndUnreadableTlsFiles) {
  const Config c = parseConfig(document(
      "audit:\n  path: /nonexistent-pacsgw-dir/audit.log\n  syslog: { host: h, ca_bundle: /nonexistent-ca.pem }\n"));
  std::string found;
  for (const ConfigIssue& issue : checkFiles(c)) found += issue.key + ": " + issue.message + "\n";
  EXPECT_NE(found.find("audit.path: directory /nonexistent-pacsgw-dir does not exist"), std::string::npos) << found;
  EXPECT_NE(found.find("audit.syslog.ca_bundle: /nonexistent-ca.pem is missing or not readable"), std::string::npos)
      << found;
}
