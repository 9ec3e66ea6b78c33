#include "gateway/cli.h"

#include "gateway/audit/audit_trail.h"

#include "codecs/dicom_crypt.h"
#include "gateway/eval_launcher.h"
#include "codecs/pixel_cipher.h"
#include "config/config.h"
#include "config/security_review.h"
#include "gateway/instance_protector.h"
#include "gateway/keys_commands.h"
#include "gateway/folder_run.h"
#include "gateway/logging.h"
#include "gateway/health.h"
#include "gateway/migrate.h"
#include "gateway/server.h"
#include "gateway/spool/spool_command.h"
#include "keystore/keystore.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <optional>
#include <sys/stat.h>
#include <unistd.h>

namespace pacsgw::gateway {

namespace {

constexpr const char* kUsage = R"(usage: pacsgw <command> [options]

commands:
  serve [--config FILE] [--accept-new-keystore]
                                     run the gateway (no --config: embedded defaults in
                                     $PACSGW_DATA_DIR or /var/lib/pacsgw); --accept-new-keystore
                                     starts an empty keystore although the anchor records a used one
  encrypt --config FILE IN OUT       encrypt the pixel data of a DICOM file, or of every file in
                                     folder IN into folder OUT (progress shown on a terminal)
  decrypt --config FILE IN OUT       restore the original pixel data of an encrypted file (or folder)
  keys list --config FILE            list data keys (ids and scopes, never key material)
  keys init-master --config FILE     create the master key file if it does not exist
  keys verify --config FILE [--repair-check-value]
                                     unwrap every data key and name the damaged ones
  keys backup --config FILE --to NEWFILE
                                     consistent online copy of the keystore
  keys rotate-kek --config FILE --new-master-key-file FILE
  keys rotate-kek --config FILE --new-config NEWFILE
                                     re-wrap every data key under a new master key (a new key
                                     file, or NEWFILE's keystore.master_key, e.g. a PKCS#11 token)
  keys hsm-init --config FILE        create the master key inside the configured PKCS#11 token
  keys shred --config FILE --study UID
                                     destroy a study's data key irrecoverably
  keys recover --config FILE --from-journal DIR
                                     rebuild or complete the keystore from the escrow journal
  config check --config FILE         validate a configuration file
  config defaults [--data-dir DIR]   print the embedded default configuration
  migrate --config FILE (--study UID | --since DATE | --all) [--dry-run] [--journal FILE]
                                     encrypt studies already in the PACS in clear, in place
  spool status --config FILE         queued / in flight / quarantined instances, oldest age
  spool retry --config FILE [NAME..] send quarantined instances (all, or NAME..) again
  eval --config FILE --backend NAME --json OUT [--report OUT.html] INPUT...
                                     measure cipher backends with the papers' metrics
  train BACKEND --data DIR --out MODEL [--steps N] [--device cpu|cuda|auto] [--resume CKPT] [--seed S]
                                     train a neural backend's model on DICOM CT/MR images
  version                            print the version
)";

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Minimal option parsing: "--name value" pairs plus positional arguments.
struct Options {
  std::vector<std::string> positional;
  std::optional<std::string> configPath;
  std::optional<std::string> dataDir;
  std::optional<std::string> logLevel;
  bool acceptNewKeystore = false;
};

Options parseOptions(const std::vector<std::string>& args, std::size_t first) {
  Options o;
  for (std::size_t i = first; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) throw UsageError("option " + a + " needs a value");
      return args[++i];
    };
    if (a == "--config" || a == "-c") {
      o.configPath = value();
    } else if (a == "--data-dir") {
      o.dataDir = value();
    } else if (a == "--log-level") {
      o.logLevel = value();
    } else if (a == "--accept-new-keystore") {
      o.acceptNewKeystore = true;
    } else if (a.rfind("--", 0) == 0) {
      throw UsageError("unknown option " + a);
    } else {
      o.positional.push_back(a);
    }
  }
  return o;
}

