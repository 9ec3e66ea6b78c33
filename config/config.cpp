// YAML loading and schema validation. Every problem is collected (never stop at the first) so that an
// operator fixes the whole file in one pass.
#include "config/config.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdio>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

namespace pacsgw::config {

namespace {

constexpr std::size_t kMaxConfigBytes = 1024 * 1024;  // a real config is a few KiB
constexpr std::size_t kMaxAeTitle = 16;
constexpr std::size_t kMaxHost = 253;

std::string renderIssues(const std::vector<ConfigIssue>& issues, const std::string& sourcePath) {
  std::string out;
  for (const ConfigIssue& issue : issues) {
    if (!out.empty()) out += '\n';
    if (!sourcePath.empty()) out += sourcePath + ": ";
    if (!issue.key.empty()) out += issue.key + ": ";
    out += issue.message;
  }
  return out.empty() ? "invalid configuration" : out;
}

// Quotes a value found in the file for a message: control characters escaped, long values cut.
std::string quoted(const std::string& text) {
  std::string out = "'";
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (i == 80) {
      out += "...";
      break;
    }
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) {
      static const char digits[] = "0123456789abcdef";
      out += "\\x";
      out += digits[c >> 4];
      out += digits[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "'";
}

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Null: return "nothing";
    case YAML::NodeType::Scalar: return quoted(node.Scalar());
    default: return "an undefined value";
  }
}

std::string lineOf(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  if (mark.line < 0) return {};
  return " (line " + std::to_string(mark.line + 1) + ")";
}

std::string join(const std::string& path, const std::string& name) { return path.empty() ? name : path + "." + name; }

std::string listOf(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& name : names) out += (out.empty() ? "" : ", ") + name;
  return out;
}

// "maxPduBytes", "max-pdu-bytes" and "MAX_PDU_BYTES" all normalise to "maxpdubytes".
std::string normalised(const std::string& name) {
  std::string out;
  for (char c : name) {
    if (c != '_' && c != '-') out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

std::size_t editDistance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::optional<std::string> suggestion(const std::string& unknown, const std::vector<std::string>& allowed) {
  for (const std::string& name : allowed) {
    if (normalised(name) == normalised(unknown)) return name;
  }
  // Short names get a tighter bound, or "port" would suggest "host".
  const std::size_t maxDistance = unknown.size() < 6 ? 1 : 2;
  for (const std::string& name : allowed) {
    if (editDistance(unknown, name) <= maxDistance) return name;
  }
  return std::nullopt;
}

std::optional<std::string> aeTitleProblem(const std::string& value) {
  if (value.empty()) return "must be 1 to 16 characters, got an empty string";
  if (value.size() > kMaxAeTitle) {
    return "must be at most 16 characters, got " + std::to_string(value.size()) + " (" + quoted(value) + ")";
  }
  for (char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) return "must not contain control characters, got " + quoted(value);
    if (c == '\\') return "must not contain a backslash, got " + quoted(value);
    if (c > 0x7f) return "must use ASCII characters only, got " + quoted(value);
  }
  if (value.find_first_not_of(' ') == std::string::npos) return "must not be all spaces";
  return std::nullopt;
}

std::optional<std::string> hostProblem(const std::string& value) {
  if (value.size() > kMaxHost) return "must be a host name or IP address (at most 253 characters)";
  for (char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7f) return "must be a host name or IP address without spaces, got " + quoted(value);
  }
  return std::nullopt;
}

