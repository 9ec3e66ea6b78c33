// Escrow journal files. Format (text, mode 0600), named <SHA-256 of scope NUL scope UID>.key:
//   pacsgw escrow 1
//   id <uuid>
//   scope <study|series|instance>
//   scope_uid <hex of the UID bytes>
//   created <ISO 8601>
//   kek_check <64 hex>
//   wrapped <hex>
#include "keystore/escrow_journal.h"
#include "keystore/keystore_internal.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <cstring>
#include <memory>
#include <sstream>

namespace pacsgw::keystore {

namespace {

constexpr char kHeader[] = "pacsgw escrow 1";
constexpr char kSuffix[] = ".key";
constexpr std::size_t kMaxEntryBytes = 16384;

std::string errnoText() { return std::strerror(errno); }

void syncDirectory(const std::string& directory) {
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw KeystoreError("cannot open escrow directory " + directory + ": " + errnoText());
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw KeystoreError("cannot fsync escrow directory " + directory + ": " + errnoText());
}

void writeFileDurably(const std::string& path, const std::string& text) {
  // A name of its own: replicas sharing one journal directory may write the same entry at once.
  std::uint8_t nonce[8];
  detail::randomBytes(nonce, sizeof nonce);
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid()) + "-" + detail::encodeHex(nonce, sizeof nonce);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) throw KeystoreError("cannot create escrow entry " + tmp + ": " + errnoText());
  std::size_t written = 0;
  bool ok = true;
  while (ok && written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) ok = false;
    else written += static_cast<std::size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  const std::string why = ok ? "" : errnoText();
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string reason = ok ? errnoText() : why;
    ::unlink(tmp.c_str());
    throw KeystoreError("cannot write escrow entry " + path + ": " + reason);
  }
}

std::optional<std::string> readSmallFile(const std::string& path, std::string* problem) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    *problem = "cannot open: " + errnoText();
    return std::nullopt;
  }
  struct stat info {};
  std::string content;
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode) || info.st_size < 0 ||
      static_cast<std::size_t>(info.st_size) > kMaxEntryBytes) {
    ::close(fd);
    *problem = "not a small regular file";
    return std::nullopt;
  }
  content.resize(static_cast<std::size_t>(info.st_size));
  std::size_t total = 0;
  while (total < content.size()) {
    const ssize_t n = ::read(fd, &content[total], content.size() - total);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    total += static_cast<std::size_t>(n);
  }
  ::close(fd);
  content.resize(total);
  return content;
}

std::optional<std::vector<std::uint8_t>> hexBytes(const std::string& hex) {
  const auto decoded = detail::decodeHex(hex.data(), hex.size());
  if (!decoded) return std::nullopt;
  return std::vector<std::uint8_t>(decoded->data(), decoded->data() + decoded->size());
}

// Parses one entry; returns nullopt with `problem` set on any deviation.
std::optional<EscrowRecord> parseEntry(const std::string& text, std::string* problem) {
  std::istringstream lines(text);
  std::string line;
  std::getline(lines, line);
  if (line != kHeader) {
    *problem = "unexpected first line";
    return std::nullopt;
  }
  EscrowRecord r;
  bool haveId = false, haveScope = false, haveUid = false, haveCheck = false, haveWrapped = false;
  while (std::getline(lines, line)) {
    const auto space = line.find(' ');
    if (space == std::string::npos) continue;
    const std::string name = line.substr(0, space);
    const std::string value = line.substr(space + 1);
    if (name == "id" && detail::looksLikeUuid(value)) {
      r.id = value;
      haveId = true;
    } else if (name == "scope") {
      try {
        r.scope = keyScopeFromString(value);
        haveScope = true;
      } catch (const KeystoreError&) {
      }
    } else if (name == "scope_uid") {
      const auto bytes = hexBytes(value);
      if (bytes && !bytes->empty()) {
        r.scopeUid.assign(bytes->begin(), bytes->end());
        haveUid = r.scopeUid.find('\0') == std::string::npos;
      }
    } else if (name == "created") {
      r.createdAt = detail::printable(value, 40);
    } else if (name == "kek_check") {
      const auto bytes = hexBytes(value);
      if (bytes && bytes->size() == 32) {
        r.kekCheck = *bytes;
        haveCheck = true;
      }
    } else if (name == "wrapped") {
      const auto bytes = hexBytes(value);
      if (bytes && bytes->size() >= 16 && bytes->size() <= 4200) {  // RFC 5649 (format 2) or token GCM (format 3)
        r.wrapped = *bytes;
        haveWrapped = true;
      }
    }
  }
  if (!(haveId && haveScope && haveUid && haveCheck && haveWrapped)) {
    *problem = "a field is missing or malformed";
    return std::nullopt;
  }
  return r;
}

std::string formatEntry(const EscrowRecord& r) {
  return std::string(kHeader) + "\nid " + r.id + "\nscope " + toString(r.scope) + "\nscope_uid " +
         detail::encodeHex(reinterpret_cast<const std::uint8_t*>(r.scopeUid.data()), r.scopeUid.size()) +
         "\ncreated " + r.createdAt + "\nkek_check " + detail::encodeHex(r.kekCheck.data(), r.kekCheck.size()) +
         "\nwrapped " + detail::encodeHex(r.wrapped.data(), r.wrapped.size()) + "\n";
}

