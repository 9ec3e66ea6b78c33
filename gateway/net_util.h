#pragma once
// Socket-level helpers shared by every DICOM connection the gateway owns.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmnet/assoc.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pacsgw::gateway {

// Disables Nagle on a connected socket. Without it DCMTK's small PDUs wait for delayed ACKs
// (measured: 200 CT slices took ~9 s instead of ~0.3 s on loopback).
void setTcpNoDelay(int fd);
// The socket under a DCMTK association, or -1.
int associationSocket(T_ASC_Association* assoc);
// Numeric address of the peer of a connected socket ("127.0.0.1"), or "" on failure.
std::string peerAddress(int fd);
// Every numeric address `host` resolves to (a literal address resolves to itself).
std::vector<std::string> resolveHost(const std::string& host);

// A listening TCP socket bound to the configured address (DCMTK 3.6.7 can only bind to all
// interfaces, which would expose the gateway on networks the operator did not choose).
class ListenSocket {
 public:
  ListenSocket(const std::string& bindAddress, unsigned short port);  // throws std::runtime_error
  ~ListenSocket();
  ListenSocket(const ListenSocket&) = delete;
  ListenSocket& operator=(const ListenSocket&) = delete;
  // Waits up to `timeoutMs` for a connection; returns the connected fd or -1 (timeout / interrupted).
  int accept(int timeoutMs);
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

// What the first bytes of a connection say about its A-ASSOCIATE-RQ PDU.
struct AssociateRequestPrefix {
  enum class State { NeedMore, Complete, Invalid } state = State::NeedMore;
  std::uint32_t pduBytes = 0;  // whole PDU with its 6-byte header, once the header is known
};
// Pure: classifies `available` bytes from the start of a connection. Invalid for another PDU type or a
// PDU longer than `maxPduBytes`; NeedMore until the header and then the whole PDU are present.
AssociateRequestPrefix classifyAssociateRequest(const unsigned char* data, std::size_t available,
                                                std::uint32_t maxPduBytes);
// Waits until `fd` is readable; false on timeout or error.
bool waitReadable(int fd, int timeoutMs);
// Waits until a whole A-ASSOCIATE-RQ PDU (at most `maxPduBytes`) sits in the socket's receive buffer,
// so DCMTK can read it without blocking. False on timeout, a different PDU type or an oversized PDU.
bool associateRequestBuffered(int fd, int timeoutMs, std::uint32_t maxPduBytes = 64 * 1024);
// Non-blocking: true when a whole A-ASSOCIATE-RQ PDU (at most `maxPduBytes`) is already buffered.
bool associateRequestComplete(int fd, std::uint32_t maxPduBytes = 64 * 1024);
// A peer-supplied string made safe for a log line: non-printable bytes become '?', at most 64 chars.
std::string printable(const std::string& text);

}  // namespace pacsgw::gateway