config::Config requireConfig(const Options& o) {
  if (!o.configPath) throw UsageError("--config FILE is required");
  return config::loadConfig(*o.configPath);
}

void requirePositional(const Options& o, std::size_t count, const char* what) {
  if (o.positional.size() != count) throw UsageError(std::string("expected ") + what);
}

std::string defaultDataDir() {
  const char* env = std::getenv("PACSGW_DATA_DIR");
  return env != nullptr && *env != '\0' ? env : "/var/lib/pacsgw";
}

GatewayServer* gServer = nullptr;
void onStopSignal(int) {
  if (gServer != nullptr) gServer->requestStop();
}

// The local audit log: beside the keystore data, one XML audit message per line (docs/security.md).
audit::SyslogSettings syslogSettings(const config::Config& cfg) {
  const config::AuditSyslogSection& s = cfg.audit.syslog;
  audit::SyslogSettings out;
  out.tls = {s.host, s.port, s.caBundle, s.certificate, s.privateKey, 10};
  out.appName = s.appName;
  out.retryMaxSeconds = static_cast<int>(s.retryMaxSeconds);
  return out;
}

std::string localUser() {
  const char* user = std::getenv("SUDO_USER");
  if (user == nullptr) user = std::getenv("USER");
  return (user ? std::string(user) : std::string("uid")) + " (uid " + std::to_string(::getuid()) + ")";
}

int cmdServe(const Options& o) {
  config::Config cfg;
  if (o.configPath) {
    cfg = config::loadConfig(*o.configPath);
  } else {
    const std::string dir = defaultDataDir();
    std::filesystem::create_directories(dir);
    ::chmod(dir.c_str(), 0700);
    cfg = config::embeddedDefaults(dir);
    if (keystore::generateMasterKeyFile(cfg.keystore.masterKeyFile)) {
      std::cerr << "\n"
                << "  ##########################################################################\n"
                << "  WARNING: generated a NEW master key at " << cfg.keystore.masterKeyFile << "\n"
                << "  Every image this gateway encrypts can only be decrypted with this key.\n"
                << "  Back it up somewhere safe NOW; losing it makes the archive unreadable.\n"
                << "  ##########################################################################\n\n";
    }
  }
  setupLogging(o.logLevel.value_or(cfg.gateway.logLevel), cfg.gateway.logFormat);
  std::vector<config::ConfigIssue> problems = config::checkFiles(cfg);
  if (!problems.empty()) throw config::ConfigError::inFile(problems, cfg.sourcePath);
  codecs::makeCipher(cfg.cipher.backend, codecs::CipherOptions{cfg.cipher.device, cfg.cipher.model});  // fail fast on a bad backend
  for (const auto& w : config::securityWarnings(cfg)) spdlog::warn("configuration: {}: {}", w.key, w.message);
  std::unique_ptr<keystore::Keystore> keys = openKeystoreForServe(cfg, o.acceptNewKeystore);
  audit::open(config::auditLogPath(cfg), cfg.gateway.aeTitle);
  if (cfg.audit.syslog.enabled) audit::forwardToSyslog(syslogSettings(cfg));
  audit::applicationStarted(std::string("pacsgw serve ") + PACSGW_VERSION);
  GatewayServer server(cfg, *keys);
  Monitoring monitoring = startMonitoring(cfg, *keys, server.storeSpool());
  gServer = &server;
  struct sigaction sa {};
  sa.sa_handler = onStopSignal;
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  server.run();
  gServer = nullptr;
  audit::applicationStopped("stopped on request");
  audit::close();
  spdlog::info("stopped");
  return 0;
}

// Writes next to the target and renames, so a failure never leaves a half-written OUT.
void saveAtomically(DcmFileFormat& file, const std::string& out, E_TransferSyntax xfer) {
  const std::string tmp = out + ".tmp-" + std::to_string(::getpid());
  OFCondition cond = file.saveFile(tmp.c_str(), xfer);
  if (cond.bad()) {
    std::remove(tmp.c_str());
    throw std::runtime_error("cannot write " + out + ": " + cond.text());
  }
  std::filesystem::rename(tmp, out);
}

