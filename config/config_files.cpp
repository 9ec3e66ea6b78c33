// Checks against the file system and the environment: what `pacsgw config check` adds to the schema.
// Nothing here opens the keystore or decodes the master key; it only tells the operator what to fix.
#include "config/config.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <utility>

namespace pacsgw::config {

namespace {

namespace fs = std::filesystem;

std::string octalMode(mode_t mode) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "%04o", static_cast<unsigned>(mode & 07777));
  return buffer;
}

std::string uidText() { return "uid " + std::to_string(::geteuid()); }

// A TLS private key may be read by the gateway's user and, at most, by the gateway's own group: a
// Kubernetes Secret volume with fsGroup gives its files mode 0440 and the pod's group whatever
// defaultMode says, and that group is the gateway's (runAsGroup = fsGroup). Others, another group,
// or anyone writing it: not accepted. Empty when the file is fine (or missing: reported elsewhere).
std::string privateKeyExposure(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return "";
  const mode_t mode = info.st_mode;
  if ((mode & 0007) != 0)
    return path + " has mode " + octalMode(mode) + ", which gives other users the TLS private key; chmod 600 it";
  if ((mode & 0020) != 0)
    return path + " has mode " + octalMode(mode) + ", which lets its group replace the TLS private key; chmod 600 it";
  if ((mode & 0040) != 0 && info.st_gid != ::getegid())
    return path + " has mode " + octalMode(mode) + " and group " + std::to_string(info.st_gid) +
           ", which is not the gateway's own group " + std::to_string(::getegid()) +
           ": that group can read the TLS private key; chmod 600 it (or chgrp it to the gateway's group)";
  return "";
}

std::string parentOf(const std::string& path) {
  const std::string parent = fs::path(path).parent_path().string();
  return parent.empty() ? "." : parent;
}

bool isHex(const char* text, std::size_t length) {
  for (std::size_t i = 0; i < length; ++i) {
    if (!std::isxdigit(static_cast<unsigned char>(text[i]))) return false;
  }
  return true;
}

// The nearest existing ancestor of a path that does not exist yet.
fs::path existingAncestor(fs::path path) {
  std::error_code ec;
  path = fs::absolute(path, ec);
  while (!path.empty() && !fs::exists(path, ec)) {
    if (path == path.parent_path()) break;
    path = path.parent_path();
  }
  return path;
}

// Empty when `dir` exists and is writable, or can be created; otherwise what is wrong.
std::string directoryProblem(const std::string& dir) {
  struct stat info {};
  if (::stat(dir.c_str(), &info) == 0) {
    if (!S_ISDIR(info.st_mode)) return dir + " exists but is not a directory";
    if (::access(dir.c_str(), W_OK | X_OK) != 0) return "directory " + dir + " is not writable by " + uidText();
    return {};
  }
  const fs::path ancestor = existingAncestor(dir);
  if (::access(ancestor.c_str(), W_OK | X_OK) != 0) {
    return "directory " + dir + " does not exist and cannot be created (" + ancestor.string() + " is not writable by " +
           uidText() + ")";
  }
  return {};
}

void checkMasterKeyFile(const Config& config, std::vector<ConfigIssue>& issues) {
  const std::string& path = config.keystore.masterKeyFile;
  const std::string key = "keystore.master_key_file";
  const std::string configArg =
      config.sourcePath.empty() || config.sourcePath.front() == '<' ? "FILE" : config.sourcePath;
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    if (errno == ENOENT) {
      issues.push_back({key, path + " does not exist; create a master key with: pacsgw keys init-master --config " +
                                 configArg + " (or restore it from your key backup)"});
    } else {
      issues.push_back({key, "cannot inspect " + path + ": " + std::strerror(errno)});
    }
    return;
  }
  if (!S_ISREG(info.st_mode)) {
    issues.push_back({key, path + " is not a regular file"});
    return;
  }
  if ((info.st_mode & 077) != 0) {
    issues.push_back({key, path + " has mode " + octalMode(info.st_mode) +
                               ", which gives group or other users access to the master key; fix with: chmod 600 " +
                               path});
  }
  const auto size = static_cast<long long>(info.st_size);
  if (size != 32 && (size < 64 || size > 66)) {
    issues.push_back({key, path + " has " + std::to_string(size) +
                               " bytes; a master key file holds 32 raw bytes or 64 hex characters"});
    return;
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    issues.push_back({key, path + " cannot be read by " + uidText() + ": " + std::strerror(errno) +
                               "; the file must belong to the user the gateway runs as"});
    return;
  }
  char buffer[67];
  const ssize_t n = ::read(fd, buffer, sizeof buffer);
  ::close(fd);
  if (n == 32) {
    explicit_bzero(buffer, sizeof buffer);
    return;  // raw key: any bytes are valid
  }
  std::size_t length = n > 0 ? static_cast<std::size_t>(n) : 0;
  if (length > 0 && buffer[length - 1] == '\n') --length;
  if (length > 0 && buffer[length - 1] == '\r') --length;
  const bool valid = length == 64 && isHex(buffer, length);
  explicit_bzero(buffer, sizeof buffer);
  if (!valid) {
    issues.push_back({key, path + " is not a valid master key file (expected 32 raw bytes or 64 hex characters "
                                  "with an optional trailing newline)"});
  }
}

