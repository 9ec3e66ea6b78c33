// `pacsgw train`: argument parsing, the trainer table, training data from DICOM files, the progress bar.
#include "codecs/eval/dicom_input.h"
#include "codecs/neural/training.h"
#include "terminal/progress_line.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iostream>
#include <stdexcept>

// Declares every registered trainer, then lists them (generated from codecs/CMakeLists.txt).
#define PACSGW_TRAINER(id, fn)            \
  namespace pacsgw::codecs::neural {      \
  int fn(const TrainOptions&, const TrainingSet&, TrainingProgress&); \
  }
#include "codecs/generated/trainer_entries.inc"
#undef PACSGW_TRAINER

namespace pacsgw::codecs::neural {
namespace {

struct TrainerRow {
  const char* id;
  TrainerFunction train;
};

const std::vector<TrainerRow>& trainerTable() {
  static const std::vector<TrainerRow> table{
#define PACSGW_TRAINER(id, fn) {id, &fn},
#include "codecs/generated/trainer_entries.inc"
#undef PACSGW_TRAINER
  };
  return table;
}

constexpr const char* kUsage =
    "usage: pacsgw train BACKEND --data DIR --out MODEL [--steps N] [--device cpu|cuda|auto] [--resume CKPT]\n"
    "                    [--seed S] [--hold-out SUBSTRING[,SUBSTRING...]] [--batch N] [--patch PIXELS]\n"
    "                    [--lr RATE] [--checkpoint-every N] [--threads N] [--width N] [--latent-channels N]\n"
    "                    [--res-blocks N]\n";

std::uint64_t number(const std::string& name, const std::string& v, std::uint64_t lo, std::uint64_t hi) {
  std::size_t used = 0;
  unsigned long long n = 0;
  try {
    n = std::stoull(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != v.size() || v.empty() || n < lo || n > hi)
    throw std::invalid_argument(name + " must be a whole number from " + std::to_string(lo) + " to " + std::to_string(hi));
  return n;
}

TrainOptions parse(const std::vector<std::string>& args) {
  TrainOptions o;
  std::vector<std::string> positional;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) != 0) {
      positional.push_back(a);
      continue;
    }
    if (i + 1 >= args.size()) throw std::invalid_argument(a + " needs a value");
    const std::string v = args[++i];
    if (a == "--data") o.dataDir = v;
    else if (a == "--out") o.out = v;
    else if (a == "--resume") o.resume = v;
    else if (a == "--device") {
      if (v != "cpu" && v != "cuda" && v != "auto") throw std::invalid_argument("--device must be cpu, cuda or auto");
      o.device = v;
    } else if (a == "--steps") o.steps = number(a, v, 1, 100000000);
    else if (a == "--seed") o.seed = number(a, v, 0, UINT64_MAX);
    else if (a == "--batch") o.batch = static_cast<int>(number(a, v, 1, 4096));
    else if (a == "--patch") o.patch = static_cast<int>(number(a, v, 8, 4096));
    else if (a == "--checkpoint-every") o.checkpointEvery = number(a, v, 1, 100000000);
    else if (a == "--threads") o.threads = static_cast<int>(number(a, v, 0, 256));
    else if (a == "--width") o.width = static_cast<int>(number(a, v, 2, 512));
    else if (a == "--latent-channels") o.latentChannels = static_cast<int>(number(a, v, 1, 64));
    else if (a == "--res-blocks") o.resBlocks = static_cast<int>(number(a, v, 0, 16));
    else if (a == "--lr") {
      try {
        o.learningRate = std::stod(v);
      } catch (const std::exception&) {
        o.learningRate = -1;
      }
      if (!(o.learningRate > 0 && o.learningRate < 1)) throw std::invalid_argument("--lr must be a number in (0, 1)");
    } else if (a == "--hold-out") {
      std::size_t start = 0;
      while (start <= v.size()) {
        const std::size_t comma = v.find(',', start);
        const std::string part = v.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!part.empty()) o.holdOut.push_back(part);
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    } else {
      throw std::invalid_argument("unknown option " + a);
    }
  }
  if (positional.size() != 1) throw std::invalid_argument("name exactly one BACKEND");
  o.backendId = positional[0];
  if (o.dataDir.empty() || o.out.empty()) throw std::invalid_argument("--data and --out are required");
  if (o.width % 2) throw std::invalid_argument("--width must be even");
  return o;
}

}  // namespace

double psnr8(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size() || a.empty()) throw std::invalid_argument("psnr8: sizes differ");
  double se = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(eightBit(a[i])) - eightBit(b[i]);
    se += d * d;
  }
  const double mse = se / static_cast<double>(a.size());
  return mse == 0 ? 99.0 : 10.0 * std::log10(255.0 * 255.0 / mse);
}

