#pragma once
// `pacsgw` subcommands: thin layers over the gateway, codecs and keystore libraries.
#include <string>
#include <vector>

namespace pacsgw::gateway {
int runCli(const std::vector<std::string>& args);  // args without the program name
}  // namespace pacsgw::gateway
