#pragma once
// `pacsgw eval`: measures cipher backends with the research papers' metrics.
#include <string>
#include <vector>

namespace pacsgw::eval {
// args excludes the program name and the word "eval". Returns the process exit code.
int runEvalCommand(const std::vector<std::string>& args);
}  // namespace pacsgw::eval
