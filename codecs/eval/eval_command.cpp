// `pacsgw eval`: command-line front end of the evaluation suite.
#include "codecs/eval/eval_command.h"

#include "codecs/eval/dicom_input.h"
#include "codecs/eval/eval_runner.h"
#include "codecs/eval/report.h"
#include "codecs/pixel_cipher.h"
#include "config/config.h"
#include "terminal/progress_line.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <stdexcept>

namespace pacsgw::eval {
namespace {

constexpr const char* kUsage =
    "usage: pacsgw eval [--config FILE] --backend NAME[,NAME...] --json OUT.json [--report OUT.html]\n"
    "                   [options] INPUT...\n"
    "\n"
    "Measures cipher backends on DICOM images with the research papers' metrics: entropy, adjacent-pixel\n"
    "correlation, NPCR/UACI with Wu et al.'s critical values, key sensitivity, PSNR/SSIM, robustness to\n"
    "noise and cropping, a NIST SP 800-22 subset and throughput. INPUT is a DICOM file or a directory\n"
    "(searched recursively); compressed inputs are decoded first. A random data key is used: no keystore.\n"
    "\n"
    "  --config FILE        gateway configuration; its cipher.device (and cipher.backend if --backend is\n"
    "                       absent) are used\n"
    "  --backend LIST       backend ids separated by commas, or 'all'\n"
    "  --json FILE          write the measurements as JSON (one object per backend)\n"
    "  --report FILE        also write a self-contained HTML report with figures\n"
    "  --device D           cpu | cuda | auto (overrides the configuration)\n"
    "  --pairs N            adjacent pixel pairs per direction (default 10000)\n"
    "  --seed N             seed of the sampling positions and noise (default 20250107)\n"
    "  --threads N          LibTorch intra-op threads (default 1: single-core figures)\n"
    "  --timing-seconds S   CPU time per direction for throughput (default 0.5)\n"
    "  --no-nist            skip the NIST tests\n"
    "  --nist-images N      images whose key streams and ciphertext are NIST-tested (default 1)\n"
    "  --nist-key-bits N    bits per key stream (default 1200000)\n"
    "  --figures N          images with figures in the HTML report (default 3)\n"
    "  --differential-runs N  repetitions of the one-pixel NPCR/UACI test (default 10)\n"
    "  --quiet              no progress output\n";

int usageError(const std::string& message) {
  std::cerr << "pacsgw eval: " << message << "\n\n" << kUsage;
  return 2;
}

std::vector<std::string> splitList(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

unsigned long long parseCount(const std::string& option, const std::string& value) {
  try {
    std::size_t used = 0;
    const unsigned long long v = std::stoull(value, &used);
    if (used == value.size()) return v;
  } catch (const std::exception&) {
  }
  throw std::invalid_argument(option + " needs a non-negative integer, got '" + value + "'");
}

std::string number(const Json& obj, const char* key, int decimals) {
  const Json* v = obj.find(key);
  if (v == nullptr || v->isNull()) return "inf";
  if (v->isBool()) return v->boolean() ? "pass" : "FAIL";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v->number());
  return buf;
}

void printSummary(const Json& root, std::ostream& out) {
  for (const auto& b : root.find("backends")->items()) {
    out << b.find("backend")->string() << ": entropy " << number(b, "entropy", 5) << " (8-bit view), corr h/v/d "
        << number(b, "corr_h", 4) << "/" << number(b, "corr_v", 4) << "/" << number(b, "corr_d", 4) << ", NPCR "
        << number(b, "npcr", 4) << "% (Wu 0.05 pass rate " << number(b, "npcr_pass_rate", 2);
    if (b.find("npcr_runs_pass_rate") && b.find("npcr_runs_pass_rate")->isNumber())
      out << ", repeated " << number(b, "npcr_runs_pass_rate", 2);
    out << "), UACI " << number(b, "uaci", 4) << "% (pass rate " << number(b, "uaci_pass_rate", 2);
    if (b.find("uaci_runs_pass_rate") && b.find("uaci_runs_pass_rate")->isNumber())
      out << ", repeated " << number(b, "uaci_runs_pass_rate", 2);
    out << "), lossless "
        << (b.find("lossless")->boolean() ? "yes" : "NO") << ", bit-exact through the gateway "
        << (b.find("bit_exact")->boolean() ? "yes" : "NO");
    if (!b.find("lossless")->boolean())
      out << ", decrypt PSNR " << number(b, "decrypt_psnr", 2) << " dB (8-bit) / " << number(b, "decrypt_psnr_full_range", 2)
          << " dB (full range), model " << number(b, "model_size_bytes", 0) << " bytes";
    out << ", encrypt " << number(b, "encrypt_mb_s", 1) << " MB/s (" << number(b, "encrypt_images_per_s", 2)
        << " images/s), decrypt " << number(b, "decrypt_mb_s", 1) << " MB/s (" << number(b, "decrypt_images_per_s", 2)
        << " images/s)";
    if (b.find("generator_ms")) out << ", generator " << number(b, "generator_ms", 3) << " ms/object";
    out << "\n";
  }
}

bool writeFile(const std::string& path, const std::string& content) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << content;
  f.close();
  return static_cast<bool>(f);
}

}  // namespace

