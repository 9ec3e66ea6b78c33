#pragma once
// `pacsgw spool status|retry`: what the spool holds, and sending quarantined instances again.
#include <string>
#include <vector>

namespace pacsgw::gateway::spool {

// args: everything after "spool". Returns the exit code; usage problems throw std::invalid_argument.
int runSpoolCommand(const std::vector<std::string>& args);

}  // namespace pacsgw::gateway::spool
