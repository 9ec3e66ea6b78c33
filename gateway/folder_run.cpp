#include "gateway/folder_run.h"

#include "terminal/progress_line.h"

#include <algorithm>

namespace pacsgw::gateway {

namespace fs = std::filesystem;

FolderRunResult runOverFolder(const fs::path& inDir, const fs::path& outDir, const std::string& label,
                              const std::function<void(const fs::path&, const fs::path&)>& step) {
  const fs::path in = fs::canonical(inDir);
  fs::create_directories(outDir);
  const fs::path out = fs::canonical(outDir);
  // Writing into the folder being read would feed outputs back in as inputs.
  const auto [mismatch, _] = std::mismatch(in.begin(), in.end(), out.begin(), out.end());
  if (mismatch == in.end()) throw std::runtime_error("output folder " + out.string() + " is inside " + in.string());

  std::vector<fs::path> files;
  for (const auto& entry : fs::recursive_directory_iterator(in)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());

  FolderRunResult result;
  terminal::ProgressLine progress(label, "files", files.size());
  std::size_t done = 0;
  for (const fs::path& file : files) {
    const fs::path target = out / fs::relative(file, in);
    try {
      fs::create_directories(target.parent_path());
      step(file, target);
      ++result.transformed;
      result.bytes += static_cast<double>(fs::file_size(file));
    } catch (const SkipFile& e) {
      result.skipped.push_back(file.string() + ": " + e.what());
    } catch (const std::exception& e) {
      result.failures.push_back(file.string() + ": " + e.what());
    }
    progress.update(++done, result.bytes);
  }
  progress.finish();
  return result;
}

}  // namespace pacsgw::gateway
