#pragma once
// `pacsgw eval` runs the separate pacsgw-eval program: the measurements need research hooks (chosen
// nonces, unverified decryption) that the service binary deliberately does not contain.
#include <string>
#include <vector>

namespace pacsgw {
// Replaces this process with pacsgw-eval (next to this executable, else on PATH) and the given
// arguments. Returns only on failure, with the exit code to use after printing why.
int runEvalProgram(const std::vector<std::string>& args);
}  // namespace pacsgw
