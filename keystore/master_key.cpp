// Master key (key-encryption key) sources: a protected file or an environment variable.
// Messages name paths, modes and sizes, never the key bytes.
#include "keystore/keystore.h"
#include "keystore/keystore_internal.h"

#include <openssl/crypto.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace pacsgw::keystore {

namespace {

using detail::kMasterKeyBytes;

std::string errnoText(int error) { return std::strerror(error); }

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

std::string formatHint() { return "expected 32 raw bytes or 64 hex characters with an optional trailing newline"; }

// Parses the content of a master key file (already size-checked by the caller).
std::optional<SecretBytes> parseKeyFileContent(const std::uint8_t* data, std::size_t size) {
  if (size == kMasterKeyBytes) return SecretBytes(data, size);
  std::size_t length = size;
  if (length > 0 && data[length - 1] == '\n') --length;
  if (length > 0 && data[length - 1] == '\r') --length;
  if (length != 2 * kMasterKeyBytes) return std::nullopt;
  return detail::decodeHex(reinterpret_cast<const char*>(data), length);
}

void syncParentDirectory(const std::string& path) {
  std::string parent = std::filesystem::path(path).parent_path().string();
  if (parent.empty()) parent = ".";
  const int dirFd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirFd < 0) return;  // best effort: the file itself is already synced
  ::fsync(dirFd);
  ::close(dirFd);
}

}  // namespace

SecretBytes loadMasterKeyFromFile(const std::string& path) {
  if (path.empty()) throw KeystoreError("no master key file configured");
  // O_NONBLOCK so that a FIFO in place of the key file cannot hang start-up; fstat rejects it below.
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (fd.get() < 0) {
    const int error = errno;
    if (error == ENOENT) {
      throw KeystoreError("master key file " + path +
                          " does not exist; create one with `pacsgw keys init-master --config FILE` "
                          "(or restore it from your key backup)");
    }
    if (error == EACCES) {
      throw KeystoreError("cannot read master key file " + path + ": permission denied for uid " +
                          std::to_string(::geteuid()) +
                          "; the file must be owned by the gateway's user with mode 0600");
    }
    throw KeystoreError("cannot open master key file " + path + ": " + errnoText(error));
  }
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) {
    throw KeystoreError("cannot stat master key file " + path + ": " + errnoText(errno));
  }
  if (!S_ISREG(info.st_mode)) throw KeystoreError("master key file " + path + " is not a regular file");
  if ((info.st_mode & 077) != 0) {
    throw KeystoreError("master key file " + path + " has mode " + detail::octalMode(info.st_mode) +
                        ", which gives group or other users access; restrict it with: chmod 600 " + path);
  }
  const auto size = static_cast<std::size_t>(info.st_size);
  if (info.st_size < 0 || (size != kMasterKeyBytes && (size < 64 || size > 66))) {
    throw KeystoreError("master key file " + path + " has " + std::to_string(info.st_size) + " bytes; " + formatHint());
  }
  SecretBytes content(size + 1);  // one spare byte detects a file that grew since fstat
  std::size_t total = 0;
  while (total < content.size()) {
    const ssize_t n = ::read(fd.get(), content.data() + total, content.size() - total);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw KeystoreError("cannot read master key file " + path + ": " + errnoText(errno));
    }
    if (n == 0) break;
    total += static_cast<std::size_t>(n);
  }
  if (total != size) throw KeystoreError("master key file " + path + " changed while it was being read");
  std::optional<SecretBytes> key = parseKeyFileContent(content.data(), size);
  if (!key) throw KeystoreError("master key file " + path + " is not in a valid format; " + formatHint());
  return std::move(*key);
}

SecretBytes loadMasterKeyFromEnv(const std::string& variable) {
  if (variable.empty()) throw KeystoreError("no master key environment variable configured");
  const char* value = std::getenv(variable.c_str());
  if (value == nullptr) throw KeystoreError("environment variable " + variable + " (master key) is not set");
  // Tolerate surrounding whitespace: secrets injected by orchestrators often carry a trailing newline.
  const char* begin = value;
  const char* end = value + std::strlen(value);
  while (begin < end && std::isspace(static_cast<unsigned char>(*begin))) ++begin;
  while (end > begin && std::isspace(static_cast<unsigned char>(end[-1]))) --end;
  const auto length = static_cast<std::size_t>(end - begin);
  if (length != 2 * kMasterKeyBytes) {
    throw KeystoreError("environment variable " + variable +
                        " must hold 64 hex characters (a 32-byte master key), got " + std::to_string(length) +
                        " characters");
  }
  std::optional<SecretBytes> key = detail::decodeHex(begin, length);
  if (!key)
    throw KeystoreError("environment variable " + variable + " must hold 64 hex characters; found a non-hex character");
  return std::move(*key);
}

bool generateMasterKeyFile(const std::string& path) {
  if (path.empty()) throw KeystoreError("no master key file path given");
  // O_EXCL: never overwrite an existing key, that would make every encrypted study unreadable.
  FileDescriptor fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (fd.get() < 0) {
    const int error = errno;
    if (error == EEXIST) return false;
    if (error == ENOENT) {
      throw KeystoreError("cannot create master key file " + path + ": its directory does not exist");
    }
    throw KeystoreError("cannot create master key file " + path + ": " + errnoText(error));
  }
  auto fail = [&](const std::string& what, int error) {
    ::close(fd.release());
    ::unlink(path.c_str());
    return KeystoreError("cannot write master key file " + path + ": " + what + ": " + errnoText(error));
  };
  // The umask may have removed bits; make the mode exactly 0600 regardless.
  if (::fchmod(fd.get(), 0600) != 0) throw fail("chmod", errno);

  SecretBytes key(kMasterKeyBytes);
  detail::randomBytes(key.data(), key.size());
  std::string text = detail::encodeHex(key.data(), key.size()) + "\n";
  std::size_t written = 0;
  int writeError = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd.get(), text.data() + written, text.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      writeError = errno;
      break;
    }
    written += static_cast<std::size_t>(n);
  }
  OPENSSL_cleanse(&text[0], text.size());
  if (writeError != 0) throw fail("write", writeError);
  if (::fsync(fd.get()) != 0) throw fail("fsync", errno);
  if (::close(fd.release()) != 0) {
    const int error = errno;
    ::unlink(path.c_str());
    throw KeystoreError("cannot write master key file " + path + ": close: " + errnoText(error));
  }
  syncParentDirectory(path);
  return true;
}

}  // namespace pacsgw::keystore
