// pacsgw-eval: the evaluation program. `pacsgw eval ...` runs it, so that the service binary never
// contains the research hooks (chosen nonces, unverified decryption) the measurements need.
#include "codecs/dicom_crypt.h"
#include "codecs/eval/eval_command.h"
#include "codecs/neural/training.h"

#include <exception>
#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "eval") args.erase(args.begin());
  try {
    pacsgw::codecs::registerKeyReferenceDictionary();
    if (!args.empty() && args[0] == "train") {
      args.erase(args.begin());
      return pacsgw::codecs::neural::runTrainCommand(args);
    }
    return pacsgw::eval::runEvalCommand(args);
  } catch (const std::exception& e) {
    std::cerr << "pacsgw eval: " << e.what() << "\n";
    return 1;
  }
}