int runEvalCommand(const std::vector<std::string>& args) {
  EvalOptions opt;
  std::string configPath, jsonPath, reportPath, device;
  std::vector<std::string> inputs;
  bool quiet = false;
  try {
    for (std::size_t i = 0; i < args.size(); ++i) {
      const std::string& a = args[i];
      auto value = [&]() -> const std::string& {
        if (i + 1 >= args.size()) throw std::invalid_argument(a + " needs a value");
        return args[++i];
      };
      if (a == "-h" || a == "--help") {
        std::cout << kUsage;
        return 0;
      } else if (a == "--config") {
        configPath = value();
      } else if (a == "--backend") {
        for (const auto& b : splitList(value())) opt.backends.push_back(b);
      } else if (a == "--json") {
        jsonPath = value();
      } else if (a == "--report") {
        reportPath = value();
      } else if (a == "--device") {
        device = value();
      } else if (a == "--pairs") {
        opt.pairs = parseCount(a, value());
      } else if (a == "--seed") {
        opt.seed = parseCount(a, value());
      } else if (a == "--threads") {
        opt.threads = static_cast<int>(parseCount(a, value()));
      } else if (a == "--timing-seconds") {
        const std::string v = value();
        opt.timingSeconds = std::stod(v);
        if (!(opt.timingSeconds >= 0)) throw std::invalid_argument("--timing-seconds must be >= 0");
      } else if (a == "--no-nist") {
        opt.nist = false;
      } else if (a == "--nist-images") {
        opt.nistImages = parseCount(a, value());
      } else if (a == "--nist-key-bits") {
        opt.nistKeyBits = parseCount(a, value());
        if (opt.nistKeyBits < 1000) throw std::invalid_argument("--nist-key-bits must be at least 1000");
      } else if (a == "--figures") {
        opt.figureImages = parseCount(a, value());
      } else if (a == "--differential-runs") {
        opt.differentialRuns = parseCount(a, value());
      } else if (a == "--quiet") {
        quiet = true;
      } else if (!a.empty() && a[0] == '-') {
        throw std::invalid_argument("unknown option " + a);
      } else {
        inputs.push_back(a);
      }
    }
  } catch (const std::exception& e) {
    return usageError(e.what());
  }
  if (jsonPath.empty()) return usageError("--json is required");
  if (inputs.empty()) return usageError("no INPUT given");

  // The gateway configuration provides the device (and the default backend); no keystore is opened.
  std::string configBackend;
  if (!configPath.empty()) {
    try {
      const config::Config cfg = config::loadConfig(configPath);
      if (device.empty()) device = cfg.cipher.device;
      configBackend = cfg.cipher.backend;
    } catch (const std::exception& e) {
      std::cerr << "pacsgw eval: " << e.what() << "\n";
      return 2;
    }
  }
  opt.device = device.empty() ? "cpu" : device;
  if (opt.backends.empty()) {
    if (configBackend.empty()) return usageError("--backend is required without --config");
    opt.backends.push_back(configBackend);
  }
  if (opt.backends.size() == 1 && opt.backends[0] == "all") opt.backends = codecs::availableBackends();
  for (const auto& b : opt.backends) {
    bool known = false;
    for (const auto& a : codecs::availableBackends()) known = known || a == b;
    if (!known) {
      std::string list;
      for (const auto& a : codecs::availableBackends()) list += (list.empty() ? "" : ", ") + a;
      return usageError("unknown backend '" + b + "' (available: " + list + ")");
    }
  }

  // On a terminal a progress line replaces the step log; elsewhere (a file, CI) the step log stays
  // plain text, and --quiet silences both.
  const bool drawProgress = !quiet && terminal::ProgressLine::drawsOn(stderr);
  std::ostringstream sink;
  std::ostream& log = quiet || drawProgress ? static_cast<std::ostream&>(sink) : std::cerr;
  try {
    DecoderRegistration codecsRegistered;
    std::vector<EvalImage> images;
    for (const auto& path : expandInputs(inputs)) {
      try {
        images.push_back(loadDicomImage(path));
        log << "loaded " << path << "\n";
      } catch (const std::exception& e) {
        std::cerr << "pacsgw eval: skipping " << e.what() << "\n";
      }
    }
    if (images.empty()) {
      std::cerr << "pacsgw eval: no usable DICOM image among the inputs\n";
      return 1;
    }
    EvalProgress progress;
    std::optional<terminal::ProgressLine> progressLine;
    if (drawProgress) {
      progressLine.emplace("eval", "evaluations", opt.backends.size() * images.size());
      progress = [&](std::size_t done, std::size_t, double bytes) { progressLine->update(done, bytes); };
    }
    const EvalReport report = runEvaluation(images, opt, log, progress);
    if (progressLine) progressLine->finish();
    if (!writeFile(jsonPath, report.json.dump(2) + "\n")) {
      std::cerr << "pacsgw eval: cannot write " << jsonPath << "\n";
      return 1;
    }
    if (!reportPath.empty() && !writeFile(reportPath, renderHtmlReport(report))) {
      std::cerr << "pacsgw eval: cannot write " << reportPath << "\n";
      return 1;
    }
    printSummary(report.json, std::cout);
  } catch (const std::exception& e) {
    std::cerr << "pacsgw eval: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace pacsgw::eval