DcmFileFormat loadDicom(const std::string& in) {
  DcmFileFormat file;
  OFCondition cond = file.loadFile(in.c_str());
  if (cond.bad()) throw std::runtime_error("cannot read " + in + ": " + cond.text());
  file.loadAllDataIntoMemory();
  return file;
}

// Runs `transform` over IN with the configured keystore and cipher and writes OUT in the transfer
// syntax `transform` returns. IN may be a folder: then every file under it goes to the same relative
// path under OUT (a progress line on a terminal), and the exit status is 1 if any file failed.
// `transform(protector, dataset, xfer, in)` throws SkipFile for a file it leaves alone.
template <typename Transform>
int transformPaths(const Options& o, const std::string& verb, Transform transform,
                   const std::function<void(const std::string&, const std::string&)>& reportFile) {
  requirePositional(o, 2, "IN OUT");
  config::Config cfg = requireConfig(o);
  auto keys = openKeystore(cfg);
  try {
    audit::open(config::auditLogPath(cfg), cfg.gateway.aeTitle);
  } catch (const std::exception& e) {
    std::cerr << "warning: " << e.what() << "; this run is not recorded in the audit log\n";
  }
  InstanceProtector protector(*keys, cfg.cipher);
  const auto one = [&](const std::string& in, const std::string& out) {
    DcmFileFormat file = loadDicom(in);
    const E_TransferSyntax xfer = file.getDataset()->getOriginalXfer();
    const E_TransferSyntax target = transform(protector, *file.getDataset(), xfer, in);
    saveAtomically(file, out, target);
  };
  const std::string& in = o.positional[0];
  const std::string& out = o.positional[1];
  if (!std::filesystem::is_directory(in)) {
    one(in, out);
    reportFile(in, out);
    return 0;
  }
  const FolderRunResult r = runOverFolder(in, out, verb, [&](const std::filesystem::path& i, const std::filesystem::path& t) {
    one(i.string(), t.string());
  });
  for (const auto& s : r.skipped) std::cerr << "pacsgw " << verb << ": skipped " << s << "\n";
  for (const auto& f : r.failures) std::cerr << "pacsgw " << verb << ": failed " << f << "\n";
  std::printf("%sed %zu files (%.1f MB) from %s into %s; %zu skipped, %zu failed\n", verb.c_str(), r.transformed,
              r.bytes / 1e6, in.c_str(), out.c_str(), r.skipped.size(), r.failures.size());
  return r.failures.empty() ? 0 : 1;
}

int cmdEncrypt(const Options& o) {
  ProtectResult result;
  return transformPaths(
      o, "encrypt",
      [&](InstanceProtector& protector, DcmDataset& dataset, E_TransferSyntax xfer, const std::string& in) {
        result = protector.protect(dataset, xfer);
        if (!result.encrypted) throw SkipFile(in + " has no pixel data to encrypt");
        return result.transferSyntax;
      },
      [&](const std::string& in, const std::string& out) {
        std::cout << "encrypted " << in << " -> " << out << " (backend " << result.backendId << ", key "
                  << result.keyId << ")\n";
      });
}

int cmdDecrypt(const Options& o) {
  return transformPaths(
      o, "decrypt",
      [](InstanceProtector& protector, DcmDataset& dataset, E_TransferSyntax xfer, const std::string& in) {
        E_TransferSyntax original;
        OFString study;
        dataset.findAndGetOFString(DCM_StudyInstanceUID, study);
        try {
          original = protector.restore(dataset, xfer);
        } catch (const std::exception& e) {
          audit::cliDecrypt(localUser(), in, study.c_str(), false, e.what());
          throw;
        }
        audit::cliDecrypt(localUser(), in, study.c_str(), true, "");
        // Native data goes back into the syntax it was encrypted in; encapsulated data never changed syntax.
        if (original != xfer && dataset.chooseRepresentation(original, nullptr).bad()) original = xfer;
        return original;
      },
      [](const std::string& in, const std::string& out) { std::cout << "decrypted " << in << " -> " << out << "\n"; });
}