TrainingSet loadTrainingSet(const TrainOptions& options) {
  eval::DecoderRegistration decoders;
  TrainingSet set;
  for (const std::string& path : eval::expandInputs({options.dataDir})) {
    const bool held = std::any_of(options.holdOut.begin(), options.holdOut.end(),
                                  [&](const std::string& s) { return path.find(s) != std::string::npos; });
    eval::EvalImage img;
    try {
      img = eval::loadDicomImage(path);
    } catch (const std::exception& e) {
      set.skipped.push_back(path + ": " + e.what());
      continue;
    }
    if (img.modality != "CT" && img.modality != "MR") {
      set.skipped.push_back(path + ": modality " + (img.modality.empty() ? "missing" : img.modality) + ", not CT or MR");
      continue;
    }
    try {
      checkMonochromeLayout(img.layout, options.backendId);
    } catch (const std::exception& e) {
      set.skipped.push_back(path + ": " + e.what());
      continue;
    }
    const std::size_t bytes = frameBytes(img.layout);
    const std::size_t frames = img.bytes.size() / bytes;
    for (std::size_t f = 0; f < frames; ++f) {
      TrainingSet::Slice s;
      s.source = frames > 1 ? path + "#" + std::to_string(f + 1) : path;
      s.frame = readFrame(img.bytes.data() + f * bytes, img.layout);
      (held ? set.heldOut : set.train).push_back(std::move(s));
    }
  }
  return set;
}

TrainingProgress::TrainingProgress(std::uint64_t firstStep, std::uint64_t steps, std::FILE* out)
    : first_(firstStep), total_(steps), out_(out), terminal_(terminal::ProgressLine::drawsOn(out)) {}

double TrainingProgress::elapsedSeconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void TrainingProgress::startAt(std::uint64_t step) {
  first_ = step;
  lastLogged_ = step;
  images_ = 0;
  start_ = std::chrono::steady_clock::now();
}

const std::vector<double>& TrainingProgress::history(const std::string& name) const {
  static const std::vector<double> none;
  const auto it = history_.find(name);
  return it == history_.end() ? none : it->second;
}

void TrainingProgress::step(std::uint64_t step, const std::map<std::string, double>& losses, std::size_t images) {
  images_ += images;
  for (const auto& [name, value] : losses) history_[name].push_back(value);
  const auto now = std::chrono::steady_clock::now();
  const double elapsed = elapsedSeconds();
  const std::uint64_t done = step - first_;
  const double rate = elapsed > 0 ? static_cast<double>(images_) / elapsed : 0;
  const double eta = done > 0 ? elapsed / static_cast<double>(done) * static_cast<double>(total_ - step) : 0;
  const bool last = step == total_;
  std::string text = "step " + std::to_string(step) + "/" + std::to_string(total_);
  for (const auto& [name, value] : losses) {
    char buf[64];
    std::snprintf(buf, sizeof buf, " %s %.5g", name.c_str(), value);
    text += buf;
  }
  char tail[96];
  std::snprintf(tail, sizeof tail, " | %.1f images/s | ETA %s", rate, terminal::ProgressLine::formatDuration(eta).c_str());
  text += tail;
  if (terminal_) {
    if (!last && now - lastDraw_ < std::chrono::milliseconds(200)) return;
    lastDraw_ = now;
    const int width = 24;
    const int filled = static_cast<int>(width * static_cast<double>(step) / static_cast<double>(total_));
    std::string bar = "[" + std::string(filled, '=') + std::string(width - filled, ' ') + "] ";
    std::fprintf(out_, "\r\033[K%s%s", bar.c_str(), text.c_str());
    drawn_ = true;
  } else {
    const std::uint64_t every = std::max<std::uint64_t>(1, total_ / 50);
    if (!last && step - lastLogged_ < every) return;
    lastLogged_ = step;
    std::fprintf(out_, "%s\n", text.c_str());
  }
  std::fflush(out_);
}

void TrainingProgress::note(const std::string& line) {
  if (drawn_) std::fprintf(out_, "\r\033[K");
  std::fprintf(out_, "%s\n", line.c_str());
  std::fflush(out_);
  lastDraw_ = {};
}

void TrainingProgress::finish() {
  if (drawn_) std::fprintf(out_, "\n");
  drawn_ = false;
  std::fflush(out_);
}

int runTrainCommand(const std::vector<std::string>& args) {
  TrainOptions o;
  try {
    o = parse(args);
  } catch (const std::invalid_argument& e) {
    std::cerr << "pacsgw train: " << e.what() << "\n" << kUsage;
    return 2;
  }
  const TrainerRow* row = nullptr;
  std::string known;
  for (const TrainerRow& r : trainerTable()) {
    if (o.backendId == r.id) row = &r;
    known += (known.empty() ? "" : ", ") + std::string(r.id);
  }
  if (row == nullptr) {
    std::cerr << "pacsgw train: backend '" << o.backendId << "' has no trainer in this build (trainers: "
              << (known.empty() ? "none; build with LibTorch" : known) << ")\n";
    return 2;
  }
  const TrainingSet data = loadTrainingSet(o);
  std::cerr << "pacsgw train " << o.backendId << ": " << data.train.size() << " training slices, "
            << data.heldOut.size() << " held out, " << data.skipped.size() << " files skipped\n";
  if (data.train.empty()) {
    std::cerr << "pacsgw train: no CT or MR slices under " << o.dataDir << "\n";
    for (const auto& s : data.skipped) std::cerr << "  skipped " << s << "\n";
    return 1;
  }
  TrainingProgress progress(0, o.steps);
  const int rc = row->train(o, data, progress);
  progress.finish();
  return rc;
}

}  // namespace pacsgw::codecs::neural