void checkMasterKeyEnv(const Config& config, std::vector<ConfigIssue>& issues) {
  const std::string& name = config.keystore.masterKeyEnv;
  const std::string key = "keystore.master_key_env";
  const char* value = std::getenv(name.c_str());
  if (value == nullptr) {
    issues.push_back({key, "environment variable " + name + " is not set"});
    return;
  }
  const char* begin = value;
  const char* end = value + std::strlen(value);
  while (begin < end && std::isspace(static_cast<unsigned char>(*begin))) ++begin;
  while (end > begin && std::isspace(static_cast<unsigned char>(end[-1]))) --end;
  const auto length = static_cast<std::size_t>(end - begin);
  if (length != 64 || !isHex(begin, length)) {
    issues.push_back({key, "environment variable " + name +
                               " must hold 64 hex characters (a 32-byte master key); it has " + std::to_string(length) +
                               " characters" + (length == 64 ? " including non-hex ones" : "")});
  }
}

// The token itself is only reached when the keystore opens; here: the module and the PIN's source.
void checkPkcs11MasterKey(const Config& config, std::vector<ConfigIssue>& issues) {
  const auto& p = config.keystore.pkcs11;
  struct stat info {};
  if (::stat(p.module.c_str(), &info) != 0 || !S_ISREG(info.st_mode)) {
    issues.push_back({"keystore.master_key.module", p.module + " is not an existing file (the token's PKCS#11 "
                                                               "library; for SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)"});
  }
  if (!p.pinFile.empty()) {
    if (::stat(p.pinFile.c_str(), &info) != 0) {
      issues.push_back({"keystore.master_key.pin_file", p.pinFile + " does not exist"});
    } else if (!S_ISREG(info.st_mode)) {
      issues.push_back({"keystore.master_key.pin_file", p.pinFile + " is not a regular file"});
    } else if ((info.st_mode & 077) != 0) {
      issues.push_back({"keystore.master_key.pin_file",
                        p.pinFile + " has mode " + octalMode(info.st_mode) +
                            ", which gives group or other users the token PIN; fix with: chmod 600 " + p.pinFile});
    } else if (::access(p.pinFile.c_str(), R_OK) != 0) {
      issues.push_back({"keystore.master_key.pin_file", p.pinFile + " cannot be read by " + uidText()});
    }
  } else if (!p.pinEnv.empty() && std::getenv(p.pinEnv.c_str()) == nullptr) {
    issues.push_back({"keystore.master_key.pin_env", "environment variable " + p.pinEnv + " is not set"});
  }
}

void checkKeystorePath(const Config& config, std::vector<ConfigIssue>& issues) {
  const std::string& path = config.keystore.path;
  const std::string key = "keystore.path";
  struct stat info {};
  if (::stat(path.c_str(), &info) == 0) {
    if (!S_ISREG(info.st_mode)) {
      issues.push_back({key, path + " exists but is not a regular file"});
    } else if (::access(path.c_str(), R_OK | W_OK) != 0) {
      issues.push_back({key, path + " is not readable and writable by " + uidText()});
    }
    return;
  }
  const std::string parent = parentOf(path);
  // The gateway creates data_dir at start-up, so a keystore directly inside it need not exist yet.
  std::error_code parentError;
  std::error_code dataDirError;
  const fs::path parentPath = fs::weakly_canonical(parent, parentError);
  const fs::path dataDirPath = fs::weakly_canonical(config.gateway.dataDir, dataDirError);
  const bool insideDataDir = !parentError && !dataDirError && parentPath == dataDirPath;
  struct stat parentInfo {};
  if (::stat(parent.c_str(), &parentInfo) != 0) {
    if (!insideDataDir) {
      issues.push_back({key, "directory " + parent +
                                 " does not exist; create it (owned by the gateway's user, mode "
                                 "0700) or change keystore.path"});
    }
    return;
  }
  if (!S_ISDIR(parentInfo.st_mode)) {
    issues.push_back({key, parent + " is not a directory"});
  } else if (::access(parent.c_str(), W_OK | X_OK) != 0) {
    issues.push_back(
        {key, "the keystore does not exist yet and directory " + parent + " is not writable by " + uidText()});
  }
}

}  // namespace

