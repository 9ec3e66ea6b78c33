// Fuzzes the buffering of the A-ASSOCIATE-RQ before it is handed to DCMTK: the first bytes of a
// connection, classified directly and through a real socket pair with the sender closed. The three
// views must agree, and nothing may read past what arrived.
#include "gateway/net_util.h"

#include <cstdint>
#include <cstdlib>
#include <sys/socket.h>
#include <unistd.h>

namespace {
constexpr std::uint32_t kMaxPdu = 64 * 1024;

bool expectedComplete(const std::uint8_t* data, std::size_t size) {
  if (size < 6 || data[0] != 0x01) return false;
  const std::uint32_t length = (std::uint32_t(data[2]) << 24) | (std::uint32_t(data[3]) << 16) |
                               (std::uint32_t(data[4]) << 8) | std::uint32_t(data[5]);
  return length <= kMaxPdu && size >= 6ull + length;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using pacsgw::gateway::AssociateRequestPrefix;
  if (size > 100000) return -1;  // larger than any socket buffer we would write in one go
  const bool expected = expectedComplete(data, size);
  const auto prefix = pacsgw::gateway::classifyAssociateRequest(data, size, kMaxPdu);
  if ((prefix.state == AssociateRequestPrefix::State::Complete) != expected) std::abort();
  if (prefix.state == AssociateRequestPrefix::State::Complete && prefix.pduBytes > size) std::abort();

  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) return 0;
  int sndbuf = 256 * 1024;
  ::setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
  ::setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &sndbuf, sizeof(sndbuf));
  std::size_t written = 0;
  while (written < size) {
    const ssize_t n = ::send(fds[0], data + written, size - written, MSG_DONTWAIT);
    if (n <= 0) break;
    written += static_cast<std::size_t>(n);
  }
  ::shutdown(fds[0], SHUT_WR);
  if (written == size) {
    const bool complete = pacsgw::gateway::associateRequestComplete(fds[1], kMaxPdu);
    const bool buffered = pacsgw::gateway::associateRequestBuffered(fds[1], 50, kMaxPdu);
    if (complete != expected || buffered != expected) std::abort();
  }
  ::close(fds[0]);
  ::close(fds[1]);
  return 0;
}
