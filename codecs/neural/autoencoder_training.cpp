// The autoencoder trainer (the second translation unit with LibTorch): patches of real CT/MR slices,
// MSE, Adam with cosine decay, checkpoints that resume exactly, validation on held-out slices.
#include "codecs/neural/autoencoder_module.h"
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

std::vector<std::uint8_t> fileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CipherError("cannot read " + path);
  return std::vector<std::uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Patch batch of step `step`: a function of (seed, step) only, so a resumed run sees the same batches.
torch::Tensor batchFor(const std::vector<const TrainingSet::Slice*>& slices, const TrainOptions& o, std::uint64_t step) {
  std::mt19937_64 rng(o.seed * 0x9E3779B97F4A7C15ULL + step);
  const int p = o.patch;
  torch::Tensor batch = torch::empty({o.batch, 1, p, p}, torch::kFloat32);
  auto acc = batch.accessor<float, 4>();
  for (int b = 0; b < o.batch; ++b) {
    const UnitFrame* f = nullptr;
    int top = 0, left = 0;
    for (int attempt = 0; attempt < 4; ++attempt) {  // prefer patches with structure over empty background
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
        acc[b][0][y][x] = f->values[static_cast<std::size_t>(top + sy) * f->columns + left + sx];
      }
  }
  return batch;
}

// Mean PSNR (8-bit view) of the model's reconstruction of whole held-out slices, as the backend computes it.
double validate(detail::AutoencoderNet& net, const std::vector<TrainingSet::Slice>& slices, torch::Device device) {
  if (slices.empty()) return 0;
  torch::NoGradGuard noGrad;
  net->eval();
  double sum = 0;
  for (const auto& s : slices) {
    const int h = s.frame.rows, w = s.frame.columns;
    auto x = torch::from_blob(const_cast<float*>(s.frame.values.data()), {1, 1, h, w}, torch::kFloat32).to(device);
    if (h % 2 || w % 2) x = F::pad(x, F::PadFuncOptions({0, w % 2, 0, h % 2}).mode(torch::kReplicate));
    auto z = torch::round(net->encode(x) * 255.0) / 255.0;
    auto y = net->decode(z).slice(2, 0, h).slice(3, 0, w).contiguous().cpu();
    std::vector<float> out(y.data_ptr<float>(), y.data_ptr<float>() + y.numel());
    sum += psnr8(s.frame.values, out);
  }
  net->train();
  return sum / static_cast<double>(slices.size());
}

void checkpoint(detail::AutoencoderNet& net, torch::optim::Adam& opt, const std::string& path, std::uint64_t step) {
  const std::string tmp = path + ".tmp";
  detail::saveAutoencoder(net, tmp, static_cast<std::int64_t>(step));
  torch::save(opt, tmp + ".optim");
  std::filesystem::rename(tmp + ".optim", path + ".optim");
  std::filesystem::rename(tmp, path);
}

}  // namespace

int trainAutoencoder(const TrainOptions& o, const TrainingSet& data, TrainingProgress& progress) {
  setTensorThreads(o.threads);
  torch::manual_seed(o.seed);
  const Device dev = resolveDevice(o.device, cudaAvailable());
  const torch::Device device = dev == Device::Cuda ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);

  std::vector<const TrainingSet::Slice*> usable;
  for (const auto& s : data.train)
    if (s.frame.rows >= o.patch && s.frame.columns >= o.patch) usable.push_back(&s);
  if (usable.empty()) {
    progress.note("pacsgw train: no training slice is at least " + std::to_string(o.patch) + " pixels wide and high");
    return 1;
  }

  AutoencoderShape shape{o.width, o.latentChannels};
  detail::AutoencoderNet net(shape);
  std::uint64_t step = 0;
  if (!o.resume.empty()) {
    const auto bytes = fileBytes(o.resume);
    net = detail::loadAutoencoder(bytes);
    torch::serialize::InputArchive archive;
    archive.load_from(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    torch::Tensor stepTensor;
    if (archive.try_read(detail::kStepKey, stepTensor)) step = static_cast<std::uint64_t>(stepTensor.item<std::int64_t>());
  }
  net->to(device);
  net->train();
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(o.learningRate));
  if (!o.resume.empty() && std::filesystem::exists(o.resume + ".optim")) torch::load(opt, o.resume + ".optim");

  std::size_t parameters = 0;
  for (const auto& p : net->parameters()) parameters += static_cast<std::size_t>(p.numel());
  progress.note("autoencoder width " + std::to_string(net->shape.width) + ", latent channels " +
                std::to_string(net->shape.latentChannels) + ", " + std::to_string(parameters) + " parameters; " +
                std::to_string(usable.size()) + " training slices, batch " + std::to_string(o.batch) + " x " +
                std::to_string(o.patch) + "x" + std::to_string(o.patch) + ", from step " + std::to_string(step));
  const std::string ckpt = o.out + ".ckpt";
  TrainingProgress& bar = progress;
  bar.startAt(step);
  const double pi = std::acos(-1.0);
  while (step < o.steps) {
    const double t = static_cast<double>(step) / static_cast<double>(o.steps);
    const double lr = o.learningRate * (0.05 + 0.95 * 0.5 * (1 + std::cos(pi * t)));
    for (auto& group : opt.param_groups()) static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
    const torch::Tensor x = batchFor(usable, o, step).to(device);
    opt.zero_grad();
    const torch::Tensor y = net->decode(detail::AutoencoderNetImpl::quantise(net->encode(x)));
    const torch::Tensor loss = F::mse_loss(y, x);
    loss.backward();
    opt.step();
    ++step;
    const double mse = loss.item<double>();
    bar.step(step, {{"mse", mse}, {"psnr", mse > 0 ? 10 * std::log10(1.0 / mse) : 99.0}}, static_cast<std::size_t>(o.batch));
    if (step % o.checkpointEvery == 0 || step == o.steps) {
      checkpoint(net, opt, ckpt, step);
      char line[200];
      std::snprintf(line, sizeof line, "step %llu, %s: checkpoint %s; held-out PSNR (8-bit view) %.2f dB over %zu slices",
                    static_cast<unsigned long long>(step), terminal::ProgressLine::formatDuration(bar.elapsedSeconds()).c_str(),
                    ckpt.c_str(), validate(net, data.heldOut, device), data.heldOut.size());
      bar.note(line);
    }
  }
  bar.finish();
  const std::string tmp = o.out + ".tmp";
  detail::saveAutoencoder(net, tmp);
  std::filesystem::rename(tmp, o.out);
  progress.note("wrote " + o.out);
  return 0;
}

}  // namespace pacsgw::codecs::neural