bool isEnvVarName(const std::string& name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

// DICOM AE titles compare without leading/trailing spaces.
std::string aeKey(const std::string& aeTitle) {
  const auto first = aeTitle.find_first_not_of(' ');
  if (first == std::string::npos) return {};
  return aeTitle.substr(first, aeTitle.find_last_not_of(' ') - first + 1);
}

// The fields of one YAML map, keyed by name, after unknown and duplicate keys were reported.
struct Fields {
  std::string path;
  std::map<std::string, YAML::Node> byName;
  const YAML::Node* find(const std::string& name) const {
    const auto it = byName.find(name);
    return it == byName.end() ? nullptr : &it->second;
  }
};

class Validator {
 public:
  std::vector<ConfigIssue> issues;

  void add(const std::string& key, const std::string& message) { issues.push_back({key, message}); }

  // Checks that `node` is a map, reports unknown and repeated keys, and returns its known fields.
  std::optional<Fields> map(const YAML::Node& node, const std::string& path, const std::vector<std::string>& allowed) {
    if (!node.IsMap()) {
      add(path, "expected a map with keys " + listOf(allowed) + ", got " + describe(node) + lineOf(node));
      return std::nullopt;
    }
    Fields fields{path, {}};
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!it->first.IsScalar()) {
        add(path, "keys must be plain names, got " + describe(it->first) + lineOf(it->first));
        continue;
      }
      const std::string name = it->first.Scalar();
      const std::string key = join(path, name);
      if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
        const auto better = suggestion(name, allowed);
        add(key, (better ? "unknown key; did you mean '" + *better + "'?"
                         : "unknown key (allowed here: " + listOf(allowed) + ")") +
                     lineOf(it->first));
        continue;
      }
      if (!fields.byName.emplace(name, it->second).second) {
        add(key, "appears more than once" + lineOf(it->first));
      }
    }
    return fields;
  }

  // A section or list that may be absent or empty: returns nullptr then.
  const YAML::Node* present(const Fields& fields, const std::string& name) {
    const YAML::Node* node = fields.find(name);
    return (node == nullptr || node->IsNull()) ? nullptr : node;
  }

  // A non-empty string; reports a missing value when required.
  std::optional<std::string> text(const Fields& fields, const std::string& name, bool required) {
    const std::string key = join(fields.path, name);
    const YAML::Node* node = fields.find(name);
    if (node == nullptr) {
      if (required) add(key, "is required but missing");
      return std::nullopt;
    }
    if (node->IsNull()) {
      add(key,
          std::string(required ? "is required but has no value" : "has no value; remove the key to use the default") +
              lineOf(*node));
      return std::nullopt;
    }
    if (!node->IsScalar()) {
      add(key, "expected a text value, got " + describe(*node) + lineOf(*node));
      return std::nullopt;
    }
    if (node->Scalar().empty()) {
      add(key, "must not be empty" + lineOf(*node));
      return std::nullopt;
    }
    return node->Scalar();
  }

  std::optional<long long> integer(const Fields& fields, const std::string& name, bool required, long long min,
                                   long long max) {
    const std::string key = join(fields.path, name);
    const std::string range = "between " + std::to_string(min) + " and " + std::to_string(max);
    const YAML::Node* node = fields.find(name);
    if (node == nullptr) {
      if (required) add(key, "is required but missing (an integer " + range + ")");
      return std::nullopt;
    }
    if (!node->IsScalar()) {
      add(key, "must be an integer " + range + ", got " + describe(*node) + lineOf(*node));
      return std::nullopt;
    }
    const std::string& s = node->Scalar();
    const bool negative = !s.empty() && s[0] == '-';
    const char* digits = s.data() + (negative ? 1 : 0);
    const char* end = s.data() + s.size();
    long long magnitude = 0;
    const auto [stop, error] = std::from_chars(digits, end, magnitude);
    const bool allDigits = digits != end && stop == end &&
                           std::all_of(digits, end, [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
    if (!allDigits) {
      add(key, "must be an integer " + range + ", got " + quoted(s) + lineOf(*node));
      return std::nullopt;
    }
    if (error == std::errc::result_out_of_range || (negative ? -magnitude : magnitude) < min ||
        (negative ? -magnitude : magnitude) > max) {
      add(key, "must be " + range + ", got " + s + lineOf(*node));
      return std::nullopt;
    }
    return negative ? -magnitude : magnitude;
  }

  std::optional<std::uint16_t> port(const Fields& fields, const std::string& name, bool required) {
    const auto value = integer(fields, name, required, 1, 65535);
    if (!value) return std::nullopt;
    return static_cast<std::uint16_t>(*value);
  }

  std::optional<bool> boolean(const Fields& fields, const std::string& name) {
    const std::string key = join(fields.path, name);
    const YAML::Node* node = fields.find(name);
    if (node == nullptr) return std::nullopt;
    if (node->IsScalar()) {
      std::string s = node->Scalar();
      std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
      if (s == "true") return true;
      if (s == "false") return false;
    }
    add(key, "must be true or false, got " + describe(*node) + lineOf(*node));
    return std::nullopt;
  }

  std::optional<std::string> oneOf(const Fields& fields, const std::string& name, bool required,
                                   const std::vector<std::string>& allowed) {
    const auto value = text(fields, name, required);
    if (!value) return std::nullopt;
    if (std::find(allowed.begin(), allowed.end(), *value) == allowed.end()) {
      add(join(fields.path, name),
          "must be one of " + listOf(allowed) + ", got " + quoted(*value) + lineOf(*fields.find(name)));
      return std::nullopt;
    }
    return value;
  }

  std::optional<std::string> aeTitle(const Fields& fields, const std::string& name) {
    const std::string key = join(fields.path, name);
    const YAML::Node* node = fields.find(name);
    if (node != nullptr && node->IsScalar() && node->Scalar().empty()) {
      add(key, "must be 1 to 16 characters, got an empty string" + lineOf(*node));
      return std::nullopt;
    }
    auto value = text(fields, name, true);
    if (!value) return std::nullopt;
    if (auto problem = aeTitleProblem(*value)) {
      add(key, *problem + lineOf(*node));
      return std::nullopt;
    }
    return value;
  }

  std::optional<std::string> host(const Fields& fields, const std::string& name, bool required) {
    auto value = text(fields, name, required);
    if (!value) return std::nullopt;
    if (auto problem = hostProblem(*value)) {
      add(join(fields.path, name), *problem + lineOf(*fields.find(name)));
      return std::nullopt;
    }
    return value;
  }

  template <typename T, typename V>
  static void assign(T& target, const std::optional<V>& value) {
    if (value) target = static_cast<T>(*value);
  }

  // A required section: reports its absence; returns its fields when it is a map.
  std::optional<Fields> section(const Fields& top, const std::string& name, const std::vector<std::string>& allowed,
                                bool required) {
    const YAML::Node* node = top.find(name);
    if (node == nullptr || node->IsNull()) {
      if (required)
        add(name, node == nullptr ? "required section is missing" : "required section is empty" + lineOf(*node));
      return std::nullopt;
    }
    return map(*node, name, allowed);
  }

  void gateway(const Fields& top, GatewaySection& out) {
    const auto f = section(top, "gateway",
                           {"ae_title", "bind", "port", "data_dir", "max_associations", "max_pdu_bytes",
                            "connect_timeout_s", "acse_timeout_s", "dimse_timeout_s", "log_level", "log_format",
                            "tls"},
                           true);
    if (!f) return;
    tls(*f, out.tls);
    assign(out.aeTitle, aeTitle(*f, "ae_title"));
    assign(out.bind, host(*f, "bind", false));
    // With TLS the plain listener is optional: present only for legacy peers.
    assign(out.port, port(*f, "port", !out.tls.enabled));
    if (out.tls.enabled && out.port != 0 && out.port == out.tls.port)
      add("gateway.tls.port", "must differ from gateway.port (the plain listener), both are " + std::to_string(out.port));
    assign(out.dataDir, text(*f, "data_dir", false));
    assign(out.maxAssociations, integer(*f, "max_associations", false, 1, 1000));
    assign(out.maxPduBytes, integer(*f, "max_pdu_bytes", false, 4096, 131072));
    assign(out.connectTimeoutSeconds, integer(*f, "connect_timeout_s", false, 1, 3600));
    assign(out.acseTimeoutSeconds, integer(*f, "acse_timeout_s", false, 1, 3600));
    assign(out.dimseTimeoutSeconds, integer(*f, "dimse_timeout_s", false, 1, 3600));
    assign(out.logLevel, oneOf(*f, "log_level", false, {"trace", "debug", "info", "warn", "error"}));
    assign(out.logFormat, oneOf(*f, "log_format", false, {"text", "json"}));
  }

  void tls(const Fields& gatewayFields, TlsSection& out) {
    const YAML::Node* node = present(gatewayFields, "tls");
    if (node == nullptr) return;
    const auto f = map(*node, "gateway.tls", {"port", "certificate", "private_key", "ca_bundle", "profile"});
    if (!f) return;
    out.enabled = true;
    assign(out.port, port(*f, "port", true));
    assign(out.certificate, text(*f, "certificate", true));
    assign(out.privateKey, text(*f, "private_key", true));
    assign(out.caBundle, text(*f, "ca_bundle", true));
    assign(out.profile, oneOf(*f, "profile", false, {"bcp195-nd", "bcp195", "bcp195-extended"}));
  }

  // A peer's `tls` and `certificate_identity` keys; TLS to a peer needs the gateway's own TLS identity.
  void peerTransport(const Fields& f, bool gatewayTls, std::optional<bool>& tlsOut, std::string& identityOut) {
    tlsOut = boolean(f, "tls");
    assign(identityOut, text(f, "certificate_identity", false));
    const bool usesTls = tlsOut.value_or(gatewayTls);
    if (tlsOut.value_or(false) && !gatewayTls)
      add(join(f.path, "tls"), "TLS to this peer needs the gateway's own certificate: configure gateway.tls");
    if (!identityOut.empty() && !usesTls)
      add(join(f.path, "certificate_identity"),
          "a certificate identity can only be checked over TLS (this peer is plain: set tls: true and gateway.tls)");
    if (!identityOut.empty()) {
      const auto colon = identityOut.find(':');
      const std::string kind = colon == std::string::npos ? "" : identityOut.substr(0, colon);
      const bool san = kind == "DNS" || kind == "IP" || kind == "URI" || kind == "email";
      if (!san && identityOut.find('=') == std::string::npos)
        add(join(f.path, "certificate_identity"),
            "must be CN=<name>, a subject DN (CN=...,O=...) or DNS:/IP:/URI:/email:<value>, got " +
                pacsgw::config::quoted(identityOut));
    }
  }

  void upstream(const Fields& top, UpstreamSection& out, bool gatewayTls) {
    const auto f = section(top, "upstream",
                           {"ae_title", "host", "port", "forward", "tls", "certificate_identity"}, true);
    if (!f) return;
    assign(out.aeTitle, aeTitle(*f, "ae_title"));
    assign(out.host, host(*f, "host", true));
    assign(out.port, port(*f, "port", true));
    assign(out.forward, oneOf(*f, "forward", false, {"sync", "queued"}));
    peerTransport(*f, gatewayTls, out.tls, out.certificateIdentity);
  }

  void spool(const Fields& top, SpoolSection& out) {
    const auto f = section(top, "spool",
                           {"dir", "max_bytes", "max_instances", "associations", "retry_initial_s", "retry_max_s",
                            "processing_failure_attempts", "broken_association_attempts"},
                           false);
    if (!f) return;
    assign(out.dir, text(*f, "dir", false));
    assign(out.maxBytes, integer(*f, "max_bytes", false, 1 << 20, 1ll << 50));
    assign(out.maxInstances, integer(*f, "max_instances", false, 1, 100000000));
    assign(out.associations, integer(*f, "associations", false, 1, 16));
    assign(out.retryInitialSeconds, integer(*f, "retry_initial_s", false, 1, 3600));
    assign(out.retryMaxSeconds, integer(*f, "retry_max_s", false, 1, 86400));
    assign(out.processingFailureAttempts, integer(*f, "processing_failure_attempts", false, 1, 100));
    assign(out.brokenAssociationAttempts, integer(*f, "broken_association_attempts", false, 1, 1000));
    if (out.retryMaxSeconds < out.retryInitialSeconds) {
      add("spool.retry_max_s", "must not be below spool.retry_initial_s (" + std::to_string(out.retryInitialSeconds) +
                                   ")");
    }
  }

  void keystore(const Fields& top, KeystoreSection& out) {
    const auto f = section(top, "keystore",
                           {"path", "postgres", "master_key_file", "master_key_env", "master_key", "anchor_file",
                            "escrow_dir"},
                           true);
    if (!f) return;
    const bool postgresGiven = f->find("postgres") != nullptr;
    assign(out.path, text(*f, "path", !postgresGiven));
    assign(out.postgres, text(*f, "postgres", false));
    if (postgresGiven && f->find("path") != nullptr) {
      add("keystore", "set either path (SQLite keystore) or postgres (shared PostgreSQL keystore), not both");
    }
    assign(out.anchorFile, text(*f, "anchor_file", false));
    assign(out.escrowDir, text(*f, "escrow_dir", false));
    const auto file = text(*f, "master_key_file", false);
    const auto env = text(*f, "master_key_env", false);
    if (env && !isEnvVarName(*env)) {
      add("keystore.master_key_env", "must be an environment variable name (letters, digits, _), got " + quoted(*env) +
                                         lineOf(*f->find("master_key_env")));
    } else {
      assign(out.masterKeyEnv, env);
    }
    assign(out.masterKeyFile, file);
    const bool fileGiven = f->find("master_key_file") != nullptr;
    const bool envGiven = f->find("master_key_env") != nullptr;
    const bool providerGiven = f->find("master_key") != nullptr;
    if (providerGiven) masterKey(*f, out);
    if (int(fileGiven) + int(envGiven) + int(providerGiven) > 1) {
      add("keystore", "set exactly one of master_key_file, master_key_env or master_key, not several");
    } else if (!fileGiven && !envGiven && !providerGiven) {
      add("keystore", "one of master_key_file, master_key_env or master_key is required (where the master key comes "
                      "from)");
    }
  }

  // keystore.master_key: {provider: file, path} | {provider: env, variable} |
  //                      {provider: pkcs11, module, token_label, key_label, pin_file | pin_env}
  void masterKey(const Fields& keystore, KeystoreSection& out) {
    const auto f = map(*keystore.find("master_key"), "keystore.master_key",
                       {"provider", "path", "variable", "module", "token_label", "key_label", "pin_file", "pin_env"});
    if (!f) return;
    const auto provider = oneOf(*f, "provider", true, {"file", "env", "pkcs11"});
    if (!provider) return;
    const auto only = [&](const std::vector<std::string>& allowed) {
      for (const auto& [name, node] : f->byName) {
        if (name != "provider" && std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
          add("keystore.master_key." + name, "does not apply to provider " + *provider + lineOf(node));
        }
      }
    };
    if (*provider == "file") {
      only({"path"});
      assign(out.masterKeyFile, text(*f, "path", true));
      return;
    }
    if (*provider == "env") {
      only({"variable"});
      const auto variable = text(*f, "variable", true);
      if (variable && !isEnvVarName(*variable)) {
        add("keystore.master_key.variable", "must be an environment variable name (letters, digits, _), got " +
                                                quoted(*variable) + lineOf(*f->find("variable")));
      } else {
        assign(out.masterKeyEnv, variable);
      }
      return;
    }
    only({"module", "token_label", "key_label", "pin_file", "pin_env"});
    assign(out.pkcs11.module, text(*f, "module", true));
    assign(out.pkcs11.tokenLabel, text(*f, "token_label", true));
    assign(out.pkcs11.keyLabel, text(*f, "key_label", true));
    assign(out.pkcs11.pinFile, text(*f, "pin_file", false));
    const auto pinEnv = text(*f, "pin_env", false);
    if (pinEnv && !isEnvVarName(*pinEnv)) {
      add("keystore.master_key.pin_env", "must be an environment variable name (letters, digits, _), got " +
                                             quoted(*pinEnv) + lineOf(*f->find("pin_env")));
    } else {
      assign(out.pkcs11.pinEnv, pinEnv);
    }
    const bool pinFile = f->find("pin_file") != nullptr, pinVariable = f->find("pin_env") != nullptr;
    if (pinFile == pinVariable) {
      add("keystore.master_key", "set exactly one of pin_file or pin_env (where the token's user PIN comes from)");
    }
  }

  void cipher(const Fields& top, CipherSection& out) {
    const auto f = section(top, "cipher", {"backend", "key_scope", "device", "passthrough_unencrypted", "passthrough_before", "model", "allow_lossy"}, false);
    if (!f) return;
    const auto backend = text(*f, "backend", false);
    if (backend && hostProblem(*backend)) {  // same rule: one word, no spaces or control characters
      add("cipher.backend",
          "must be a backend name without spaces, got " + quoted(*backend) + lineOf(*f->find("backend")));
    } else {
      assign(out.backend, backend);
    }
    assign(out.keyScope, oneOf(*f, "key_scope", false, {"study", "series", "instance"}));
    assign(out.device, oneOf(*f, "device", false, {"cpu", "cuda", "auto"}));
    assign(out.passthroughUnencrypted, boolean(*f, "passthrough_unencrypted"));
    assign(out.model, text(*f, "model", false));
    assign(out.allowLossy, boolean(*f, "allow_lossy"));
    if (const auto before = text(*f, "passthrough_before", false)) {
      if (!isCalendarDate(*before)) {
        add("cipher.passthrough_before",
            "must be a date YYYYMMDD (e.g. 20250101), got " + quoted(*before) + lineOf(*f->find("passthrough_before")));
      } else {
        out.passthroughBefore = *before;
      }
    }
  }

  static bool isCalendarDate(const std::string& s) {
    if (s.size() != 8 || !std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); }))
      return false;
    const int year = std::stoi(s.substr(0, 4)), month = std::stoi(s.substr(4, 2)), day = std::stoi(s.substr(6, 2));
    return year >= 1900 && month >= 1 && month <= 12 && day >= 1 && day <= 31;
  }

  void metrics(const Fields& top, MetricsSection& out) {
    const auto f = section(top, "metrics", {"bind", "port"}, false);
    if (!f) return;
    out.enabled = true;
    assign(out.bind, host(*f, "bind", false));
    assign(out.port, port(*f, "port", true));
  }

  void audit(const Fields& top, AuditSection& out) {
    const auto f = section(top, "audit", {"path", "syslog"}, false);
    if (!f) return;
    assign(out.path, text(*f, "path", false));
    const YAML::Node* node = f->find("syslog");
    if (node == nullptr || node->IsNull()) return;
    const auto s = map(*node, "audit.syslog",
                       {"host", "port", "ca_bundle", "certificate", "private_key", "app_name", "retry_max_s"});
    if (!s) return;
    AuditSyslogSection& out2 = out.syslog;
    out2.enabled = true;
    assign(out2.host, host(*s, "host", true));
    assign(out2.port, port(*s, "port", false));
    assign(out2.caBundle, text(*s, "ca_bundle", true));
    assign(out2.certificate, text(*s, "certificate", false));
    assign(out2.privateKey, text(*s, "private_key", false));
    if ((s->find("certificate") == nullptr) != (s->find("private_key") == nullptr)) {
      add("audit.syslog", "set both certificate and private_key (client authentication), or neither");
    }
    if (const auto app = text(*s, "app_name", false)) {
      const bool printable = !app->empty() && app->size() <= 48 &&
                             std::all_of(app->begin(), app->end(), [](unsigned char c) { return c > 32 && c < 127; });
      if (!printable) {
        add("audit.syslog.app_name", "must be 1 to 48 printable ASCII characters without spaces, got " + quoted(*app) +
                                         lineOf(*s->find("app_name")));
      } else {
        out2.appName = *app;
      }
    }
    assign(out2.retryMaxSeconds, integer(*s, "retry_max_s", false, 1, 3600));
  }

  void limits(const Fields& top, LimitsSection& out) {
    const auto f = section(top, "limits",
                           {"association_request_timeout_s", "max_connections", "max_connections_per_address",
                            "max_object_mb", "max_association_mb", "max_in_flight_mb", "stream_above_mb"},
                           false);
    if (!f) return;
    assign(out.associationRequestTimeoutSeconds, integer(*f, "association_request_timeout_s", false, 1, 3600));
    assign(out.maxConnections, integer(*f, "max_connections", false, 0, 100000));
    assign(out.maxConnectionsPerAddress, integer(*f, "max_connections_per_address", false, 1, 100000));
    assign(out.maxObjectMb, integer(*f, "max_object_mb", false, 1, 65536));
    assign(out.maxAssociationMb, integer(*f, "max_association_mb", false, 1, 65536));
    assign(out.maxInFlightMb, integer(*f, "max_in_flight_mb", false, 1, 1048576));
    assign(out.streamAboveMb, integer(*f, "stream_above_mb", false, 0, 65536));
    if (out.maxAssociationMb < out.maxObjectMb)
      add("limits.max_association_mb", "must be at least limits.max_object_mb (" + std::to_string(out.maxObjectMb) +
                                           "), got " + std::to_string(out.maxAssociationMb));
    if (out.maxInFlightMb < out.maxAssociationMb)
      add("limits.max_in_flight_mb", "must be at least limits.max_association_mb (" +
                                         std::to_string(out.maxAssociationMb) + "), got " +
                                         std::to_string(out.maxInFlightMb));
  }

  // Visits each element of an optional list of maps; `visit` gets the element's fields and its path.
  template <typename Visit>
  void list(const Fields& top, const std::string& name, const std::vector<std::string>& allowed, Visit visit) {
    const YAML::Node* node = present(top, name);
    if (node == nullptr) return;
    if (!node->IsSequence()) {
      add(name, "expected a list, got " + describe(*node) + lineOf(*node));
      return;
    }
    for (std::size_t i = 0; i < node->size(); ++i) {
      const std::string path = name + "[" + std::to_string(i) + "]";
      if (auto f = map((*node)[i], path, allowed)) visit(*f, path);
    }
  }

  // An optional list of AE titles (YAML sequence of 1-16 character strings).
  std::optional<std::vector<std::string>> aeTitleList(const Fields& fields, const std::string& name) {
    const YAML::Node* node = fields.find(name);
    if (node == nullptr) return std::nullopt;
    const std::string key = join(fields.path, name);
    std::vector<std::string> out;
    if (!node->IsSequence()) {
      add(key, "expected a list of AE titles, got " + describe(*node) + lineOf(*node));
      return out;
    }
    for (const auto& item : *node) {
      if (!item.IsScalar() || item.Scalar().empty() || item.Scalar().size() > 16) {
        add(key, "every entry must be an AE title of 1 to 16 characters" + lineOf(item));
        continue;
      }
      out.push_back(item.Scalar());
    }
    return out;
  }

  // Reports a repeated AE title at the later occurrence.
  void unique(std::map<std::string, std::string>& seen, const std::optional<std::string>& aeTitle,
              const std::string& path) {
    if (!aeTitle) return;
    const auto [it, inserted] = seen.emplace(aeKey(*aeTitle), path);
    if (!inserted)
      add(path + ".ae_title", "duplicate AE title " + quoted(*aeTitle) + " (already used by " + it->second + ")");
  }

  void modalities(const Fields& top, std::vector<Modality>& out, bool gatewayTls) {
    std::map<std::string, std::string> seen;
    list(top, "modalities", {"ae_title", "host", "tls", "certificate_identity"},
         [&](const Fields& f, const std::string& path) {
      Modality m;
      const auto ae = aeTitle(f, "ae_title");
      const auto h = host(f, "host", true);
      peerTransport(f, gatewayTls, m.tls, m.certificateIdentity);
      unique(seen, ae, path);
      if (ae && h) {
        m.aeTitle = *ae;
        m.host = *h;
        out.push_back(m);
      }
    });
  }

  void relay(const Fields& top, Config& config) {
    const auto f = section(top, "relay", {"certificate", "private_key", "peers"}, false);
    if (!f) return;
    RelaySection out;
    assign(out.certificate, text(*f, "certificate", true));
    assign(out.privateKey, text(*f, "private_key", true));
    std::map<std::string, std::string> seen;
    for (const auto& w : config.workstations) seen.emplace(aeKey(w.aeTitle), "a workstation");
    std::map<std::string, std::string> names;
    const YAML::Node* node = present(*f, "peers");
    if (node == nullptr || !node->IsSequence() || node->size() == 0) {
      add("relay.peers", node == nullptr ? "at least one peer is required" : "expected a non-empty list" + lineOf(*node));
    } else {
      for (std::size_t i = 0; i < node->size(); ++i) {
        const std::string path = "relay.peers[" + std::to_string(i) + "]";
        const auto p = map((*node)[i], path,
                           {"name", "ae_title", "host", "port", "certificate", "tls", "certificate_identity"});
        if (!p) continue;
        const auto name = text(*p, "name", true);
        const auto ae = aeTitle(*p, "ae_title");
        const auto h = host(*p, "host", true);
        const auto port = this->port(*p, "port", true);
        const auto certificate = text(*p, "certificate", true);
        unique(seen, ae, path);
        if (name && !names.emplace(*name, path).second) add(path + ".name", "duplicate peer name " + quoted(*name));
        if (ae && aeKey(*ae) == aeKey(config.gateway.aeTitle))
          add(path + ".ae_title", "is this gateway's own AE title");
        RelayPeer peer;
        peerTransport(*p, config.gateway.tls.enabled, peer.tls, peer.certificateIdentity);
        if (name && ae && h && port && certificate) {
          peer.name = *name;
          peer.aeTitle = *ae;
          peer.host = *h;
          peer.port = *port;
          peer.certificate = *certificate;
          out.peers.push_back(std::move(peer));
        }
      }
    }
    config.relay = std::move(out);
  }

  void workstations(const Fields& top, std::vector<Workstation>& out, bool gatewayTls) {
    std::map<std::string, std::string> seen;
    list(top, "workstations",
         {"ae_title", "host", "port", "access", "move_destinations", "tls", "certificate_identity"},
         [&](const Fields& f, const std::string& path) {
      Workstation w;
      peerTransport(f, gatewayTls, w.tls, w.certificateIdentity);
      const auto ae = aeTitle(f, "ae_title");
      const auto h = host(f, "host", true);
      const auto p = port(f, "port", true);
      const auto access = oneOf(f, "access", true, {"decrypt", "ciphertext", "deny"});
      unique(seen, ae, path);
      if (ae && h && p && access) {
        w.aeTitle = *ae;
        w.host = *h;
        w.port = *p;
        w.access = accessFromString(*access);
        w.moveDestinations = aeTitleList(f, "move_destinations");
        out.push_back(w);
      }
    });
  }
};

}  // namespace

