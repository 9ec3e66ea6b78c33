#pragma once
// `pacsgw migrate`: encrypts studies that are already in the PACS in clear, through the same code
// path as the store service, and stores them back under the same UIDs so the PACS replaces them.
#include <string>
#include <vector>

namespace pacsgw::gateway {

// args: everything after "migrate". Returns the process exit status (0: nothing failed).
int runMigrateCommand(const std::vector<std::string>& args);

}  // namespace pacsgw::gateway
