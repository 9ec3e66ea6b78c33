// The EdgNet trainer (the second translation unit with LibTorch): the two generators and four
// discriminators of the paper trained jointly on patches of real CT/MR slices (plain domain) and of
// logistic-map cipher images of other patches (cipher domain, reference_cipher.h), with the LSGAN,
// cycle, identity and CAM losses; checkpoints that resume; validation of the gateway's tiled
// encrypt -> 8-bit cipher image -> decrypt path on held-out slices.
#include "codecs/edgnet/edgnet_module.h"
#include "codecs/edgnet/reference_cipher.h"
#include "codecs/neural/autoencoder.h"
#include "codecs/neural/training.h"
#include "terminal/progress_line.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

namespace pacsgw::codecs::neural {
namespace {

namespace F = torch::nn::functional;
using namespace codecs::edgnet;

// Loss weights (docs/ciphers.md, "edgnet"). The paper's were lost in its text; these follow U-GAT-IT's
// (adversarial 1, cycle 10, identity 10, CAM 1000) with the plain-domain cycle doubled (it is what
// decrypts) and the CAM weight lowered to 10: at 100 the generators' CAM term was still about 90 % of
// their loss after the warm-up, leaving the cycle term little say.
constexpr double kAdversarialWeight = 1.0;
constexpr double kPlainCycleWeight = 20.0;
constexpr double kCipherCycleWeight = 10.0;
constexpr double kIdentityWeight = 10.0;
constexpr double kCamWeight = 10.0;
constexpr double kWeightDecay = 1e-4;
// The first fifth of the steps trains the cycle (and identity) alone: the decryption path first.
constexpr double kWarmupFraction = 0.2;
constexpr int kGlobalLayers = 5, kLocalLayers = 3;

std::vector<std::uint8_t> fileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CipherError("cannot read " + path);
  return std::vector<std::uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

struct CriticsImpl : torch::nn::Module {
  explicit CriticsImpl(int ndf) {
    plainGlobal = register_module("plain_global", detail::Discriminator(ndf, kGlobalLayers));
    plainLocal = register_module("plain_local", detail::Discriminator(ndf, kLocalLayers));
    cipherGlobal = register_module("cipher_global", detail::Discriminator(ndf, kGlobalLayers));
    cipherLocal = register_module("cipher_local", detail::Discriminator(ndf, kLocalLayers));
  }
  detail::Discriminator plainGlobal{nullptr}, plainLocal{nullptr}, cipherGlobal{nullptr}, cipherLocal{nullptr};
};
TORCH_MODULE(Critics);

// A random patch of a random slice, preferring patches with structure over empty background.
void drawPatch(const std::vector<const TrainingSet::Slice*>& slices, int p, std::mt19937_64& rng, float* out) {
  const UnitFrame* f = nullptr;
  int top = 0, left = 0;
  for (int attempt = 0; attempt < 4; ++attempt) {
    f = &slices[rng() % slices.size()]->frame;
    top = static_cast<int>(rng() % static_cast<std::uint64_t>(f->rows - p + 1));
    left = static_cast<int>(rng() % static_cast<std::uint64_t>(f->columns - p + 1));
    double sum = 0, sq = 0;
    for (int y = 0; y < p; y += 4)
      for (int x = 0; x < p; x += 4) {
        const double v = f->values[static_cast<std::size_t>(top + y) * f->columns + left + x];
        sum += v;
        sq += v * v;
      }
    const double n = (p / 4.0) * (p / 4.0);
    if (sq / n - (sum / n) * (sum / n) > 1e-4) break;
  }
  const bool flipX = rng() & 1, flipY = rng() & 2;
  for (int y = 0; y < p; ++y)
    for (int x = 0; x < p; ++x) {
      const int sy = flipY ? p - 1 - y : y, sx = flipX ? p - 1 - x : x;
      out[y * p + x] = f->values[static_cast<std::size_t>(top + sy) * f->columns + left + sx];
    }
}

// The batches of step `step`, a function of (seed, step) only (a resumed run sees the same ones): plain
// patches, and cipher-domain examples (other patches under the logistic-map cipher; unpaired, as the
// paper's two domains are). Both in [-1, 1].
std::pair<torch::Tensor, torch::Tensor> batchesFor(const std::vector<const TrainingSet::Slice*>& slices,
                                                   const TrainOptions& o, std::uint64_t step) {
  std::mt19937_64 rng(o.seed * 0x9E3779B97F4A7C15ULL + step);
  const int p = o.patch;
  torch::Tensor plain = torch::empty({o.batch, 1, p, p}, torch::kFloat32);
  torch::Tensor cipher = torch::empty({o.batch, 1, p, p}, torch::kFloat32);
  std::vector<float> patch(static_cast<std::size_t>(p) * p);
  std::vector<std::uint8_t> bytes(patch.size());
  for (int b = 0; b < o.batch; ++b) {
    drawPatch(slices, p, rng, plain.data_ptr<float>() + static_cast<std::size_t>(b) * p * p);
    drawPatch(slices, p, rng, patch.data());
    for (std::size_t i = 0; i < patch.size(); ++i) bytes[i] = eightBit(patch[i]);
    const auto c = logisticEncrypt(bytes, referenceKey(o.seed, step * static_cast<std::uint64_t>(o.batch) + b));
    float* dst = cipher.data_ptr<float>() + static_cast<std::size_t>(b) * p * p;
    for (std::size_t i = 0; i < c.size(); ++i) dst[i] = static_cast<float>(c[i]) / 255.f;
  }
  return {plain * 2 - 1, cipher * 2 - 1};
}

// The 8-bit cipher image the gateway stores; the gradient passes straight through the rounding.
torch::Tensor quantise(const torch::Tensor& y) {
  const auto q = torch::round((y + 1) * 127.5) / 127.5 - 1;
  return y + (q - y).detach();
}

torch::Tensor lsgan(const std::pair<torch::Tensor, torch::Tensor>& out, double target) {
  return F::mse_loss(out.first, torch::full_like(out.first, target)) +
         F::mse_loss(out.second, torch::full_like(out.second, target));
}

torch::Tensor bce(const torch::Tensor& logits, double target) {
  return F::binary_cross_entropy_with_logits(logits, torch::full_like(logits, target));
}

// Mean PSNR (8-bit view) of the gateway's path on whole held-out slices: tiles, G_enc, 8-bit cipher image,
// G_dec (as EdgNetModel does).
double validate(detail::GeneratorPair& pair, const std::vector<TrainingSet::Slice>& slices, torch::Device device) {
  if (slices.empty()) return 0;
  torch::NoGradGuard noGrad;
  double sum = 0;
  const int tile = pair->shape.tile;
  for (const auto& s : slices) {
    const int h = s.frame.rows, w = s.frame.columns;
    auto x = torch::from_blob(const_cast<float*>(s.frame.values.data()), {1, 1, h, w}, torch::kFloat32).to(device) * 2 - 1;
    auto c = torch::round((pair->encrypt->forward(detail::toTiles(x, tile)).first + 1) * 127.5).clamp(0, 255);
    auto y = pair->decrypt->forward(c / 127.5 - 1).first;
    y = ((detail::fromTiles(y, h, w, tile) + 1) * 0.5).clamp(0, 1).contiguous().cpu();
    sum += psnr8(s.frame.values, std::vector<float>(y.data_ptr<float>(), y.data_ptr<float>() + y.numel()));
  }
  return sum / static_cast<double>(slices.size());
}

void setRequiresGrad(torch::nn::Module& m, bool on) {
  for (auto& p : m.parameters()) p.requires_grad_(on);
}

void checkpoint(detail::GeneratorPair& pair, Critics& critics, torch::optim::Adam& optG, torch::optim::Adam& optD,
                const std::string& path, std::uint64_t step) {
  const std::string tmp = path + ".tmp";
  detail::saveGenerators(pair, tmp, static_cast<std::int64_t>(step));
  torch::save(critics, tmp + ".critics");
  torch::save(optG, tmp + ".optim");
  torch::save(optD, tmp + ".optim-critics");
  for (const char* ext : {".critics", ".optim", ".optim-critics"}) std::filesystem::rename(tmp + ext, path + ext);
  std::filesystem::rename(tmp, path);
}

}  // namespace

int trainEdgNet(const TrainOptions& o, const TrainingSet& data, TrainingProgress& progress) {
  setTensorThreads(o.threads);
  torch::manual_seed(o.seed);
  const Device dev = resolveDevice(o.device, cudaAvailable());
  const torch::Device device = dev == Device::Cuda ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  if (o.patch % 4 != 0 || o.patch < 16) {
    progress.note("pacsgw train edgnet: --patch must be a multiple of 4, at least 16 (two down-samplings; the "
                  "global discriminator needs 16 pixels)");
    return 2;
  }
  std::vector<const TrainingSet::Slice*> usable;
  for (const auto& s : data.train)
    if (s.frame.rows >= o.patch && s.frame.columns >= o.patch) usable.push_back(&s);
  if (usable.empty()) {
    progress.note("pacsgw train: no training slice is at least " + std::to_string(o.patch) + " pixels wide and high");
    return 1;
  }

  EdgNetShape shape;
  shape.ngf = o.width;
  shape.resBlocks = o.resBlocks;
  shape.tile = o.patch;
  detail::GeneratorPair pair(shape);
  Critics critics(o.width);
  std::uint64_t step = 0;
  if (!o.resume.empty()) {
    const auto bytes = fileBytes(o.resume);
    pair = detail::loadGenerators(bytes);
    if (pair->shape.tile != o.patch || pair->shape.ngf != o.width) {
      progress.note("pacsgw train edgnet: the checkpoint has another --patch or --width than asked");
      return 2;
    }
    torch::load(critics, o.resume + ".critics");
    torch::serialize::InputArchive archive;
    archive.load_from(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    torch::Tensor stepTensor;
    if (archive.try_read(detail::kStepKey, stepTensor)) step = static_cast<std::uint64_t>(stepTensor.item<std::int64_t>());
  }
  pair->to(device);
  critics->to(device);
  pair->train();
  critics->train();
  const auto adam = [&](double lr) { return torch::optim::AdamOptions(lr).betas({0.5, 0.999}).weight_decay(kWeightDecay); };
  torch::optim::Adam optG(pair->parameters(), adam(o.learningRate));
  torch::optim::Adam optD(critics->parameters(), adam(o.learningRate));
  if (!o.resume.empty()) {
    if (std::filesystem::exists(o.resume + ".optim")) torch::load(optG, o.resume + ".optim");
    if (std::filesystem::exists(o.resume + ".optim-critics")) torch::load(optD, o.resume + ".optim-critics");
  }

  std::size_t gParams = 0, dParams = 0;
  for (const auto& p : pair->parameters()) gParams += static_cast<std::size_t>(p.numel());
  for (const auto& p : critics->parameters()) dParams += static_cast<std::size_t>(p.numel());
  const auto warmup = static_cast<std::uint64_t>(kWarmupFraction * static_cast<double>(o.steps));
  progress.note("edgnet ngf " + std::to_string(shape.ngf) + ", " + std::to_string(shape.resBlocks) +
                " residual blocks, tile " + std::to_string(shape.tile) + "; generators " + std::to_string(gParams) +
                " parameters, discriminators " + std::to_string(dParams) + "; " + std::to_string(usable.size()) +
                " training slices, batch " + std::to_string(o.batch) + ", cycle-only warm-up " +
                std::to_string(warmup) + " steps, from step " + std::to_string(step));
  const std::string ckpt = o.out + ".ckpt";
  TrainingProgress& bar = progress;
  bar.startAt(step);
  while (step < o.steps) {
    // Constant learning rate for the first half, then linear decay to a tenth (the paper: 1e-4 to 1e-5).
    const double t = static_cast<double>(step) / static_cast<double>(o.steps);
    const double lr = o.learningRate * (t < 0.5 ? 1.0 : 1.0 - 0.9 * (t - 0.5) / 0.5);
    for (auto* opt : {&optG, &optD})
      for (auto& group : opt->param_groups()) static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
    const bool adversarial = step >= warmup;
    auto [realPlain, realCipher] = batchesFor(usable, o, step);
    realPlain = realPlain.to(device);
    realCipher = realCipher.to(device);

    // Generators.
    optG.zero_grad();
    setRequiresGrad(*critics, false);
    const auto [p2c, camP2c] = pair->encrypt->forward(realPlain);
    const auto p2c2p = pair->decrypt->forward(quantise(p2c)).first;
    const auto [p2p, camP2p] = pair->decrypt->forward(realPlain);
    const auto plainCycle = F::l1_loss(p2c2p, realPlain);
    auto gLoss = kPlainCycleWeight * plainCycle + kIdentityWeight * F::l1_loss(p2p, realPlain);
    torch::Tensor c2p;
    double adv = 0;
    if (adversarial) {
      torch::Tensor camC2p;
      std::tie(c2p, camC2p) = pair->decrypt->forward(realCipher);
      const auto c2p2c = pair->encrypt->forward(c2p).first;
      const auto [c2c, camC2c] = pair->encrypt->forward(realCipher);
      const auto advLoss = lsgan(critics->cipherGlobal->forward(p2c), 1) + lsgan(critics->cipherLocal->forward(p2c), 1) +
                           lsgan(critics->plainGlobal->forward(c2p), 1) + lsgan(critics->plainLocal->forward(c2p), 1);
      // The generators' auxiliary classifiers: source-domain input -> 1, target-domain input -> 0.
      const auto camLoss = bce(camP2c, 1) + bce(camC2c, 0) + bce(camC2p, 1) + bce(camP2p, 0);
      gLoss = gLoss + kAdversarialWeight * advLoss + kCipherCycleWeight * F::l1_loss(c2p2c, realCipher) +
              kIdentityWeight * F::l1_loss(c2c, realCipher) + kCamWeight * camLoss;
      adv = advLoss.item<double>();
    }
    gLoss.backward();
    optG.step();
    detail::clipRho(*pair);
    setRequiresGrad(*critics, true);

    // Discriminators (patch maps and CAM logits, LSGAN).
    double dValue = 0;
    if (adversarial) {
      optD.zero_grad();
      const auto fakeCipher = p2c.detach(), fakePlain = c2p.detach();
      const auto dLoss = lsgan(critics->cipherGlobal->forward(realCipher), 1) + lsgan(critics->cipherGlobal->forward(fakeCipher), 0) +
                         lsgan(critics->cipherLocal->forward(realCipher), 1) + lsgan(critics->cipherLocal->forward(fakeCipher), 0) +
                         lsgan(critics->plainGlobal->forward(realPlain), 1) + lsgan(critics->plainGlobal->forward(fakePlain), 0) +
                         lsgan(critics->plainLocal->forward(realPlain), 1) + lsgan(critics->plainLocal->forward(fakePlain), 0);
      dLoss.backward();
      optD.step();
      dValue = dLoss.item<double>();
    }
    ++step;
    // Cycle PSNR of the batch in the unit range (the L1 is on [-1, 1]).
    const double mse = F::mse_loss(p2c2p.detach(), realPlain).item<double>() / 4.0;
    bar.step(step,
             {{"g", gLoss.item<double>()}, {"d", dValue}, {"adv", adv}, {"cycle", plainCycle.item<double>()},
              {"psnr", mse > 0 ? 10 * std::log10(1.0 / mse) : 99.0}},
             static_cast<std::size_t>(o.batch));
    if (step % o.checkpointEvery == 0 || step == o.steps) {
      checkpoint(pair, critics, optG, optD, ckpt, step);
      char line[240];
      std::snprintf(line, sizeof line,
                    "step %llu, %s: checkpoint %s; held-out PSNR (8-bit view, tiled, 8-bit cipher image) %.2f dB over %zu slices",
                    static_cast<unsigned long long>(step),
                    terminal::ProgressLine::formatDuration(bar.elapsedSeconds()).c_str(), ckpt.c_str(),
                    validate(pair, data.heldOut, device), data.heldOut.size());
      bar.note(line);
    }
  }
  bar.finish();
  const std::string tmp = o.out + ".tmp";
  detail::saveGenerators(pair, tmp);
  std::filesystem::rename(tmp, o.out);
  progress.note("wrote " + o.out + " (generators only)");
  return 0;
}

}  // namespace pacsgw::codecs::neural
