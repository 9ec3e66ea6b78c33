#pragma once
// `pacsgw encrypt|decrypt` over a folder: every regular file under IN, written to the same relative
// path under OUT, with a progress line on a terminal. One file's failure is reported and the run
// goes on; a file that has nothing to transform is skipped.
#include <cstddef>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace pacsgw::gateway {

// Thrown by a per-file step for a file that is left alone (e.g. no pixel data to encrypt).
struct SkipFile : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct FolderRunResult {
  std::size_t transformed = 0;
  std::vector<std::string> skipped;   // "<file>: <reason>"
  std::vector<std::string> failures;  // "<file>: <reason>"
  double bytes = 0;                   // input bytes of the transformed files
};

// Calls `step(in, out)` for each regular file under `inDir` (sorted, recursive), creating the output
// folders. `label` names the work on the progress line ("encrypt"). Refuses an OUT inside IN.
FolderRunResult runOverFolder(const std::filesystem::path& inDir, const std::filesystem::path& outDir,
                              const std::string& label,
                              const std::function<void(const std::filesystem::path&, const std::filesystem::path&)>& step);

}  // namespace pacsgw::gateway
