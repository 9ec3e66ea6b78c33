#pragma once
// The gateway's configuration: YAML schema, loading and validation with one precise message per problem.
#include <cstdint>
#include <stdexcept>
#include <optional>
#include <string>
#include <vector>

namespace pacsgw::config {

// DICOM TLS (PS3.15 secure transport, BCP 195): the TLS listener, and the identity the gateway shows
// and trusts on every TLS connection, incoming or outgoing. Absent section = plain DICOM only.
struct TlsSection {
  bool enabled = false;
  std::uint16_t port = 0;           // the TLS listener (required with the section)
  std::string certificate;          // the gateway's certificate chain (PEM)
  std::string privateKey;           // its private key (PEM, unencrypted, mode 0600)
  std::string caBundle;             // CAs that sign peer certificates (PEM); peers must present one
  std::string profile = "bcp195-nd";  // bcp195-nd | bcp195 | bcp195-extended
};

struct GatewaySection {
  std::string aeTitle;                  // required, 1..16 chars of the DICOM AE charset
  std::string bind = "0.0.0.0";
  // The plain DICOM listener: required without TLS; with gateway.tls only for peers marked tls: false
  // (0 = no plain listener).
  std::uint16_t port = 0;
  TlsSection tls;
  std::string dataDir = "/var/lib/pacsgw";
  unsigned maxAssociations = 32;        // concurrent inbound associations
  unsigned maxPduBytes = 65536;         // receive PDU size offered to peers (4096..131072)
  unsigned connectTimeoutSeconds = 10;  // TCP connect to a peer
  unsigned acseTimeoutSeconds = 30;     // association negotiation / release
  unsigned dimseTimeoutSeconds = 60;    // any single DIMSE message wait
  std::string logLevel = "info";        // trace|debug|info|warn|error
  std::string logFormat = "text";       // text|json (one JSON object per line)
};

struct UpstreamSection {  // the PACS
  std::string aeTitle;    // required
  std::string host;       // required
  std::uint16_t port = 0; // required
  std::string forward = "sync";  // sync: the modality gets the PACS's answer; queued: durable spool first
  std::optional<bool> tls;        // absent: TLS exactly when gateway.tls is configured
  std::string certificateIdentity;  // identity the PACS's certificate must carry (see CertificateIdentity)
};

// The durable store-and-forward spool (upstream.forward: queued).
struct SpoolSection {
  std::string dir;                             // empty: <gateway.data_dir>/spool
  std::uint64_t maxBytes = 10ull << 30;        // queued + quarantined bytes
  std::uint64_t maxInstances = 100000;         // queued + quarantined instances
  unsigned associations = 2;                   // concurrent deliveries to the PACS
  unsigned retryInitialSeconds = 1;            // first backoff; doubles up to retryMaxSeconds
  unsigned retryMaxSeconds = 60;
  unsigned processingFailureAttempts = 3;      // 0110 answers retried this often, then quarantined
  unsigned brokenAssociationAttempts = 10;     // associations one instance breaks in a row before quarantine
};

struct KeystoreSection {
  std::string path;            // SQLite file (required unless postgres is set)
  std::string postgres;        // libpq connection string of a shared PostgreSQL keystore
  std::string masterKeyFile;   // exactly one of masterKeyFile / masterKeyEnv / pkcs11
  std::string masterKeyEnv;
  // keystore.master_key with provider: pkcs11 -- the master key stays in a PKCS#11 token (an HSM).
  // (provider: file / env fill masterKeyFile / masterKeyEnv instead.)
  struct Pkcs11MasterKey {
    std::string module;      // the token's PKCS#11 library, loaded at run time
    std::string tokenLabel;
    std::string keyLabel;
    std::string pinFile;     // exactly one of pinFile / pinEnv
    std::string pinEnv;
  } pkcs11;
  bool usesPkcs11() const { return !pkcs11.module.empty(); }
  // Records which keystore is in use, outside the database; empty: "<master_key_file>.anchor", or
  // "<path>.anchor" when the master key comes from the environment. See docs/key-custody.md.
  std::string anchorFile;
  // Escrow journal directory on separate storage (another disk or host); empty: no escrow journal.
  std::string escrowDir;
};

struct CipherSection {
  std::string backend = "aes-256-gcm";
  std::string keyScope = "study";  // study|series|instance
  std::string device = "cpu";      // cpu|cuda|auto
  bool passthroughUnencrypted = false;  // retrieval: hand out objects that were never encrypted
  // With passthrough: only objects whose Study Date (YYYYMMDD) is before this day; empty = no date limit.
  std::string passthroughBefore;
  // Neural backends: a model file instead of the shipped one; empty = the backend's shipped model.
  std::string model;
  // Lossy backends: leave out the exact-retrieval envelope (retrieval then returns the model's
  // reconstruction, marked Lossy Image Compression = 01). Off: retrieval is bit-exact.
  bool allowLossy = false;
};

// The HTTP listener for /metrics and /health/*; absent section = no listener.
struct MetricsSection {
  bool enabled = false;
  std::string bind = "127.0.0.1";
  std::uint16_t port = 0;  // required when the section is present
};

// Where audit messages go: the local log, and optionally a syslog receiver over TLS (RFC 5425).
struct AuditSyslogSection {
  bool enabled = false;
  std::string host;
  std::uint16_t port = 6514;
  std::string caBundle;     // CA certificates that may sign the receiver's certificate (required)
  std::string certificate;  // client certificate for mutual authentication (optional, with privateKey)
  std::string privateKey;
  std::string appName = "pacsgw";
  unsigned retryMaxSeconds = 60;  // reconnect backoff cap
};

struct AuditSection {
  std::string path;  // empty = <gateway.data_dir>/audit.log
  AuditSyslogSection syslog;
};

// Protection against hostile or broken peers (see docs/configuration.md, "limits").
struct LimitsSection {
  unsigned associationRequestTimeoutSeconds = 5;  // TCP connect -> complete A-ASSOCIATE-RQ
  unsigned maxConnections = 0;                    // open connections; 0 = 2 x max_associations + 8
  unsigned maxConnectionsPerAddress = 16;         // open connections from one source address
  unsigned maxObjectMb = 1024;                    // one received data set, after inflation (MiB)
  unsigned maxAssociationMb = 1024;               // data held for one association at once (MiB)
  unsigned maxInFlightMb = 2048;                  // data held for all associations together (MiB)
  unsigned streamAboveMb = 64;  // native Pixel Data larger than this is encrypted as it arrives (MiB); 0 = never
};

// How a peer connects: over TLS or plain, and which certificate identity it must present.
// certificateIdentity: "CN=name" or a full subject DN ("CN=ws1,O=Hospital", RFC 2253 order as printed by
// `openssl x509 -subject -nameopt RFC2253`), or a subjectAltName entry "DNS:name", "IP:10.0.0.5",
// "URI:...", "email:..."; empty = any certificate the CA bundle accepts.
struct Modality {
  std::string aeTitle;
  std::string host;  // host name or IP; compared against the peer address of the association
  std::optional<bool> tls;  // absent: TLS exactly when gateway.tls is configured
  std::string certificateIdentity;
};

enum class Access { Decrypt, Ciphertext, Deny };

struct Workstation {
  std::string aeTitle;
  std::string host;
  std::uint16_t port = 0;
  Access access = Access::Deny;
  // C-MOVE destinations this workstation may name besides itself; absent = every configured one.
  std::optional<std::vector<std::string>> moveDestinations;
  std::optional<bool> tls;  // absent: TLS exactly when gateway.tls is configured
  std::string certificateIdentity;
};

// A gateway at another site that studies are relayed to and accepted from (see docs/relay.md).
struct RelayPeer {
  std::string name;         // for logs and audit
  std::string aeTitle;      // its gateway.ae_title: the C-MOVE destination naming it, and its calling AE title
  std::string host;         // where it listens; its relayed C-STOREs must come from an address of this host
  std::uint16_t port = 0;
  std::string certificate;  // PEM file: its relay certificate (capsules are wrapped to it, its signatures checked)
  std::optional<bool> tls;  // DICOM TLS both ways; absent: TLS exactly when gateway.tls is configured
  std::string certificateIdentity;  // its DICOM TLS certificate, as for a workstation
};

// Site-to-site relay: this gateway's own relay key pair and the peers it trusts.
struct RelaySection {
  std::string certificate;  // PEM file: this gateway's relay certificate (RSA or EC P-256/P-384)
  std::string privateKey;   // PEM file, mode 0600: its private key
  std::vector<RelayPeer> peers;
};

struct Config {
  std::string sourcePath;  // file it was loaded from
  GatewaySection gateway;
  UpstreamSection upstream;
  KeystoreSection keystore;
  CipherSection cipher;
  MetricsSection metrics;
  AuditSection audit;
  SpoolSection spool;
  LimitsSection limits;
  std::vector<Modality> modalities;
  std::vector<Workstation> workstations;
  std::optional<RelaySection> relay;  // absent: no relay
};

struct ConfigIssue {
  std::string key;      // dotted path, e.g. "gateway.port" or "workstations[1].access"
  std::string message;  // e.g. "must be between 1 and 65535, got 70000"
};

// what() renders one issue per line as "<file>: <key>: <message>" (no "<file>: " without a source path,
// no "<key>: " for issues about the whole file, such as YAML syntax errors).
class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(std::vector<ConfigIssue> issues);
  // The same, naming the file the issues were found in (parseConfig / loadConfig throw these).
  static ConfigError inFile(std::vector<ConfigIssue> issues, const std::string& sourcePath);
  const std::vector<ConfigIssue>& issues() const { return issues_; }
  const std::string& sourcePath() const { return sourcePath_; }

