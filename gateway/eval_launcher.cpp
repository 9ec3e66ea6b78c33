#include "gateway/eval_launcher.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>

namespace pacsgw {

int runEvalProgram(const std::vector<std::string>& args) {
  constexpr const char* kProgram = "pacsgw-eval";
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  std::string path = kProgram;
  if (!ec) {
    const auto sibling = self.parent_path() / kProgram;
    if (std::filesystem::exists(sibling, ec)) path = sibling.string();
  }
  std::vector<std::string> argvStrings{path};
  argvStrings.insert(argvStrings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argvStrings) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::cout.flush();
  if (path.find('/') != std::string::npos)
    ::execv(path.c_str(), argv.data());
  else
    ::execvp(path.c_str(), argv.data());
  std::cerr << "pacsgw eval: cannot run " << kProgram << " (" << std::strerror(errno)
            << "); it is built next to pacsgw and not part of the service image\n";
  return 2;
}

}  // namespace pacsgw