// The audit log's directory must exist (it is not created: it is often a separate log volume), and
// the TLS files for syslog forwarding must be readable.
static void checkAuditFiles(const Config& config, std::vector<ConfigIssue>& issues) {
  if (!config.audit.path.empty()) {
    std::string directory = std::filesystem::path(config.audit.path).parent_path().string();
    if (directory.empty()) directory = ".";
    struct stat info {};
    if (::stat(directory.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
      issues.push_back({"audit.path", "directory " + directory + " does not exist"});
    } else if (::access(directory.c_str(), W_OK | X_OK) != 0) {
      issues.push_back({"audit.path", "directory " + directory + " is not writable by " + uidText()});
    }
  }
  if (!config.audit.syslog.enabled) return;
  const std::pair<const char*, const std::string*> files[] = {{"audit.syslog.ca_bundle", &config.audit.syslog.caBundle},
                                                              {"audit.syslog.certificate", &config.audit.syslog.certificate},
                                                              {"audit.syslog.private_key", &config.audit.syslog.privateKey}};
  for (const auto& [key, file] : files) {
    if (!file->empty() && ::access(file->c_str(), R_OK) != 0) {
      issues.push_back({key, *file + " is missing or not readable by " + uidText()});
    }
  }
  if (!config.audit.syslog.privateKey.empty()) {
    const std::string exposure = privateKeyExposure(config.audit.syslog.privateKey);
    if (!exposure.empty()) issues.push_back({"audit.syslog.private_key", exposure});
  }
}

std::vector<ConfigIssue> checkFiles(const Config& config) {
  std::vector<ConfigIssue> issues;
  if (!config.gateway.dataDir.empty()) {
    const std::string problem = directoryProblem(config.gateway.dataDir);
    if (!problem.empty()) issues.push_back({"gateway.data_dir", problem});
  }
  if (!config.keystore.path.empty()) checkKeystorePath(config, issues);
  if (!config.keystore.escrowDir.empty()) {
    // The escrow storage is mounted, never created by the gateway: a missing mount must not go unnoticed.
    struct stat info {};
    if (::stat(config.keystore.escrowDir.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
      issues.push_back({"keystore.escrow_dir", config.keystore.escrowDir +
                                                   " is not an existing directory (mount the escrow storage)"});
    } else if (::access(config.keystore.escrowDir.c_str(), W_OK | X_OK) != 0) {
      issues.push_back({"keystore.escrow_dir", "directory " + config.keystore.escrowDir + " is not writable by " +
                                                   uidText()});
    }
  }
  if (config.gateway.tls.enabled) {
    // Contents (PEM, key matches certificate) are checked when the gateway loads them at start.
    const auto readable = [&](const std::string& file, const char* key) {
      if (::access(file.c_str(), R_OK) != 0)
        issues.push_back({std::string("gateway.tls.") + key, file + " is missing or not readable by " + uidText()});
    };
    readable(config.gateway.tls.certificate, "certificate");
    readable(config.gateway.tls.privateKey, "private_key");
    readable(config.gateway.tls.caBundle, "ca_bundle");
    const std::string exposure = privateKeyExposure(config.gateway.tls.privateKey);
    if (!exposure.empty()) issues.push_back({"gateway.tls.private_key", exposure});
  }
  if (!config.keystore.masterKeyFile.empty()) {
    checkMasterKeyFile(config, issues);
  } else if (!config.keystore.masterKeyEnv.empty()) {
    checkMasterKeyEnv(config, issues);
  } else if (config.keystore.usesPkcs11()) {
    checkPkcs11MasterKey(config, issues);
  } else {
    issues.push_back({"keystore", "no master key source configured (master_key_file, master_key_env or master_key)"});
  }
  checkAuditFiles(config, issues);
  return issues;
}

}  // namespace pacsgw::config
