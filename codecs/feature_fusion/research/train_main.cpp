// feature-fusion-train: trains the feature-fusion model on real DICOM slices (random crops), with
// checkpoints, a held-out evaluation (decryption PSNR with the right and with a wrong key, 8-bit view)
// and a progress line. Deterministic for a given seed and file list.
//
//   feature-fusion-train --data FILE_OR_DIR... --holdout FILE_OR_DIR... --out MODEL
//                        [--minutes M] [--pretrain-minutes M] [--crop 64] [--batch 8] [--lr 1e-3]
//                        [--seed 1] [--resume CKPT] [--eval-every S] [--config small|full]
#include "codecs/eval/dicom_input.h"
#include "codecs/feature_fusion/slice_image.h"
#include "codecs/feature_fusion/feature_keys.h"
#include "codecs/feature_fusion/model.h"
#include "codecs/feature_fusion/quality.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <random>
#include <string>
#include <vector>

using namespace pacsgw::codecs::feature_fusion;

namespace {

struct Args {
  std::vector<std::string> data, holdout;
  std::string out, resume, config = "small";
  double minutes = 30, pretrainMinutes = 5, lr = 1e-3, evalEvery = 120;
  int crop = 64, batch = 8;
  std::uint64_t seed = 1;
};

Args parse(int argc, char** argv) {
  Args a;
  std::vector<std::string>* list = nullptr;
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(s + " needs a value");
      return argv[++i];
    };
    if (s == "--data") list = &a.data;
    else if (s == "--holdout") list = &a.holdout;
    else if (s == "--out") a.out = value(), list = nullptr;
    else if (s == "--resume") a.resume = value(), list = nullptr;
    else if (s == "--config") a.config = value(), list = nullptr;
    else if (s == "--minutes") a.minutes = std::stod(value()), list = nullptr;
    else if (s == "--pretrain-minutes") a.pretrainMinutes = std::stod(value()), list = nullptr;
    else if (s == "--lr") a.lr = std::stod(value()), list = nullptr;
    else if (s == "--eval-every") a.evalEvery = std::stod(value()), list = nullptr;
    else if (s == "--crop") a.crop = std::stoi(value()), list = nullptr;
    else if (s == "--batch") a.batch = std::stoi(value()), list = nullptr;
    else if (s == "--seed") a.seed = std::stoull(value()), list = nullptr;
    else if (list != nullptr && s.rfind("--", 0) != 0) list->push_back(s);
    else throw std::runtime_error("unknown argument " + s);
  }
  if (a.data.empty() || a.holdout.empty() || a.out.empty()) throw std::runtime_error("--data, --holdout and --out are required");
  return a;
}

std::vector<Slice> loadSlices(const std::vector<std::string>& inputs) {
  pacsgw::eval::DecoderRegistration codecs;
  std::vector<Slice> slices;
  for (const auto& path : pacsgw::eval::expandInputs(inputs)) {
    try {
      const auto image = pacsgw::eval::loadDicomImage(path);
      for (auto& s : slicesOf(image.layout, image.bytes)) slices.push_back(std::move(s));
    } catch (const std::exception& e) {
      std::cerr << "skipping " << path << ": " << e.what() << "\n";
    }
  }
  return slices;
}

}  // namespace