int cmdConfig(const std::vector<std::string>& args) {
  if (args.size() < 2) throw UsageError("expected 'config check' or 'config defaults'");
  Options o = parseOptions(args, 2);
  if (args[1] == "defaults") {
    std::cout << config::toYaml(config::embeddedDefaults(o.dataDir.value_or(defaultDataDir())));
    return 0;
  }
  if (args[1] != "check") throw UsageError("unknown config command '" + args[1] + "'");
  if (!o.configPath) throw UsageError("--config FILE is required");
  std::vector<config::ConfigIssue> issues, warnings;
  try {
    config::Config cfg = config::loadConfig(*o.configPath);
    issues = config::checkFiles(cfg);
    warnings = config::securityWarnings(cfg);
    const auto backends = codecs::availableBackends();
    if (std::find(backends.begin(), backends.end(), cfg.cipher.backend) == backends.end()) {
      std::string list;
      for (const auto& b : backends) list += (list.empty() ? "" : ", ") + b;
      issues.push_back({"cipher.backend", "unknown backend '" + cfg.cipher.backend + "' (available: " + list + ")"});
    }
  } catch (const config::ConfigError& e) {
    issues = e.issues();
  }
  for (const auto& w : warnings)
    std::cerr << *o.configPath << ": warning: " << (w.key.empty() ? "" : w.key + ": ") << w.message << "\n";
  if (issues.empty()) {
    std::cout << *o.configPath << ": OK" << (warnings.empty() ? "" : " (with security warnings)") << "\n";
    return 0;
  }
  for (const auto& issue : issues) {
    std::cerr << *o.configPath << ": " << (issue.key.empty() ? "" : issue.key + ": ") << issue.message << "\n";
  }
  return 1;
}

}  // namespace

int runCli(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << kUsage;
    return args.empty() ? 2 : 0;
  }
  const std::string& command = args[0];
  try {
    codecs::registerKeyReferenceDictionary();
    if (command == "version" || command == "--version") {
      std::cout << "pacsgw " << PACSGW_VERSION << "\n";
      return 0;
    }
    if (command == "eval") return runEvalProgram(std::vector<std::string>(args.begin() + 1, args.end()));
    if (command == "train") return runEvalProgram(args);  // pacsgw-eval train ...
    if (command == "migrate") return runMigrateCommand(std::vector<std::string>(args.begin() + 1, args.end()));
    if (command == "keys") return runKeysCommand(args);
    if (command == "config") return cmdConfig(args);
    if (command == "spool") {
      try {
        return spool::runSpoolCommand(std::vector<std::string>(args.begin() + 1, args.end()));
      } catch (const std::invalid_argument& e) {
        throw UsageError(e.what());
      }
    }
    Options o = parseOptions(args, 1);
    if (command == "serve") return cmdServe(o);
    if (command == "encrypt") return cmdEncrypt(o);
    if (command == "decrypt") return cmdDecrypt(o);
    throw UsageError("unknown command '" + command + "'");
  } catch (const UsageError& e) {
    std::cerr << "pacsgw: " << e.what() << "\n\n" << kUsage;
    return 2;
  } catch (const KeysUsageError& e) {
    std::cerr << "pacsgw: " << e.what() << "\n\n" << kUsage;
    return 2;
  } catch (const config::ConfigError& e) {
    std::cerr << "pacsgw " << command << ": configuration problems:\n" << e.what() << "\n";
    return 1;
  } catch (const codecs::CryptError& e) {
    std::cerr << "pacsgw " << command << ": " << codecs::toString(e.kind()) << ": " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "pacsgw " << command << ": " << e.what() << "\n";
    return 1;
  }
}

}  // namespace pacsgw::gateway
