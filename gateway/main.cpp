#include "gateway/cli.h"
#include "gateway/process_hygiene.h"

#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <unistd.h>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  // Before any key is loaded: a core dump or a debugger attached by another user must not reveal the
  // master key or the data keys (docs/security.md, "Process hygiene").
  std::string problem;
  if (!pacsgw::gateway::disableCoreDumps(&problem))
    std::fprintf(stderr, "warning: cannot keep keys out of core dumps: %s\n", problem.c_str());
  // DCMTK treats socket descriptor 0 as "none": make sure 0-2 are taken even if we were started with
  // them closed, so no DICOM socket can land there.
  int fd = ::open("/dev/null", O_RDWR);
  while (fd >= 0 && fd <= 2) fd = ::open("/dev/null", O_RDWR);
  if (fd > 2) ::close(fd);
  // DCMTK disables Nagle on the sockets it creates only when this is set (Debian's 3.6.7 default
  // is off); the gateway also sets TCP_NODELAY itself on every socket it owns.
  ::setenv("TCP_NODELAY", "1", 1);
  std::vector<std::string> args(argv + 1, argv + argc);
  return pacsgw::gateway::runCli(args);
}
