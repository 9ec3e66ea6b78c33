// `pacsgw train feature-fusion`: random patches of real CT/MR slices, auto-encoder pre-training (fusion
// off) for the first fifth of the steps, then the paper's full loss with the encryption terms ramped in
// over the next third; checkpoints that resume exactly; validation on held-out slices (decryption PSNR
// with the right and with a wrong key, 8-bit view). The recipe is in docs/ciphers.md.
#include "codecs/feature_fusion/feature_keys.h"
#include "codecs/feature_fusion/model.h"
#include "codecs/feature_fusion/quality.h"
#include "codecs/feature_fusion/slice_image.h"
#include "codecs/neural/training.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <random>

namespace pacsgw::codecs::neural {
namespace ff = feature_fusion;

namespace {

// The batch of step `step`: a function of (seed, step) only, so a resumed run sees the same batches.
void batchFor(const std::vector<const TrainingSet::Slice*>& slices, const TrainOptions& o, std::uint64_t step,
              const ff::ModelConfig& config, std::vector<float>& batch, std::vector<ff::FeatureKeys>& keys) {
  std::mt19937_64 rng(o.seed * 0x9E3779B97F4A7C15ULL + step);
  const int p = o.patch;
  batch.assign(static_cast<std::size_t>(o.batch) * p * p, 0.f);
  keys.clear();
  for (int b = 0; b < o.batch; ++b) {
    const UnitFrame& f = slices[rng() % slices.size()]->frame;
    const int top = static_cast<int>(rng() % static_cast<std::uint64_t>(f.rows - p + 1));
    const int left = static_cast<int>(rng() % static_cast<std::uint64_t>(f.columns - p + 1));
    const bool flipX = rng() & 1, flipY = rng() & 2;
    float* dst = &batch[static_cast<std::size_t>(b) * p * p];
    for (int y = 0; y < p; ++y)
      for (int x = 0; x < p; ++x) {
        const int sy = flipY ? p - 1 - y : y, sx = flipX ? p - 1 - x : x;
        dst[y * p + x] = f.values[static_cast<std::size_t>(top + sy) * f.columns + left + sx];
      }
    SecretBytes key(32);
    for (std::size_t i = 0; i < 32; ++i) key.data()[i] = static_cast<std::uint8_t>(rng());
    const auto digest = ff::digestImage(reinterpret_cast<const std::uint8_t*>(dst), static_cast<std::size_t>(p) * p * sizeof(float));
    keys.push_back(ff::featureKeys(digest, ff::userKeyFromSubkey(key), config.channels, p, p));
  }
}

std::vector<ff::Slice> asSlices(const std::vector<TrainingSet::Slice>& in) {
  std::vector<ff::Slice> out;
  for (const auto& s : in) {
    ff::Slice x;
    x.rows = s.frame.rows;
    x.columns = s.frame.columns;
    x.low = s.frame.window.lo;
    x.high = s.frame.window.hi;
    x.values = s.frame.values;
    out.push_back(std::move(x));
  }
  return out;
}

}  // namespace

int trainFeatureFusion(const TrainOptions& o, const TrainingSet& data, TrainingProgress& progress) {
  if (o.device != "cpu" && o.device != "auto") {
    progress.note("feature-fusion trains on the CPU in this build");
    return 2;
  }
  if (o.threads > 0) ff::setTorchThreads(o.threads);
  std::vector<const TrainingSet::Slice*> usable;
  for (const auto& s : data.train)
    if (s.frame.rows >= o.patch && s.frame.columns >= o.patch) usable.push_back(&s);
  if (usable.empty() || o.patch % 8 != 0) {
    progress.note("no training slice of at least " + std::to_string(o.patch) + " pixels (patch must be a multiple of 8)");
    return 2;
  }
  ff::ModelConfig config;  // the small configuration; docs/ciphers.md gives the full-size one
  ff::FeatureFusionModel model(config, o.seed);
  ff::TrainConfig tc;
  tc.learningRate = o.learningRate;
  ff::FeatureFusionTrainer trainer(model, tc, o.seed);
  std::uint64_t step = 0;
  if (!o.resume.empty()) {
    step = trainer.loadCheckpoint(o.resume);
    progress.note("resumed from " + o.resume + " at step " + std::to_string(step));
  }
  const auto heldOut = asSlices(data.heldOut);
  const std::uint64_t pretrain = o.steps / 5, ramp = std::max<std::uint64_t>(1, (o.steps - pretrain) / 3);
  std::vector<float> batch;
  std::vector<ff::FeatureKeys> keys;
  for (; step < o.steps; ++step) {
    const bool fusion = step >= pretrain;
    const double weight = fusion ? std::min(1.0, static_cast<double>(step - pretrain) / ramp) : 0.0;
    trainer.setLearningRate(fusion ? o.learningRate * 0.5 : o.learningRate);
    batchFor(usable, o, step, config, batch, keys);
    const auto l = trainer.step(batch, o.batch, o.patch, o.patch, keys, weight, fusion);
    progress.step(step + 1, {{"loss", l.total}, {"l1", l.reconstruction}, {"stats", l.stats}, {"corr", l.correlation},
                             {"diff", l.diffusion}, {"wrong", l.wrongKey}},
                  static_cast<std::size_t>(o.batch));
    if ((step + 1) % o.checkpointEvery == 0 || step + 1 == o.steps) {
      trainer.saveCheckpoint(o.out + ".ckpt", step + 1);
      if (!heldOut.empty()) {
        const auto q = ff::heldOutQuality(model, heldOut, o.seed);
        progress.note("step " + std::to_string(step + 1) + ": held-out PSNR (8-bit) right key " + std::to_string(q.psnrRight) +
                      " dB, wrong key " + std::to_string(q.psnrWrong) + " dB, SSIM " + std::to_string(q.ssimRight) + " / " +
                      std::to_string(q.ssimWrong) + ", cipher entropy " + std::to_string(q.cipherEntropy));
      }
    }
  }
  model.save(o.out);
  progress.finish();
  progress.note("model written to " + o.out + " (" + std::to_string(model.parameterCount()) + " parameters)");
  return 0;
}

}  // namespace pacsgw::codecs::neural