ConfigError::ConfigError(std::vector<ConfigIssue> issues)
    : ConfigError(InFileTag{}, std::move(issues), std::string()) {}

ConfigError::ConfigError(InFileTag, std::vector<ConfigIssue> issues, const std::string& sourcePath)
    : std::runtime_error(renderIssues(issues, sourcePath)), issues_(std::move(issues)), sourcePath_(sourcePath) {}

ConfigError ConfigError::inFile(std::vector<ConfigIssue> issues, const std::string& sourcePath) {
  return ConfigError(InFileTag{}, std::move(issues), sourcePath);
}

std::string auditLogPath(const Config& config) {
  if (!config.audit.path.empty()) return config.audit.path;
  return (std::filesystem::path(config.gateway.dataDir) / "audit.log").string();
}

std::string spoolDirectory(const Config& config) {
  if (!config.spool.dir.empty()) return config.spool.dir;
  return (std::filesystem::path(config.gateway.dataDir) / "spool").string();
}

Access accessFromString(const std::string& text) {
  if (text == "decrypt") return Access::Decrypt;
  if (text == "ciphertext") return Access::Ciphertext;
  if (text == "deny") return Access::Deny;
  throw std::invalid_argument("unknown access '" + text + "' (expected decrypt, ciphertext or deny)");
}