int main(int argc, char** argv) try {
  const Args args = parse(argc, argv);
  const auto train = loadSlices(args.data);
  const auto held = loadSlices(args.holdout);
  std::size_t usable = 0;
  for (const auto& s : train) usable += (s.rows >= args.crop && s.columns >= args.crop);
  if (usable == 0 || held.empty()) throw std::runtime_error("no usable training or held-out slices");
  std::printf("training slices %zu (usable at crop %d: %zu), held-out slices %zu\n", train.size(), args.crop, usable, held.size());

  ModelConfig mc;
  if (args.config == "full") {  // the paper's scale (GPU): 4 groups, PixelShuffle(16)
    mc.stemChannels = 32;
    mc.channels = {64, 128, 256, 256};
  }
  FeatureFusionModel model(mc, args.seed);
  TrainConfig tc;
  tc.learningRate = args.lr;
  FeatureFusionTrainer trainer(model, tc, args.seed);
  if (!args.resume.empty()) trainer.loadCheckpoint(args.resume);
  std::printf("parameters %zu\n", model.parameterCount());

  std::mt19937_64 rng(args.seed);
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  const double total = args.minutes * 60, pretrain = args.pretrainMinutes * 60;
  double nextEval = 0;
  long step = 0;
  std::vector<float> batch(static_cast<std::size_t>(args.batch) * args.crop * args.crop);
  std::vector<FeatureKeys> keys(static_cast<std::size_t>(args.batch));
  double seen = 0;
  for (;;) {
    const double t = elapsed();
    if (t >= nextEval || t >= total) {
      const auto q = heldOutQuality(model, held, args.seed);
      std::printf("\n[eval] t=%.0fs step=%ld psnr8_right=%.2f ssim8_right=%.4f psnr8_wrong=%.2f ssim8_wrong=%.4f cipher_entropy=%.4f\n",
                  t, step, q.psnrRight, q.ssimRight, q.psnrWrong, q.ssimWrong, q.cipherEntropy);
      model.save(args.out);
      trainer.saveCheckpoint(args.out + ".ckpt", static_cast<std::uint64_t>(step));
      std::fflush(stdout);
      nextEval = t + args.evalEvery;
      if (t >= total) break;
    }
    const bool fusion = t >= pretrain;
    // Encryption losses ramp in over the first third of the main stage (the paper's curriculum hint).
    const double ramp = fusion ? std::min(1.0, (t - pretrain) / std::max(1.0, (total - pretrain) / 3)) : 0.0;
    const double lr = fusion ? args.lr * 0.5 : args.lr;
    trainer.setLearningRate(lr);
    for (int b = 0; b < args.batch; ++b) {
      const Slice* s;
      do s = &train[rng() % train.size()]; while (s->rows < args.crop || s->columns < args.crop);
      const int r0 = static_cast<int>(rng() % (s->rows - args.crop + 1)), c0 = static_cast<int>(rng() % (s->columns - args.crop + 1));
      float* dst = &batch[static_cast<std::size_t>(b) * args.crop * args.crop];
      for (int r = 0; r < args.crop; ++r)
        std::memcpy(dst + r * args.crop, &s->values[static_cast<std::size_t>(r0 + r) * s->columns + c0], args.crop * sizeof(float));
      if (rng() & 1) // flips: cheap augmentation for a small corpus
        for (int r = 0; r < args.crop; ++r) std::reverse(dst + r * args.crop, dst + (r + 1) * args.crop);
      pacsgw::SecretBytes subkey(32);
      for (std::size_t i = 0; i < 32; ++i) subkey.data()[i] = static_cast<std::uint8_t>(rng());
      const auto digest = digestImage(reinterpret_cast<const std::uint8_t*>(dst), args.crop * args.crop * sizeof(float));
      keys[b] = featureKeys(digest, userKeyFromSubkey(subkey), mc.channels, args.crop, args.crop);
    }
    const auto l = trainer.step(batch, args.batch, args.crop, args.crop, keys, ramp, fusion);
    ++step;
    seen += args.batch;
    if (step % 20 == 0) {
      const double now = elapsed();
      std::printf("\rstep %ld %s loss %.4f l1 %.4f stats %.4f corr %.4f diff %.4f wrong %.4f | %.1f img/s | ETA %.0fs   ",
                  step, fusion ? "main" : "pre ", l.total, l.reconstruction, l.stats, l.correlation, l.diffusion, l.wrongKey,
                  seen / now, std::max(0.0, total - now));
      std::fflush(stdout);
    }
  }
  std::printf("\ndone: %ld steps in %.0f s, model %s\n", step, elapsed(), args.out.c_str());
  return 0;
} catch (const std::exception& e) {
  std::cerr << "feature-fusion-train: " << e.what() << "\n";
  return 1;
}