bool sameBytes(const std::vector<std::uint8_t>& a, const std::vector<std::uint8_t>& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

EscrowJournal::EscrowJournal(std::string directory) : directory_(std::move(directory)) {
  struct stat info {};
  if (directory_.empty() || ::stat(directory_.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    throw KeystoreError("escrow journal directory " + directory_ +
                        " does not exist or is not a directory; mount the escrow storage (or create the directory "
                        "with mode 0700) before starting");
  }
}

std::string EscrowJournal::entryPath(KeyScope scope, const std::string& scopeUid) const {
  std::string name = std::string(toString(scope)) + '\0' + scopeUid;
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(name.data()), name.size(), digest);
  return directory_ + "/" + detail::encodeHex(digest, sizeof digest) + kSuffix;
}

std::optional<EscrowRecord> EscrowJournal::find(KeyScope scope, const std::string& scopeUid) const {
  const std::string path = entryPath(scope, scopeUid);
  std::string problem;
  const auto text = readSmallFile(path, &problem);
  if (!text) {
    if (problem.empty()) return std::nullopt;
    throw KeystoreError("escrow entry " + path + ": " + problem);
  }
  auto record = parseEntry(*text, &problem);
  if (!record) throw KeystoreError("escrow entry " + path + " is damaged: " + problem);
  if (record->scope != scope || record->scopeUid != scopeUid) {
    throw KeystoreError("escrow entry " + path + " names another scope than its file name; it is damaged");
  }
  return record;
}

bool EscrowJournal::put(const EscrowRecord& record) {
  std::optional<EscrowRecord> existing;
  try {
    existing = find(record.scope, record.scopeUid);
  } catch (const KeystoreError&) {
    // A damaged entry holds no usable key: replace it with the good one.
  }
  if (existing) {
    if (existing->id != record.id) {
      throw KeystoreError(std::string("the escrow journal ") + directory_ + " holds data key " + existing->id +
                          " for " + toString(record.scope) + " " + detail::printable(record.scopeUid) +
                          ", not " + record.id +
                          ": the keystore lost that key (restored from an older backup?). Refusing to issue a "
                          "second key; run `pacsgw keys recover`");
    }
    if (sameBytes(existing->wrapped, record.wrapped) && sameBytes(existing->kekCheck, record.kekCheck)) return false;
  }
  writeFileDurably(entryPath(record.scope, record.scopeUid), formatEntry(record));
  syncDirectory(directory_);
  return true;
}

namespace {
// Overwrites a file in place, then unlinks it: on a plain (non copy-on-write) file system the blocks no
// longer hold the wrap. Returns false if there was no such file.
bool overwriteAndUnlink(const std::string& path) {
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0) return false;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd >= 0) {
    const std::string zeros(static_cast<std::size_t>(info.st_size), '\0');
    if (::write(fd, zeros.data(), zeros.size()) < 0) {
      // best effort; the unlink below is what matters
    }
    ::fsync(fd);
    ::close(fd);
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    throw KeystoreError("cannot remove escrow entry " + path + ": " + errnoText());
  return true;
}
}  // namespace

bool EscrowJournal::remove(KeyScope scope, const std::string& scopeUid) {
  const std::string path = entryPath(scope, scopeUid);
  // A write interrupted by a crash leaves "<entry>.tmp-PID-NONCE" beside it, holding the same wrapped key.
  const std::string entryName = path.substr(directory_.size() + 1);
  const std::string tmpPrefix = entryName + ".tmp-";
  std::vector<std::string> leftovers;
  if (std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(directory_.c_str()), ::closedir); dir) {
    while (const dirent* entry = ::readdir(dir.get())) {
      const std::string name = entry->d_name;
      if (name.compare(0, tmpPrefix.size(), tmpPrefix) == 0) leftovers.push_back(directory_ + "/" + name);
    }
  }
  bool removed = false;
  for (const std::string& leftover : leftovers) removed = overwriteAndUnlink(leftover) || removed;
  removed = overwriteAndUnlink(path) || removed;
  if (removed) syncDirectory(directory_);
  return removed;
}

std::vector<EscrowRecord> EscrowJournal::all(std::vector<std::string>* problems) const {
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(directory_.c_str()), ::closedir);
  if (!dir) throw KeystoreError("cannot list escrow directory " + directory_ + ": " + errnoText());
  std::vector<EscrowRecord> out;
  while (const dirent* entry = ::readdir(dir.get())) {
    const std::string name = entry->d_name;
    if (name.size() <= sizeof kSuffix - 1 || name.compare(name.size() - (sizeof kSuffix - 1), std::string::npos, kSuffix) != 0) {
      continue;
    }
    const std::string path = directory_ + "/" + name;
    std::string problem;
    const auto text = readSmallFile(path, &problem);
    std::optional<EscrowRecord> record;
    if (text) record = parseEntry(*text, &problem);
    if (record) {
      out.push_back(std::move(*record));
    } else if (problems != nullptr && !problem.empty()) {
      problems->push_back("escrow entry " + path + ": " + problem);
    }
  }
  return out;
}

}  // namespace pacsgw::keystore
