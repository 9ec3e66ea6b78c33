#pragma once
// `pacsgw train BACKEND ...`: what every neural backend's trainer receives. No LibTorch here.
// A backend's trainer joins the trainer table with TRAINER fn TRAIN_LIBRARY lib on its line in
// codecs/CMakeLists.txt; `pacsgw train` runs in the pacsgw-eval program, never in the service binary.
#include "codecs/neural/frames.h"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace pacsgw::codecs::neural {

struct TrainOptions {
  std::string backendId;
  std::string dataDir;                // walked recursively for DICOM CT/MR files
  std::vector<std::string> holdOut;   // path substrings: such files are never trained on, only validated
  std::string out;                    // the model file written at the end
  std::string resume;                 // a checkpoint to continue from ("" = start afresh)
  std::string device = "cpu";         // cpu | cuda | auto
  std::uint64_t steps = 2000;
  std::uint64_t seed = 1;
  int batch = 8;
  int patch = 64;                     // square training patches (pixels)
  double learningRate = 1e-3;
  std::uint64_t checkpointEvery = 100;  // steps; the checkpoint is <out>.ckpt
  int threads = 0;                    // LibTorch intra-op threads (0 = LibTorch's default)
  int width = 32;                     // model width (autoencoder family)
  int latentChannels = 3;             // latent channels (autoencoder family)
  int resBlocks = 2;                  // residual blocks per generator half (edgnet)
};

// Every frame of every usable file, windowed as for inference (frames.h).
struct TrainingSet {
  struct Slice {
    std::string source;  // file path, "#frame" appended for multi-frame files
    UnitFrame frame;
  };
  std::vector<Slice> train;
  std::vector<Slice> heldOut;
  std::vector<std::string> skipped;  // files not used, with the reason
};

// Loads CT and MR files (any transfer syntax DCMTK decodes; 8 or 16 bits, one sample per pixel) below
// options.dataDir, sorted by path, split by options.holdOut.
TrainingSet loadTrainingSet(const TrainOptions& options);

// The progress bar: step, losses, images/s, ETA; one self-rewriting line on a terminal, else a log line
// every few percent. Also the log of checkpoints and validations.
class TrainingProgress {
 public:
  TrainingProgress(std::uint64_t firstStep, std::uint64_t steps, std::FILE* out = stderr);
  // A resumed run starts at `step` (rates and ETA count from there).
  void startAt(std::uint64_t step);
  void step(std::uint64_t step, const std::map<std::string, double>& losses, std::size_t images);
  void note(const std::string& line);  // a full line (checkpoint written, validation PSNR, ...)
  double elapsedSeconds() const;
  void finish();
  // Every value reported for loss `name`, one per step (for tests and curves).
  const std::vector<double>& history(const std::string& name) const;

 private:
  std::uint64_t first_, total_;
  std::FILE* out_;
  bool terminal_;
  bool drawn_ = false;
  std::size_t images_ = 0;
  std::uint64_t lastLogged_ = 0;
  std::map<std::string, std::vector<double>> history_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point lastDraw_{};
};

// A backend's trainer: trains and writes options.out; returns the process exit code.
using TrainerFunction = int (*)(const TrainOptions& options, const TrainingSet& data, TrainingProgress& progress);

// The generic autoencoder trainer (ae-aes, and every backend of the autoencoder family): MSE on
// windowed patches, Adam, cosine learning-rate decay, 8-bit latent with straight-through rounding.
int trainAutoencoder(const TrainOptions& options, const TrainingSet& data, TrainingProgress& progress);

// Peak signal-to-noise ratio of the 8-bit views (frames.h) of two unit frames, in dB.
double psnr8(const std::vector<float>& a, const std::vector<float>& b);

// `pacsgw train` / `pacsgw-eval train`: parses the arguments and runs the backend's trainer.
int runTrainCommand(const std::vector<std::string>& args);

}  // namespace pacsgw::codecs::neural
