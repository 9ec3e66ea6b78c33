#include "gateway/cli.h"

#include <cstdlib>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  // DCMTK disables Nagle on the sockets it creates only when this is set (Debian's 3.6.7 default
  // is off); the gateway also sets TCP_NODELAY itself on every socket it owns.
  ::setenv("TCP_NODELAY", "1", 1);
  std::vector<std::string> args(argv + 1, argv + argc);
  return pacsgw::gateway::runCli(args);
}
