// The keystore anchor: a small file kept outside the database (by default beside the master key) that
// records which keystore the gateway uses. A database that vanished, was emptied, or was replaced by
// another installation's is recognised at start instead of being silently re-created.
//
// Format (text, mode 0600):
//   pacsgw keystore anchor 1
//   keystore_id <uuid>
//   kek_check <64 hex characters: HMAC-SHA-256 of a fixed label under the master key>
#include "keystore/keystore.h"
#include "keystore/keystore_internal.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sstream>

namespace pacsgw::keystore {

namespace {

constexpr char kHeader[] = "pacsgw keystore anchor 1";
constexpr char kCheckLabel[] = "pacsgw keystore master key check v1";
constexpr std::size_t kCheckBytes = 32;
constexpr std::size_t kMaxAnchorBytes = 4096;

KeystoreError malformed(const std::string& path, const std::string& why) {
  return KeystoreError("keystore anchor " + path + " is malformed (" + why +
                       "); restore it from your backup of the master key directory, or move it away to "
                       "re-anchor the current keystore");
}

void writeAll(int fd, const std::string& text, const std::string& path) {
  std::size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw KeystoreError("cannot write keystore anchor " + path + ": " + std::strerror(errno));
    }
    written += static_cast<std::size_t>(n);
  }
}

}  // namespace

std::vector<std::uint8_t> masterKeyCheckValue(const SecretBytes& kek) {
  std::vector<std::uint8_t> out(EVP_MAX_MD_SIZE);
  unsigned length = 0;
  if (HMAC(EVP_sha256(), kek.data(), static_cast<int>(kek.size()), reinterpret_cast<const unsigned char*>(kCheckLabel),
           sizeof kCheckLabel - 1, out.data(), &length) == nullptr ||
      length != kCheckBytes) {
    throw KeystoreError("cannot compute the master key check value");
  }
  out.resize(length);
  return out;
}

std::optional<Anchor> readAnchor(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    throw KeystoreError("cannot open keystore anchor " + path + ": " + std::strerror(errno));
  }
  struct stat info {};
  std::string content;
  const bool ok = ::fstat(fd, &info) == 0 && S_ISREG(info.st_mode) && info.st_size >= 0 &&
                  static_cast<std::size_t>(info.st_size) <= kMaxAnchorBytes;
  if (ok) {
    content.resize(kMaxAnchorBytes + 1);
    std::size_t total = 0;
    while (total < content.size()) {
      const ssize_t n = ::read(fd, &content[total], content.size() - total);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      total += static_cast<std::size_t>(n);
    }
    content.resize(total);
  }
  ::close(fd);
  if (!ok || content.size() > kMaxAnchorBytes) throw malformed(path, "not a small regular file");

  std::istringstream lines(content);
  std::string header, idLine, checkLine;
  std::getline(lines, header);
  std::getline(lines, idLine);
  std::getline(lines, checkLine);
  if (header != kHeader) throw malformed(path, "unexpected first line");
  Anchor anchor;
  if (idLine.rfind("keystore_id ", 0) != 0 || !detail::looksLikeUuid(idLine.substr(12))) {
    throw malformed(path, "no valid keystore_id line");
  }
  anchor.keystoreId = idLine.substr(12);
  if (checkLine.rfind("kek_check ", 0) != 0) throw malformed(path, "no kek_check line");
  const std::string hex = checkLine.substr(10);
  const auto check = detail::decodeHex(hex.data(), hex.size());
  if (!check || check->size() != kCheckBytes) throw malformed(path, "kek_check is not 64 hex characters");
  anchor.kekCheck.assign(check->data(), check->data() + check->size());
  return anchor;
}

void writeAnchor(const std::string& path, const Anchor& anchor) {
  const std::string text = std::string(kHeader) + "\nkeystore_id " + anchor.keystoreId + "\nkek_check " +
                           detail::encodeHex(anchor.kekCheck.data(), anchor.kekCheck.size()) + "\n";
  const std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());  // a leftover from a crash
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) throw KeystoreError("cannot create keystore anchor " + tmp + ": " + std::strerror(errno));
  try {
    writeAll(fd, text, tmp);
    if (::fsync(fd) != 0) throw KeystoreError("cannot fsync keystore anchor " + tmp + ": " + std::strerror(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(tmp.c_str());
    throw KeystoreError("cannot install keystore anchor " + path + ": " + std::strerror(error));
  }
  std::string parent = std::filesystem::path(path).parent_path().string();
  if (parent.empty()) parent = ".";
  const int dirFd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirFd >= 0) {
    ::fsync(dirFd);
    ::close(dirFd);
  }
}

}  // namespace pacsgw::keystore
