#pragma once
// Keeping key material out of places it could leak from: core dumps, /proc/<pid>/environ, ptrace by
// other users' processes. See docs/security.md, "Process hygiene".
#include <string>

namespace pacsgw::gateway {

// Marks the process non-dumpable (PR_SET_DUMPABLE 0: no core dump, no ptrace attach by non-root,
// /proc/<pid>/mem and environ readable by root only) and sets the core size limit to 0. Called first
// thing in main, before any key is loaded. Returns false (and leaves a reason) if the kernel refused.
bool disableCoreDumps(std::string* problem = nullptr);

// Overwrites the value of the environment variable in place, then removes it: unsetenv alone leaves
// the original bytes in the process's initial environment block (/proc/<pid>/environ).
void clearEnvironmentSecret(const std::string& variable);

}  // namespace pacsgw::gateway
