// Built-in defaults and YAML output (`pacsgw config defaults`, writing a configuration back out).
#include "config/config.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

namespace pacsgw::config {

namespace {

// Words a YAML 1.1 or 1.2 reader could take for null or a boolean if left unquoted.
bool isSpecialWord(const std::string& text) {
  std::string lower = text;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  static const char* const words[] = {"~", "null", "true", "false", "yes", "no", "on", "off", "y", "n"};
  return std::any_of(std::begin(words), std::end(words), [&](const char* word) { return lower == word; });
}

// Emits a string as a plain scalar when that is unambiguous, otherwise double-quoted.
std::string scalar(const std::string& text) {
  const bool plain = !text.empty() && !isSpecialWord(text) &&
                     (std::isalnum(static_cast<unsigned char>(text[0])) || text[0] == '/' || text[0] == '_') &&
                     std::all_of(text.begin(), text.end(), [](char ch) {
                       const auto c = static_cast<unsigned char>(ch);
                       return std::isalnum(c) || c == '_' || c == '-' || c == '.' || c == '/';
                     });
  if (plain) return text;
  std::string out = "\"";
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c == 0x7f) {
      static const char digits[] = "0123456789abcdef";
      out += "\\x";
      out += digits[c >> 4];
      out += digits[c & 0xf];
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string joinPath(const std::string& dir, const std::string& name) {
  return (std::filesystem::path(dir) / name).string();
}

}  // namespace

Config embeddedDefaults(const std::string& dataDir) {
  Config c;
  c.sourcePath = "<built-in defaults>";
  c.gateway.aeTitle = "GATEWAY";
  c.gateway.bind = "127.0.0.1";  // loopback until an operator decides otherwise
  c.gateway.port = 11112;
  c.gateway.dataDir = dataDir;
  c.upstream = {"ORTHANC", "127.0.0.1", 4242};
  c.keystore.path = joinPath(dataDir, "keystore.db");
  c.keystore.masterKeyFile = joinPath(dataDir, "master.key");
  c.cipher.backend = "aes-256-gcm";
  c.cipher.keyScope = "study";
  c.cipher.device = "cpu";
  c.cipher.passthroughUnencrypted = false;
  c.modalities = {{"CT1", "127.0.0.1"}, {"STORESCU", "127.0.0.1"}};
  c.workstations = {{"WS1", "127.0.0.1", 11120, Access::Decrypt}};
  return c;
}

std::string toYaml(const Config& c) {
  std::string y;
  auto line = [&y](const std::string& text) { y += text + "\n"; };
  auto field = [&](const char* name, const std::string& value) { line(std::string("  ") + name + ": " + value); };

  line("# pacsgw configuration (see docs/configuration.md for every key)");
  line("gateway:");
  field("ae_title", scalar(c.gateway.aeTitle));
  field("bind", scalar(c.gateway.bind));
  if (c.gateway.port != 0) field("port", std::to_string(c.gateway.port));
  if (c.gateway.tls.enabled) {
    line("  tls:");
    field("  port", std::to_string(c.gateway.tls.port));
    field("  certificate", scalar(c.gateway.tls.certificate));
    field("  private_key", scalar(c.gateway.tls.privateKey));
    field("  ca_bundle", scalar(c.gateway.tls.caBundle));
    field("  profile", scalar(c.gateway.tls.profile));
  }
  field("data_dir", scalar(c.gateway.dataDir));
  field("max_associations", std::to_string(c.gateway.maxAssociations));
  field("max_pdu_bytes", std::to_string(c.gateway.maxPduBytes));
  field("connect_timeout_s", std::to_string(c.gateway.connectTimeoutSeconds));
  field("acse_timeout_s", std::to_string(c.gateway.acseTimeoutSeconds));
  field("dimse_timeout_s", std::to_string(c.gateway.dimseTimeoutSeconds));
  field("log_level", scalar(c.gateway.logLevel));
  field("log_format", scalar(c.gateway.logFormat));

  line("");
  line("# The PACS that stores the encrypted objects.");
  line("upstream:");
  field("ae_title", scalar(c.upstream.aeTitle));
  field("host", scalar(c.upstream.host));
  field("port", std::to_string(c.upstream.port));
  line("  # sync: the modality gets the PACS's own answer; queued: Success once durably spooled");
  field("forward", scalar(c.upstream.forward));
  if (c.upstream.tls) field("tls", *c.upstream.tls ? "true" : "false");
  if (!c.upstream.certificateIdentity.empty()) field("certificate_identity", scalar(c.upstream.certificateIdentity));

  line("");
  line("# The durable spool used with upstream.forward: queued.");
  line("spool:");
  field("dir", scalar(spoolDirectory(c)));
  field("max_bytes", std::to_string(c.spool.maxBytes));
  field("max_instances", std::to_string(c.spool.maxInstances));
  field("associations", std::to_string(c.spool.associations));
  field("retry_initial_s", std::to_string(c.spool.retryInitialSeconds));
  field("retry_max_s", std::to_string(c.spool.retryMaxSeconds));
  field("processing_failure_attempts", std::to_string(c.spool.processingFailureAttempts));
  field("broken_association_attempts", std::to_string(c.spool.brokenAssociationAttempts));

  line("");
  line("keystore:");
  if (!c.keystore.path.empty()) field("path", scalar(c.keystore.path));
  if (!c.keystore.postgres.empty()) field("postgres", scalar(c.keystore.postgres));
  if (!c.keystore.masterKeyFile.empty()) field("master_key_file", scalar(c.keystore.masterKeyFile));
  if (!c.keystore.masterKeyEnv.empty()) field("master_key_env", scalar(c.keystore.masterKeyEnv));
  if (c.keystore.usesPkcs11()) {
    line("  master_key:");
    line("    provider: pkcs11");
    line("    module: " + scalar(c.keystore.pkcs11.module));
    line("    token_label: " + scalar(c.keystore.pkcs11.tokenLabel));
    line("    key_label: " + scalar(c.keystore.pkcs11.keyLabel));
    if (!c.keystore.pkcs11.pinFile.empty()) line("    pin_file: " + scalar(c.keystore.pkcs11.pinFile));
    if (!c.keystore.pkcs11.pinEnv.empty()) line("    pin_env: " + scalar(c.keystore.pkcs11.pinEnv));
  }
  if (!c.keystore.anchorFile.empty()) field("anchor_file", scalar(c.keystore.anchorFile));
  if (!c.keystore.escrowDir.empty()) field("escrow_dir", scalar(c.keystore.escrowDir));

  line("");
  line("cipher:");
  field("backend", scalar(c.cipher.backend));
  field("key_scope", scalar(c.cipher.keyScope));
  field("device", scalar(c.cipher.device));
  field("passthrough_unencrypted", c.cipher.passthroughUnencrypted ? "true" : "false");
  if (!c.cipher.passthroughBefore.empty()) field("passthrough_before", scalar(c.cipher.passthroughBefore));
  if (!c.cipher.model.empty()) field("model", scalar(c.cipher.model));
  if (c.cipher.allowLossy) field("allow_lossy", "true");

  if (c.metrics.enabled) {
    line("");
    line("# HTTP listener for /metrics (Prometheus) and /health/live, /health/ready.");
    line("metrics:");
    field("bind", scalar(c.metrics.bind));
    field("port", std::to_string(c.metrics.port));
  }

  line("");
  line("# DICOM audit messages (RFC 3881 XML): the local log, and a syslog receiver over TLS if configured.");
  line("audit:");
  field("path", scalar(auditLogPath(c)));
  if (c.audit.syslog.enabled) {
    const AuditSyslogSection& s = c.audit.syslog;
    line("  syslog:");
    line("    host: " + scalar(s.host));
    line("    port: " + std::to_string(s.port));
    line("    ca_bundle: " + scalar(s.caBundle));
    if (!s.certificate.empty()) line("    certificate: " + scalar(s.certificate));
    if (!s.privateKey.empty()) line("    private_key: " + scalar(s.privateKey));
    line("    app_name: " + scalar(s.appName));
    line("    retry_max_s: " + std::to_string(s.retryMaxSeconds));
  }

  line("");
  line("# Limits against hostile or broken peers (docs/configuration.md).");
  line("limits:");
  field("association_request_timeout_s", std::to_string(c.limits.associationRequestTimeoutSeconds));
  field("max_connections", std::to_string(c.limits.maxConnections));
  field("max_connections_per_address", std::to_string(c.limits.maxConnectionsPerAddress));
  field("max_object_mb", std::to_string(c.limits.maxObjectMb));
  field("max_association_mb", std::to_string(c.limits.maxAssociationMb));
  field("max_in_flight_mb", std::to_string(c.limits.maxInFlightMb));
  field("stream_above_mb", std::to_string(c.limits.streamAboveMb));

  line("");
  line("# Devices allowed to send (C-STORE) to the gateway.");
  if (c.modalities.empty()) {
    line("modalities: []");
  } else {
    line("modalities:");
    for (const Modality& m : c.modalities) {
      line("  - ae_title: " + scalar(m.aeTitle));
      line("    host: " + scalar(m.host));
      if (m.tls) line(std::string("    tls: ") + (*m.tls ? "true" : "false"));
      if (!m.certificateIdentity.empty()) line("    certificate_identity: " + scalar(m.certificateIdentity));
    }
  }

  line("");
  line("# Devices allowed to query and retrieve, and what they receive.");
  if (c.workstations.empty()) {
    line("workstations: []");
  } else {
    line("workstations:");
    for (const Workstation& w : c.workstations) {
      line("  - ae_title: " + scalar(w.aeTitle));
      line("    host: " + scalar(w.host));
      line("    port: " + std::to_string(w.port));
      line(std::string("    access: ") + toString(w.access));
      if (w.moveDestinations) {
        std::string list;
        for (const auto& ae : *w.moveDestinations) list += (list.empty() ? "" : ", ") + scalar(ae);
        line("    move_destinations: [" + list + "]");
      }
      if (w.tls) line(std::string("    tls: ") + (*w.tls ? "true" : "false"));
      if (!w.certificateIdentity.empty()) line("    certificate_identity: " + scalar(w.certificateIdentity));
    }
  }
  if (c.relay) {
    line("");
    line("# Site-to-site relay: this gateway's relay key pair and the peer gateways it trusts.");
    line("relay:");
    line("  certificate: " + scalar(c.relay->certificate));
    line("  private_key: " + scalar(c.relay->privateKey));
    line("  peers:");
    for (const RelayPeer& p : c.relay->peers) {
      line("    - name: " + scalar(p.name));
      line("      ae_title: " + scalar(p.aeTitle));
      line("      host: " + scalar(p.host));
      line("      port: " + std::to_string(p.port));
      line("      certificate: " + scalar(p.certificate));
      if (p.tls) line(std::string("      tls: ") + (*p.tls ? "true" : "false"));
      if (!p.certificateIdentity.empty()) line("      certificate_identity: " + scalar(p.certificateIdentity));
    }
  }
  return y;
}

}  // namespace pacsgw::config
