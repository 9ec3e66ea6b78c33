// `pacsgw keys ...`: key custody from the command line. Output names key ids, scopes and paths,
// never key material.
#include "gateway/keys_commands.h"

#include "gateway/audit/audit_trail.h"

#include "gateway/instance_protector.h"
#include "gateway/logging.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <set>

namespace pacsgw::gateway {

namespace {

constexpr const char* kKeysUsage =
    "keys list --config FILE | keys init-master --config FILE | keys verify --config FILE [--repair-check-value] | "
    "keys backup --config FILE --to NEWFILE | "
    "keys rotate-kek --config FILE (--new-master-key-file FILE | --new-config FILE) | keys hsm-init --config FILE | "
    "keys shred --config FILE --study UID | keys recover --config FILE --from-journal DIR";

std::string keystoreName(const config::Config& cfg) {
  return cfg.keystore.postgres.empty() ? cfg.keystore.path : std::string("the PostgreSQL keystore");
}

struct KeysOptions {
  std::map<std::string, std::string> values;  // --name value
  std::set<std::string> flags;                // --name
};

KeysOptions parseKeysOptions(const std::vector<std::string>& args, const std::set<std::string>& valueOptions,
                             const std::set<std::string>& flagOptions) {
  KeysOptions o;
  for (std::size_t i = 2; i < args.size(); ++i) {
    std::string name = args[i];
    if (name == "-c") name = "--config";
    if (valueOptions.count(name) != 0) {
      if (i + 1 >= args.size()) throw KeysUsageError("option " + name + " needs a value");
      o.values[name] = args[++i];
    } else if (flagOptions.count(name) != 0) {
      o.flags.insert(name);
    } else {
      throw KeysUsageError("unexpected argument '" + name + "' for 'keys " + args[1] + "' (" + kKeysUsage + ")");
    }
  }
  if (o.values.count("--config") == 0) throw KeysUsageError("--config FILE is required");
  return o;
}

std::string required(const KeysOptions& o, const std::string& name, const char* what) {
  const auto found = o.values.find(name);
  if (found == o.values.end() || found->second.empty()) throw KeysUsageError(name + " " + what + " is required");
  return found->second;
}

int cmdList(const config::Config& cfg) {
  auto keys = openKeystore(cfg);
  std::printf("%-36s  %-8s  %-20s  %s\n", "KEY ID", "SCOPE", "CREATED (UTC)", "SCOPE UID");
  for (const auto& k : keys->list()) {
    std::printf("%-36s  %-8s  %-20s  %s\n", k.id.c_str(), keystore::toString(k.scope), k.createdAt.c_str(),
                k.scopeUid.c_str());
  }
  return 0;
}

int cmdInitMaster(const config::Config& cfg) {
  if (cfg.keystore.usesPkcs11()) {
    throw KeysUsageError("the master key of this config lives in a PKCS#11 token; create it with keys hsm-init");
  }
  if (cfg.keystore.masterKeyFile.empty()) throw KeysUsageError("keystore.master_key_file is not set in the config");
  const std::filesystem::path parent = std::filesystem::path(cfg.keystore.masterKeyFile).parent_path();
  if (!parent.empty() && !std::filesystem::exists(parent)) {
    std::filesystem::create_directories(parent);
    std::filesystem::permissions(parent, std::filesystem::perms::owner_all);
  }
  if (keystore::generateMasterKeyFile(cfg.keystore.masterKeyFile)) {
    std::cout << "created master key " << cfg.keystore.masterKeyFile
              << " (mode 0600). Back it up: without it no encrypted image can be restored.\n";
  } else {
    std::cout << "master key " << cfg.keystore.masterKeyFile << " already exists; left unchanged\n";
  }
  return 0;
}

int cmdVerify(const config::Config& cfg, const KeysOptions& o) {
  keystore::OpenOptions options;
  options.repairCheckValue = o.flags.count("--repair-check-value") != 0;
  auto keys = openKeystore(cfg, options);
  if (keys->openReport().repairedCheckValue) {
    std::cout << "repaired the master key check value of " << keystoreName(cfg)
              << " (the master key unwraps the stored data keys)\n";
  }
  const std::size_t total = keys->list().size();
  const std::vector<keystore::DamagedKey> damaged = keys->verify();
  for (const auto& d : damaged) {
    std::cout << "DAMAGED data key " << d.id << " (" << d.scope << " " << d.scopeUid << "): " << d.problem << "\n";
  }
  std::cout << keystoreName(cfg) << ": keystore " << keys->openReport().keystoreId << ", master key OK, "
            << total - std::min(total, damaged.size()) << " of " << total << " data keys unwrap"
            << (damaged.empty() ? "" : "; restore the damaged rows from a backup or recover them") << "\n";
  return damaged.empty() ? 0 : 1;
}

int cmdBackup(const config::Config& cfg, const KeysOptions& o) {
  const std::string target = required(o, "--to", "NEWFILE");
  auto keys = openKeystore(cfg);
  keys->backupTo(target);
  std::cout << "backed up keystore " << keystoreName(cfg) << " (id " << keys->openReport().keystoreId << ", "
            << keys->list().size() << " data keys) to " << target
            << ". It opens only with the current master key: keep both, apart.\n";
  return 0;
}

// Rotation to the master key of another configuration (e.g. file -> PKCS#11 token, or back). Only its
// keystore.master_key / master_key_file / master_key_env (and anchor) matter.
int rotateToConfig(const config::Config& cfg, const config::Config& newCfg) {
  auto newMaster = masterKeyProvider(newCfg);
  const std::string target = newMaster->describe();
  const std::vector<std::uint8_t> newCheck = newMaster->checkValue();
  auto keys = openKeystore(cfg);
  const std::size_t count = keys->list().size();
  keys->rotateMasterKey(std::move(newMaster));
  // The keystore re-anchored itself at the old configuration's anchor; the new one may keep its anchor
  // elsewhere (e.g. no master key file to sit beside any more).
  const std::string newAnchor = keystoreAnchorPath(newCfg);
  if (newAnchor != keystoreAnchorPath(cfg)) {
    keystore::writeAnchor(newAnchor, keystore::Anchor{keys->openReport().keystoreId, newCheck});
  }
  std::cout << "re-wrapped " << count << " data keys of " << keystoreName(cfg) << " under " << target
            << ". Start the gateway with " << newCfg.sourcePath
            << "'s master key settings; the old master key is no longer needed (destroy it after your backups "
               "made with it have expired).\n";
  return 0;
}

// Creates the master key in the PKCS#11 token named by keystore.master_key, then opens it the way the
// gateway will (which checks that it is sensitive and not extractable).
int cmdHsmInit(const config::Config& cfg) {
  if (!cfg.keystore.usesPkcs11()) {
    throw KeysUsageError("keystore.master_key is not a pkcs11 provider in the config; keys hsm-init creates the "
                         "master key in a PKCS#11 token");
  }
  keystore::generatePkcs11MasterKey(pkcs11Settings(cfg));
  const auto provider = masterKeyProvider(cfg);
  std::cout << "created " << provider->describe()
            << ": AES-256, generated inside the token, sensitive and never extractable. It cannot be backed up "
               "out of the token: use the HSM's own backup or cluster replication, and keep the keystore's escrow "
               "journal and backups.\n";
  return 0;
}

// Re-wraps every data key under a new master key: a new key file (--new-master-key-file), or the
// master key of another configuration (--new-config: file, environment or PKCS#11 token).
int cmdRotateKek(const config::Config& cfg, const KeysOptions& o) {
  const bool toConfig = o.values.count("--new-config") != 0;
  if (toConfig == (o.values.count("--new-master-key-file") != 0)) {
    throw KeysUsageError("keys rotate-kek needs exactly one of --new-master-key-file FILE or --new-config FILE");
  }
  if (toConfig) return rotateToConfig(cfg, config::loadConfig(required(o, "--new-config", "FILE")));
  const std::string newFile = required(o, "--new-master-key-file", "FILE");
  if (keystore::generateMasterKeyFile(newFile)) std::cout << "created new master key " << newFile << " (mode 0600)\n";
  SecretBytes newKey = keystore::loadMasterKeyFromFile(newFile);
  const std::vector<std::uint8_t> newCheck = keystore::masterKeyCheckValue(newKey);
  auto keys = openKeystore(cfg);
  const std::size_t count = keys->list().size();
  keys->rotateMasterKey(std::move(newKey));
  // The default anchor lives beside the master key file: give the new file its anchor too, so the
  // gateway finds it once the configuration points at the new key.
  if (cfg.keystore.anchorFile.empty()) {
    keystore::writeAnchor(newFile + ".anchor", keystore::Anchor{keys->openReport().keystoreId, newCheck});
  }
  std::cout << "re-wrapped " << count << " data keys of " << keystoreName(cfg) << " under " << newFile
            << ". Set keystore.master_key_file to " << newFile
            << " and restart the gateway; the old master key is no longer needed (destroy it after your backups "
               "made with it have expired).\n";
  return 0;
}

int cmdShred(const config::Config& cfg, const KeysOptions& o) {
  const std::string uid = required(o, "--study", "UID");
  auto keys = openKeystore(cfg);
  const std::string id = keys->shred(keystore::KeyScope::Study, uid);
  if (id.empty()) {
    std::cerr << "no data key for study " << uid << " in " << keystoreName(cfg) << "; nothing destroyed\n";
    return 1;
  }
  std::cout << "destroyed data key " << id << " of study " << uid
            << ": its objects in the PACS can no longer be decrypted\n";
  setupLogging("info");
  spdlog::warn("audit: data key {} of study {} destroyed (keys shred)", id, uid);
  try {
    audit::open(config::auditLogPath(cfg), cfg.gateway.aeTitle);
    audit::keyEvent("destroyed", id, uid, true, "keys shred");
    audit::close();
  } catch (const std::exception& e) {
    spdlog::warn("{}; the shred is not recorded in the audit log", e.what());
  }
  return 0;
}

// Rebuilds (or completes) the keystore from the escrow journal: after the loss of the keystore's disk, or
// after restoring an older backup. Needs the master key the entries were wrapped under.
int cmdRecover(const config::Config& cfg, const KeysOptions& o) {
  keystore::OpenOptions options;
  options.escrowDirectory = required(o, "--from-journal", "DIR");
  options.acceptNewKeystore = true;  // the operator asks for it explicitly: the old keystore is gone
  auto keys = openKeystore(cfg, options);
  const keystore::OpenReport& report = keys->openReport();
  for (const auto& problem : report.escrowProblems) std::cerr << "NOT RECOVERED: " << problem << "\n";
  std::cout << (report.createdNewKeystore ? "created keystore " : "completed keystore ") << keystoreName(cfg)
            << " (id " << report.keystoreId << "): imported " << report.importedFromEscrow
            << " data keys from the escrow journal " << options.escrowDirectory << ", repaired "
            << report.repairedFromEscrow << ", " << keys->list().size() << " data keys in total\n";
  if (cfg.keystore.escrowDir.empty()) {
    std::cout << "note: keystore.escrow_dir is not set in " << cfg.sourcePath
              << "; new keys will not be escrowed until it is\n";
  }
  return report.escrowProblems.empty() ? 0 : 1;
}

}  // namespace

int runKeysCommand(const std::vector<std::string>& args) {
  if (args.size() < 2) throw KeysUsageError(std::string("expected a keys command: ") + kKeysUsage);
  const std::string& command = args[1];
  std::set<std::string> values{"--config"};
  std::set<std::string> flags;
  if (command == "verify") flags.insert("--repair-check-value");
  if (command == "backup") values.insert("--to");
  if (command == "rotate-kek") values.insert({"--new-master-key-file", "--new-config"});
  if (command == "shred") values.insert("--study");
  if (command == "recover") values.insert("--from-journal");
  const std::set<std::string> known{"list",       "init-master", "verify", "backup",
                                    "rotate-kek", "shred",       "recover", "hsm-init"};
  if (known.count(command) == 0) throw KeysUsageError("unknown keys command '" + command + "'");
  const KeysOptions o = parseKeysOptions(args, values, flags);
  const config::Config cfg = config::loadConfig(o.values.at("--config"));
  if (command == "list") return cmdList(cfg);
  if (command == "init-master") return cmdInitMaster(cfg);
  if (command == "verify") return cmdVerify(cfg, o);
  if (command == "backup") return cmdBackup(cfg, o);
  if (command == "rotate-kek") return cmdRotateKek(cfg, o);
  if (command == "recover") return cmdRecover(cfg, o);
  if (command == "hsm-init") return cmdHsmInit(cfg);
  return cmdShred(cfg, o);
}

std::unique_ptr<keystore::Keystore> openKeystoreForServe(const config::Config& config, bool acceptNewKeystore) {
  keystore::OpenOptions options;
  options.acceptNewKeystore = acceptNewKeystore;
  options.anchorPath = keystoreAnchorPath(config);
  auto keys = openKeystore(config, options);
  const keystore::OpenReport& report = keys->openReport();
  if (report.replacedAnchoredKeystore) {
    spdlog::warn("created a NEW, empty keystore {} (id {}) replacing the one recorded in {} (--accept-new-keystore); "
                 "objects encrypted under the old keystore cannot be decrypted without it",
                 keystoreName(config), report.keystoreId, options.anchorPath);
  } else if (report.createdNewKeystore) {
    spdlog::info("created a new keystore {} (id {}); recorded in the anchor {}", keystoreName(config),
                 report.keystoreId, options.anchorPath);
  } else if (report.anchorWritten) {
    spdlog::info("keystore {} (id {}) recorded in the anchor {}", keystoreName(config), report.keystoreId,
                 options.anchorPath);
  }
  if (report.migrated) {
    spdlog::info("keystore {} migrated to the current schema: every data key is now bound to its row",
                 keystoreName(config));
  }
  if (report.importedFromEscrow > 0) {
    spdlog::warn("imported {} data key(s) from the escrow journal {} that keystore {} lacked (restored from an "
                 "older backup?)",
                 report.importedFromEscrow, config.keystore.escrowDir, keystoreName(config));
  }
  if (report.repairedFromEscrow > 0) {
    spdlog::warn("repaired {} damaged data key(s) of keystore {} from the escrow journal", report.repairedFromEscrow,
                 keystoreName(config));
  }
  if (report.escrowed > 0) {
    spdlog::info("escrowed {} data key(s) in {}", report.escrowed, config.keystore.escrowDir);
  }
  for (const auto& problem : report.escrowProblems) spdlog::error("escrow journal: {}", problem);
  if (config.keystore.escrowDir.empty() && config.keystore.postgres.empty()) {
    spdlog::warn("no escrow journal configured (keystore.escrow_dir): data keys created since the last keystore "
                 "backup are lost with this host's disk");
  }
  const std::vector<keystore::DamagedKey> damaged = keys->verify();
  for (const auto& d : damaged) {
    spdlog::error("keystore {}: DAMAGED data key {} ({} {}): {}", keystoreName(config), d.id, d.scope, d.scopeUid,
                  d.problem);
  }
  if (!damaged.empty()) {
    spdlog::error("keystore {}: {} damaged data key(s); their studies cannot be stored or decrypted until the rows "
                  "are restored (see `pacsgw keys verify`)",
                  keystoreName(config), damaged.size());
  }
  return keys;
}

}  // namespace pacsgw::gateway