 private:
  struct InFileTag {};
  ConfigError(InFileTag, std::vector<ConfigIssue> issues, const std::string& sourcePath);
  std::vector<ConfigIssue> issues_;
  std::string sourcePath_;
};

// Parses and validates; throws ConfigError listing every problem found (unknown keys, missing fields,
// bad types, bad ports, bad AE titles, duplicate AE titles, ...). File-system state (e.g. an unreadable
// master key file) is not looked at here, so `keys init-master` can load a config whose key file does not
// exist yet: call checkFiles() for that.
Config loadConfig(const std::string& path);
Config parseConfig(const std::string& yamlText, const std::string& sourcePath = "<string>");
// Checks what the schema cannot: the master key file exists, is readable and has mode 0600 (or
// stricter), the master key environment variable is set, data_dir is writable or creatable, the
// keystore's directory exists. Returns one issue per problem (empty when all is well).
std::vector<ConfigIssue> checkFiles(const Config& config);

// The configuration used by `pacsgw serve` with no --config: everything under dataDir, upstream Orthanc
// on 127.0.0.1:4242 (AE ORTHANC), a generated master key file, CT1 modality on 127.0.0.1.
Config embeddedDefaults(const std::string& dataDir);
std::string toYaml(const Config& config);  // for `pacsgw config show` and for writing the defaults out

// Where the local audit log is: audit.path, or <gateway.data_dir>/audit.log.
std::string auditLogPath(const Config& config);

// Where the spool lives: spool.dir, or <gateway.data_dir>/spool.
std::string spoolDirectory(const Config& config);

// Whether a peer with this `tls` setting talks TLS: its own setting, else whether gateway.tls exists.
inline bool peerUsesTls(const Config& config, const std::optional<bool>& peerTls) {
  return peerTls.value_or(config.gateway.tls.enabled);
}

Access accessFromString(const std::string& text);  // throws std::invalid_argument
const char* toString(Access access);

}  // namespace pacsgw::config
