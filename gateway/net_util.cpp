#include "gateway/net_util.h"

#include <dcmtk/dcmnet/dcmtrans.h>
#include <dcmtk/dcmnet/dulstruc.h>

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdexcept>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

namespace pacsgw::gateway {

void setTcpNoDelay(int fd) {
  if (fd < 0) return;
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

namespace {
// DCMTK keeps the socket accessor protected; a using-declaration in a derived class yields a
// member pointer we may apply to the base object.
struct SocketAccess : DcmTransportConnection {
  using DcmTransportConnection::getSocket;
};
}  // namespace

int associationSocket(T_ASC_Association* assoc) {
  if (assoc == nullptr || assoc->DULassociation == nullptr) return -1;
  auto* key = reinterpret_cast<PRIVATE_ASSOCIATIONKEY*>(assoc->DULassociation);
  if (key->connection == nullptr) return -1;
  DcmNativeSocketType (DcmTransportConnection::*get)() = &SocketAccess::getSocket;
  return static_cast<int>((key->connection->*get)());
}

std::string peerAddress(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "";
  char text[INET6_ADDRSTRLEN] = {0};
  if (addr.ss_family == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&addr)->sin_addr, text, sizeof(text));
  } else if (addr.ss_family == AF_INET6) {
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&addr);
    if (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) {
      ::inet_ntop(AF_INET, &a6->sin6_addr.s6_addr[12], text, sizeof(text));
    } else {
      ::inet_ntop(AF_INET6, &a6->sin6_addr, text, sizeof(text));
    }
  }
  return text;
}

std::vector<std::string> resolveHost(const std::string& host) {
  std::vector<std::string> out;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  if (::getaddrinfo(host.c_str(), nullptr, &hints, &result) != 0) return out;
  for (addrinfo* it = result; it != nullptr; it = it->ai_next) {
    char text[INET6_ADDRSTRLEN] = {0};
    if (it->ai_family == AF_INET) {
      ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(it->ai_addr)->sin_addr, text, sizeof(text));
    } else if (it->ai_family == AF_INET6) {
      ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(it->ai_addr)->sin6_addr, text, sizeof(text));
    }
    if (text[0] != '\0') out.emplace_back(text);
  }
  ::freeaddrinfo(result);
  return out;
}

ListenSocket::ListenSocket(const std::string& bindAddress, unsigned short port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* result = nullptr;
  const std::string service = std::to_string(port);
  int rc = ::getaddrinfo(bindAddress.empty() ? nullptr : bindAddress.c_str(), service.c_str(), &hints, &result);
  if (rc != 0) {
    throw std::runtime_error("cannot resolve bind address '" + bindAddress + "': " + gai_strerror(rc));
  }
  std::string lastError = "no usable address";
  for (addrinfo* it = result; it != nullptr; it = it->ai_next) {
    int fd = ::socket(it->ai_family, it->ai_socktype | SOCK_CLOEXEC, it->ai_protocol);
    if (fd < 0) {
      lastError = std::strerror(errno);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, it->ai_addr, it->ai_addrlen) == 0 && ::listen(fd, 64) == 0) {
      fd_ = fd;
      break;
    }
    lastError = std::strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(result);
  if (fd_ < 0) {
    throw std::runtime_error("cannot listen on " + bindAddress + ":" + service + ": " + lastError);
  }
}

ListenSocket::~ListenSocket() {
  if (fd_ >= 0) ::close(fd_);
}

int ListenSocket::accept(int timeoutMs) {
  if (!waitReadable(fd_, timeoutMs)) return -1;
  int fd = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) {
    // Out of descriptors: the listen socket stays readable, so back off instead of spinning.
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) ::poll(nullptr, 0, 100);
    return -1;
  }
  setTcpNoDelay(fd);
  return fd;
}

AssociateRequestPrefix classifyAssociateRequest(const unsigned char* data, std::size_t available,
                                                std::uint32_t maxPduBytes) {
  AssociateRequestPrefix out;
  if (available >= 1 && data[0] != 0x01) {
    out.state = AssociateRequestPrefix::State::Invalid;
    return out;
  }
  if (available < 6) return out;
  const std::uint32_t length = (std::uint32_t(data[2]) << 24) | (std::uint32_t(data[3]) << 16) |
                               (std::uint32_t(data[4]) << 8) | std::uint32_t(data[5]);
  if (length > maxPduBytes) {
    out.state = AssociateRequestPrefix::State::Invalid;
    return out;
  }
  out.pduBytes = 6 + length;
  if (available >= out.pduBytes) out.state = AssociateRequestPrefix::State::Complete;
  return out;
}

bool associateRequestBuffered(int fd, int timeoutMs, std::uint32_t maxPduBytes) {
  using Clock = std::chrono::steady_clock;
  using State = AssociateRequestPrefix::State;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
  // SO_RCVLOWAT makes poll() wait for `n` bytes instead of one, so a slow sender cannot make us spin.
  auto waitFor = [&](int n) {
    ::setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &n, sizeof(n));
    // Past the deadline, still look once without waiting: bytes that arrived in time count even when
    // this thread was scheduled late.
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return waitReadable(fd, static_cast<int>(std::max<long long>(left, 0)));
  };
  unsigned char header[6];
  AssociateRequestPrefix prefix;
  if (waitFor(6)) {
    const ssize_t n = ::recv(fd, header, sizeof(header), MSG_PEEK);
    prefix = classifyAssociateRequest(header, n > 0 ? static_cast<std::size_t>(n) : 0, maxPduBytes);
    if (n == 6 && prefix.state == State::NeedMore && waitFor(static_cast<int>(prefix.pduBytes))) {
      int buffered = 0;
      if (::ioctl(fd, FIONREAD, &buffered) == 0 && buffered > 0) {
        prefix = classifyAssociateRequest(header, static_cast<std::size_t>(buffered), maxPduBytes);
      }
    }
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one));
  return prefix.state == State::Complete;
}

bool associateRequestComplete(int fd, std::uint32_t maxPduBytes) {
  unsigned char header[6];
  if (::recv(fd, header, sizeof(header), MSG_PEEK | MSG_DONTWAIT) != 6) return false;
  int buffered = 0;
  if (::ioctl(fd, FIONREAD, &buffered) != 0 || buffered < 6) return false;
  return classifyAssociateRequest(header, static_cast<std::size_t>(buffered), maxPduBytes).state ==
         AssociateRequestPrefix::State::Complete;
}

std::string printable(const std::string& text) {
  std::string out;
  // Backslash is the DICOM value separator: keep it out of single-valued comments too.
  for (char c : text.substr(0, 64)) out += (c >= 0x20 && c <= 0x7E && c != '\\') ? c : '?';
  return out;
}

bool waitReadable(int fd, int timeoutMs) {
  pollfd p{fd, POLLIN, 0};
  int rc = ::poll(&p, 1, timeoutMs);
  return rc > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0;
}

}  // namespace pacsgw::gateway