const char* toString(Access access) {
  switch (access) {
    case Access::Decrypt: return "decrypt";
    case Access::Ciphertext: return "ciphertext";
    case Access::Deny: return "deny";
  }
  return "deny";
}

namespace {

// Records where each document of a YAML stream starts; nothing else.
struct DocumentStarts : YAML::EventHandler {
  std::vector<YAML::Mark> marks;
  void OnDocumentStart(const YAML::Mark& mark) override { marks.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

// yaml-cpp 0.7's LoadAll never consumes some tokens at the top level (a file holding a lone ",") and then
// loops forever, adding an empty document per turn. Walk the documents with the event parser first: a
// document starting where the previous one started means no progress. Returns that position.
std::optional<YAML::Mark> tokenLoadAllCannotPass(const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentStarts starts;
  while (parser.HandleNextDocument(starts)) {
    const auto& m = starts.marks;
    if (m.size() >= 2 && m[m.size() - 1].pos == m[m.size() - 2].pos) {
      return m.back();
    }
  }
  return std::nullopt;
}

}  // namespace

Config parseConfig(const std::string& yamlText, const std::string& sourcePath) {
  // YAML allows no C0 control characters but tab and line breaks: refuse them with their position.
  std::size_t line = 1, column = 1;
  for (const char c : yamlText) {
    const auto byte = static_cast<unsigned char>(c);
    if ((byte < 0x20 && c != '\t' && c != '\n' && c != '\r') || byte == 0x7F) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "0x%02X", byte);
      throw ConfigError::inFile({{"", "control character " + std::string(hex) + " at line " + std::to_string(line) +
                                          ", column " + std::to_string(column) + " is not allowed in YAML"}},
                                sourcePath);
    }
    if (c == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  std::vector<YAML::Node> documents;
  try {
    if (auto stuck = tokenLoadAllCannotPass(yamlText)) {
      throw ConfigError::inFile({{"", "YAML syntax error at line " + std::to_string(stuck->line + 1) + ", column " +
                                          std::to_string(stuck->column + 1) + ": unexpected '" +
                                          yamlText.substr(static_cast<std::size_t>(std::max(stuck->pos, 0)), 1) +
                                          "'"}},
                                sourcePath);
    }
    documents = YAML::LoadAll(yamlText);
  } catch (const YAML::ParserException& e) {
    std::string where;
    if (e.mark.line >= 0) {
      where = " at line " + std::to_string(e.mark.line + 1) + ", column " + std::to_string(e.mark.column + 1);
    }
    throw ConfigError::inFile({{"", "YAML syntax error" + where + ": " + e.msg}}, sourcePath);
  } catch (const YAML::Exception& e) {
    throw ConfigError::inFile({{"", std::string("cannot parse YAML: ") + e.what()}}, sourcePath);
  }
  if (documents.size() > 1) {
    throw ConfigError::inFile({{"", "expected one YAML document, found " + std::to_string(documents.size()) +
                                        " (remove the extra '---' separators)"}},
                              sourcePath);
  }

  Config config;
  config.sourcePath = sourcePath;
  const YAML::Node root = documents.empty() ? YAML::Node() : documents.front();
  Validator v;
  std::optional<Fields> top;
  if (root.IsNull()) {
    top = Fields{"", {}};  // an empty file: report each missing section
  } else {
    top = v.map(root, "", {"gateway", "upstream", "keystore", "cipher", "metrics", "audit", "spool", "limits",
                           "modalities", "workstations", "relay"});
  }
  if (top) {
    v.gateway(*top, config.gateway);
    v.upstream(*top, config.upstream, config.gateway.tls.enabled);
    v.keystore(*top, config.keystore);
    v.cipher(*top, config.cipher);
    v.metrics(*top, config.metrics);
    v.audit(*top, config.audit);
    v.spool(*top, config.spool);
    v.limits(*top, config.limits);
    v.modalities(*top, config.modalities, config.gateway.tls.enabled);
    v.workstations(*top, config.workstations, config.gateway.tls.enabled);
    v.relay(*top, config);
  }
  if (!v.issues.empty()) throw ConfigError::inFile(std::move(v.issues), sourcePath);
  return config;
}

Config loadConfig(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw ConfigError::inFile({{"", "is a directory; expected a YAML configuration file"}}, path);
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError::inFile({{"", "cannot open the configuration file (missing or not readable)"}}, path);
  std::string text;
  char buffer[8192];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    text.append(buffer, static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxConfigBytes) {
      throw ConfigError::inFile({{"", "the configuration file is larger than 1 MiB; is this the right file?"}}, path);
    }
  }
  if (in.bad()) throw ConfigError::inFile({{"", "cannot read the configuration file"}}, path);
  return parseConfig(text, path);
}

}  // namespace pacsgw::config
