// The only translation unit of feature-fusion that includes LibTorch: network, losses, training step.
#include "codecs/feature_fusion/model.h"

#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>

namespace pacsgw::codecs::feature_fusion {
namespace nn = torch::nn;
using torch::Tensor;

namespace {

constexpr double kLeak = 0.2;
constexpr double kIdealUaci = 0.334635;  // Wu et al., 8-bit images

Tensor leaky(const Tensor& x) { return torch::leaky_relu(x, kLeak); }

struct ResBlockImpl : nn::Module {
  nn::Conv2d c1{nullptr}, c2{nullptr};
  explicit ResBlockImpl(int c) {
    c1 = register_module("c1", nn::Conv2d(nn::Conv2dOptions(c, c, 3).padding(1)));
    c2 = register_module("c2", nn::Conv2d(nn::Conv2dOptions(c, c, 3).padding(1)));
  }
  Tensor forward(const Tensor& x) { return x + c2(leaky(c1(x))); }
};
TORCH_MODULE(ResBlock);

// Stride-2 conv then a residual block (the paper's FEM); its mirror (FDM) for the decoder.
struct DownImpl : nn::Module {
  nn::Conv2d conv{nullptr};
  ResBlock res{nullptr};
  DownImpl(int in, int out) {
    conv = register_module("conv", nn::Conv2d(nn::Conv2dOptions(in, out, 3).stride(2).padding(1)));
    res = register_module("res", ResBlock(out));
  }
  Tensor forward(const Tensor& x) { return res(leaky(conv(x))); }
};
TORCH_MODULE(Down);

struct UpImpl : nn::Module {
  nn::ConvTranspose2d conv{nullptr};
  ResBlock res{nullptr};
  UpImpl(int in, int out) {
    conv = register_module("conv", nn::ConvTranspose2d(nn::ConvTranspose2dOptions(in, out, 4).stride(2).padding(1)));
    res = register_module("res", ResBlock(out));
  }
  Tensor forward(const Tensor& x) { return res(leaky(conv(x))); }
};
TORCH_MODULE(Up);

// The fusion residual block on concat(F, K): 2C -> C with a 1x1 projection shortcut, pooled to one
// coefficient per channel.
struct FusionImpl : nn::Module {
  nn::Conv2d c1{nullptr}, c2{nullptr}, projection{nullptr};
  explicit FusionImpl(int c) {
    c1 = register_module("c1", nn::Conv2d(nn::Conv2dOptions(2 * c, c, 3).padding(1)));
    c2 = register_module("c2", nn::Conv2d(nn::Conv2dOptions(c, c, 3).padding(1)));
    projection = register_module("projection", nn::Conv2d(nn::Conv2dOptions(2 * c, c, 1)));
  }
  Tensor forward(const Tensor& f, const Tensor& k) {
    const Tensor x = torch::cat({f, k}, 1);
    return (projection(x) + c2(leaky(c1(x)))).mean({2, 3}, /*keepdim=*/true);
  }
};
TORCH_MODULE(Fusion);

struct NetImpl : nn::Module {
  ModelConfig config;
  nn::Conv2d stem{nullptr}, head{nullptr};
  std::vector<Down> encoders;
  std::vector<ResBlock> featurePaths, keyPaths;
  std::vector<Fusion> fusions;
  std::vector<Up> decoders;

  explicit NetImpl(const ModelConfig& c) : config(c) {
    const int groups = static_cast<int>(c.channels.size());
    if (groups < 1 || c.channels.back() != (1 << (2 * groups)))
      throw std::invalid_argument("feature-fusion: the last group needs 4^groups channels");
    stem = register_module("stem", nn::Conv2d(nn::Conv2dOptions(1, c.stemChannels, 3).padding(1)));
    int in = c.stemChannels;
    for (int g = 0; g < groups; ++g) {
      const int ch = c.channels[g];
      const std::string s = std::to_string(g);
      encoders.push_back(register_module("fem" + s, Down(in, ch)));
      featurePaths.push_back(register_module("feature" + s, ResBlock(ch)));
      keyPaths.push_back(register_module("key" + s, ResBlock(ch)));
      fusions.push_back(register_module("fusion" + s, Fusion(ch)));
      decoders.push_back(register_module("fdm" + s, Up(ch, in)));
      in = ch;
    }
    head = register_module("head", nn::Conv2d(nn::Conv2dOptions(c.stemChannels, 1, 3).padding(1)));
  }
  int groups() const { return static_cast<int>(config.channels.size()); }

  std::vector<Tensor> keyFeatures(const std::vector<Tensor>& keys) {
    std::vector<Tensor> out;
    for (int g = 0; g < groups(); ++g) out.push_back(keyPaths[g](keys[g]));
    return out;
  }

  // Returns the fused deepest features A_G; fills alphas (B x C x 1 x 1, quantised to 16-bit codes).
  Tensor encode(const Tensor& x, const std::vector<Tensor>& keyFeats, bool fusion, std::vector<Tensor>& alphas) {
    Tensor a = leaky(stem(x));
    alphas.clear();
    for (int g = 0; g < groups(); ++g) {
      const Tensor f = featurePaths[g](encoders[g](a));
      if (!fusion) {
        a = f;
        continue;
      }
      const double lo = config.alphaMin;
      Tensor alpha = lo + (1.0 - lo) * torch::sigmoid(fusions[g](f, keyFeats[g]));
      alpha = quantiseStraightThrough((alpha - lo) / (1.0 - lo), 16) * (1.0 - lo) + lo;
      alphas.push_back(alpha);
      a = alpha * f + (1.0 - alpha) * keyFeats[g];
    }
    return a;
  }

  Tensor cipherImage(const Tensor& deepest) {
    return quantiseStraightThrough(torch::sigmoid(torch::pixel_shuffle(deepest, 1 << groups())), config.cipherBits);
  }

  Tensor decode(const Tensor& cipher, const std::vector<Tensor>& alphas, const std::vector<Tensor>& keyFeats, bool fusion) {
    const double eps = 0.5 / std::ldexp(1.0, config.cipherBits);
    Tensor a = torch::pixel_unshuffle(torch::logit(cipher.clamp(eps, 1.0 - eps)), 1 << groups());
    for (int g = groups() - 1; g >= 0; --g) {
      if (fusion) a = (a - (1.0 - alphas[g]) * keyFeats[g]) / alphas[g];
      a = decoders[g](a);
    }
    return head(a);
  }

  static Tensor quantiseStraightThrough(const Tensor& v, int bits) {
    const double levels = std::ldexp(1.0, bits) - 1.0;
    return v + (torch::round(v * levels) / levels - v).detach();
  }
};
TORCH_MODULE(Net);

// Key tensors (one per group, B x C x h x w) from per-image FeatureKeys.
std::vector<Tensor> onDevice(std::vector<Tensor> tensors, const torch::Device& device) {
  for (Tensor& t : tensors) t = t.to(device);
  return tensors;
}

std::vector<Tensor> keyTensors(const std::vector<FeatureKeys>& keys, const ModelConfig& c, int rows, int columns) {
  std::vector<Tensor> out;
  for (std::size_t g = 0; g < c.channels.size(); ++g) {
    const int h = rows >> (g + 1), w = columns >> (g + 1);
    const std::size_t n = static_cast<std::size_t>(c.channels[g]) * h * w;
    Tensor t = torch::empty({static_cast<long>(keys.size()), c.channels[g], h, w});
    for (std::size_t b = 0; b < keys.size(); ++b) {
      if (keys[b].groups.size() != c.channels.size() || keys[b].groups[g].size() != n)
        throw std::invalid_argument("feature-fusion: feature keys do not match the model and image size");
      std::memcpy(t[static_cast<long>(b)].data_ptr<float>(), keys[b].groups[g].data(), n * sizeof(float));
    }
    out.push_back(t);
  }
  return out;
}

// ---- The paper's losses, on the 8-bit view of the cipher image (B x 1 x H x W in [0, 1]) ----------

// Differentiable histogram by linear interpolation between bin centres (Ustinova & Lempitsky).
Tensor softHistogram(const Tensor& values, int bins) {  // values B x N in [0, bins - 1]
  const Tensor v = values.clamp(0.0, bins - 1.0);
  const Tensor lo = v.detach().floor().clamp(0, bins - 2).to(torch::kLong);
  const Tensor frac = v - lo.to(v.scalar_type());
  Tensor h = torch::zeros({v.size(0), bins}, v.options());
  h = h.scatter_add(1, lo, 1.0 - frac).scatter_add(1, lo + 1, frac);
  return h / static_cast<double>(v.size(1));
}

struct StatsTerms {
  Tensor stats, correlation;
};

StatsTerms statisticalLosses(const Tensor& cipher) {
  const long b = cipher.size(0);
  const Tensor flat = cipher.reshape({b, -1}) * 255.0;
  const Tensor p = softHistogram(flat, 256);
  const Tensor histogram = 256.0 * (p - 1.0 / 256).pow(2).sum(1).mean();             // Eq. 7, normalised
  const Tensor entropy = -(p * torch::log2(p + 1e-12)).sum(1).mean();                // Eq. 8
  const Tensor stats = histogram + 0.125 * (8.0 - entropy);                           // lambda 1, 0.125

  const Tensor img = cipher.squeeze(1);
  auto corr = [&](const Tensor& a, const Tensor& c) {  // Eqs. 10-14, per image
    const Tensor x = a.reshape({b, -1}), y = c.reshape({b, -1});
    const Tensor xc = x - x.mean(1, true), yc = y - y.mean(1, true);
    const Tensor cov = (xc * yc).mean(1);
    return (cov / (xc.pow(2).mean(1).sqrt() * yc.pow(2).mean(1).sqrt() + 1e-8)).abs().mean();
  };
  using torch::indexing::Slice;
  using torch::indexing::None;
  const Tensor h = corr(img.index({Slice(), Slice(), Slice(0, -1)}), img.index({Slice(), Slice(), Slice(1, None)}));
  const Tensor v = corr(img.index({Slice(), Slice(0, -1), Slice()}), img.index({Slice(), Slice(1, None), Slice()}));
  const Tensor d = corr(img.index({Slice(), Slice(0, -1), Slice(0, -1)}), img.index({Slice(), Slice(1, None), Slice(1, None)}));
  // 2-D histogram of horizontal neighbours, 8 x 8 bins (Eq. 15), bilinear soft assignment.
  const Tensor x = img.index({Slice(), Slice(), Slice(0, -1)}).reshape({b, -1}) * 7.0;
  const Tensor y = img.index({Slice(), Slice(), Slice(1, None)}).reshape({b, -1}) * 7.0;
  const Tensor xl = x.detach().floor().clamp(0, 6).to(torch::kLong), yl = y.detach().floor().clamp(0, 6).to(torch::kLong);
  const Tensor xf = x - xl.to(x.scalar_type()), yf = y - yl.to(y.scalar_type());
  Tensor h2 = torch::zeros({b, 64}, x.options());
  h2 = h2.scatter_add(1, xl * 8 + yl, (1 - xf) * (1 - yf)).scatter_add(1, (xl + 1) * 8 + yl, xf * (1 - yf));
  h2 = h2.scatter_add(1, xl * 8 + yl + 1, (1 - xf) * yf).scatter_add(1, (xl + 1) * 8 + yl + 1, xf * yf);
  const Tensor p2 = h2 / static_cast<double>(x.size(1));
  const Tensor hist2d = 64.0 * (p2 - 1.0 / 64).pow(2).sum(1).mean();
  return {stats, h + v + d + hist2d};  // lambda_cor = lambda_2d = 1
}

// NPCR (relaxed: tanh(2 * 255 * |c1 - c2|)) and UACI against their ideal values (Eqs. 16-20).
Tensor diffusionLoss(const Tensor& c1, const Tensor& c2) {
  const Tensor d = (c1 - c2).abs();
  const Tensor npcr = torch::tanh(2.0 * 255.0 * d).mean();
  const Tensor uaci = d.mean();
  return (1.0 - npcr) + (uaci - kIdealUaci).abs();
}

}  // namespace

struct FeatureFusionModel::Impl {
  Net net{nullptr};
  Device device = Device::Cpu;
  torch::Device torchDevice{torch::kCPU};
};

FeatureFusionModel::FeatureFusionModel(const ModelConfig& config, std::uint64_t seed) : impl_(std::make_unique<Impl>()) {
  torch::manual_seed(seed);
  impl_->net = Net(config);
}
FeatureFusionModel::~FeatureFusionModel() = default;
FeatureFusionModel::FeatureFusionModel(FeatureFusionModel&&) noexcept = default;
FeatureFusionModel& FeatureFusionModel::operator=(FeatureFusionModel&&) noexcept = default;

const ModelConfig& FeatureFusionModel::config() const { return impl_->net->config; }

std::size_t FeatureFusionModel::parameterCount() const {
  std::size_t n = 0;
  for (const auto& p : impl_->net->parameters()) n += static_cast<std::size_t>(p.numel());
  return n;
}

int FeatureFusionModel::sizeMultiple() const { return 1 << impl_->net->groups(); }

std::size_t FeatureFusionModel::coefficientCount() const {
  std::size_t n = 0;
  for (int c : config().channels) n += static_cast<std::size_t>(c);
  return n;
}

namespace {
constexpr const char* kFormat = "pacsgw feature-fusion model v1";

void writeConfig(torch::serialize::OutputArchive& a, const ModelConfig& c) {
  std::vector<long> ints{c.stemChannels, c.cipherBits};
  for (int ch : c.channels) ints.push_back(ch);
  a.write("config.ints", torch::tensor(ints));
  a.write("config.alpha_min", torch::tensor({static_cast<double>(c.alphaMin)}));
  a.write("format", torch::tensor(std::vector<long>(kFormat, kFormat + std::strlen(kFormat))));
}

ModelConfig readConfig(torch::serialize::InputArchive& a) {
  Tensor format, ints, alphaMin;
  a.read("format", format);
  const std::string expected(kFormat);
  if (format.numel() != static_cast<long>(expected.size()) ||
      !torch::equal(format, torch::tensor(std::vector<long>(expected.begin(), expected.end()))))
    throw std::runtime_error("not a feature-fusion model");
  a.read("config.ints", ints);
  a.read("config.alpha_min", alphaMin);
  if (ints.numel() < 3) throw std::runtime_error("feature-fusion model: bad configuration");
  ModelConfig c;
  c.stemChannels = static_cast<int>(ints[0].item<long>());
  c.cipherBits = static_cast<int>(ints[1].item<long>());
  c.channels.clear();
  for (long i = 2; i < ints.numel(); ++i) c.channels.push_back(static_cast<int>(ints[i].item<long>()));
  c.alphaMin = static_cast<float>(alphaMin.item<double>());
  if (c.cipherBits < 8 || c.cipherBits > 16) throw std::runtime_error("feature-fusion model: bad cipher bits");
  return c;
}
}  // namespace

bool FeatureFusionModel::cudaAvailable() { return torch::cuda::is_available(); }

Device FeatureFusionModel::device() const { return impl_->device; }

FeatureFusionModel FeatureFusionModel::load(const std::string& path, Device device) {
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    FeatureFusionModel model(readConfig(archive), 1);
    model.impl_->net->load(archive);
    model.impl_->net->eval();
    model.impl_->device = device;
    model.impl_->torchDevice = device == Device::Cuda ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
    model.impl_->net->to(model.impl_->torchDevice);
    return model;
  } catch (const c10::Error& e) {
    throw std::runtime_error("cannot load the feature-fusion model " + path + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot load the feature-fusion model " + path + ": " + e.what());
  }
}

void FeatureFusionModel::save(const std::string& path) const {
  torch::serialize::OutputArchive archive;
  writeConfig(archive, config());
  impl_->net->save(archive);
  archive.save_to(path);
}

FeatureFusionModel::Encrypted FeatureFusionModel::encrypt(const std::vector<float>& image, int rows, int columns,
                                                          const FeatureKeys& keys) const {
  if (rows % sizeMultiple() != 0 || columns % sizeMultiple() != 0 || image.size() != static_cast<std::size_t>(rows) * columns)
    throw std::invalid_argument("feature-fusion: image size must be a multiple of " + std::to_string(sizeMultiple()));
  c10::InferenceMode guard;
  Net& net = impl_->net;
  const torch::Device dev = impl_->torchDevice;
  const Tensor x = torch::from_blob(const_cast<float*>(image.data()), {1, 1, rows, columns}).clone().to(dev);
  const auto keyFeats = net->keyFeatures(onDevice(keyTensors({keys}, config(), rows, columns), dev));
  std::vector<Tensor> alphas;
  const Tensor cipher = net->cipherImage(net->encode(x, keyFeats, true, alphas));
  const double levels = std::ldexp(1.0, config().cipherBits) - 1.0;
  const Tensor codes = torch::round(cipher * levels).to(torch::kInt32).to(torch::kCPU).contiguous();
  Encrypted out;
  out.cipher.assign(codes.data_ptr<int>(), codes.data_ptr<int>() + codes.numel());
  for (const auto& a : alphas) {
    const Tensor f = a.reshape({-1}).to(torch::kCPU).contiguous();
    out.alpha.insert(out.alpha.end(), f.data_ptr<float>(), f.data_ptr<float>() + f.numel());
  }
  return out;
}

std::vector<float> FeatureFusionModel::decrypt(const std::vector<std::uint16_t>& cipher, int rows, int columns,
                                               const std::vector<float>& alpha, const FeatureKeys& keys) const {
  if (rows % sizeMultiple() != 0 || columns % sizeMultiple() != 0 || cipher.size() != static_cast<std::size_t>(rows) * columns ||
      alpha.size() != coefficientCount())
    throw std::invalid_argument("feature-fusion: cipher or coefficients of the wrong size");
  c10::InferenceMode guard;
  Net& net = impl_->net;
  const double levels = std::ldexp(1.0, config().cipherBits) - 1.0;
  std::vector<float> c(cipher.size());
  for (std::size_t i = 0; i < c.size(); ++i) c[i] = static_cast<float>(cipher[i] / levels);
  const torch::Device dev = impl_->torchDevice;
  const Tensor ct = torch::from_blob(c.data(), {1, 1, rows, columns}).clone().to(dev);
  std::vector<Tensor> alphas;
  std::size_t offset = 0;
  for (int ch : config().channels) {
    alphas.push_back(torch::from_blob(const_cast<float*>(alpha.data() + offset), {1, ch, 1, 1}).clone().to(dev));
    offset += static_cast<std::size_t>(ch);
  }
  const auto keyFeats = net->keyFeatures(onDevice(keyTensors({keys}, config(), rows, columns), dev));
  const Tensor y = net->decode(ct, alphas, keyFeats, true).clamp(0.0, 1.0).to(torch::kCPU).contiguous();
  return std::vector<float>(y.data_ptr<float>(), y.data_ptr<float>() + y.numel());
}

// ---- Training ------------------------------------------------------------------------------------

struct FeatureFusionTrainer::Impl {
  FeatureFusionModel* model = nullptr;
  TrainConfig config;
  std::unique_ptr<torch::optim::AdamW> optimizer;
  std::mt19937_64 rng;

  Tensor losses(const std::vector<float>& images, int batch, int rows, int columns,
                const std::vector<FeatureKeys>& keys, double encWeight, bool fusion, Losses& out) {
    if (static_cast<int>(keys.size()) != batch || images.size() != static_cast<std::size_t>(batch) * rows * columns)
      throw std::invalid_argument("feature-fusion: batch and keys do not match");
    Net& net = model->impl_->net;
    const Tensor x = torch::from_blob(const_cast<float*>(images.data()), {batch, 1, rows, columns}).clone();
    const auto keyFeats = net->keyFeatures(keyTensors(keys, net->config, rows, columns));
    std::vector<Tensor> alphas;
    const Tensor cipher = net->cipherImage(net->encode(x, keyFeats, fusion, alphas));
    const Tensor recon = net->decode(cipher, alphas, keyFeats, fusion);
    const Tensor l1 = (recon - x).abs().mean();
    Tensor total = config.reconstructionWeight * l1;
    out.reconstruction = l1.item<double>();
    if (fusion && encWeight > 0) {
      const auto st = statisticalLosses(cipher);
      // Diffusion: one pixel changed, same keys (the network's own diffusion, not SHA-256's).
      Tensor x2 = x.clone();
      for (int b = 0; b < batch; ++b) {
        const long r = static_cast<long>(rng() % rows), c = static_cast<long>(rng() % columns);
        const float v = x2[b][0][r][c].item<float>();
        x2[b][0][r][c] = v > 0.5f ? v - 0.5f : v + 0.5f;
      }
      std::vector<Tensor> alphas2;
      const Tensor cipher2 = net->cipherImage(net->encode(x2, keyFeats, true, alphas2));
      const Tensor diff = diffusionLoss(cipher, cipher2);
      // Wrong key: another image's key tensors and coefficients drawn at random (what EP - G(K')
      // yields without the key), through the same decoder.
      std::vector<Tensor> wrongFeats, wrongAlphas;
      for (std::size_t g = 0; g < keyFeats.size(); ++g) {
        wrongFeats.push_back(batch > 1 ? keyFeats[g].roll(1, 0) : -keyFeats[g]);
        std::vector<float> u(static_cast<std::size_t>(alphas[g].numel()));
        std::uniform_real_distribution<float> dist(net->config.alphaMin, 1.0f);
        for (auto& e : u) e = dist(rng);
        wrongAlphas.push_back(torch::from_blob(u.data(), alphas[g].sizes()).clone());
      }
      const Tensor wrong = net->decode(cipher, wrongAlphas, wrongFeats, true).clamp(-1.0, 2.0);
      const Tensor wrongKey = torch::relu(config.wrongKeyMargin - (wrong - x).abs().mean());
      const Tensor encryption = st.stats + st.correlation + 0.1 * diff;  // Eq. 24 weights 1, 1, 0.1
      total = total + encWeight * (encryption + wrongKey);
      out.stats = st.stats.item<double>();
      out.correlation = st.correlation.item<double>();
      out.diffusion = diff.item<double>();
      out.wrongKey = wrongKey.item<double>();
    }
    out.total = total.item<double>();
    return total;
  }
};

FeatureFusionTrainer::FeatureFusionTrainer(FeatureFusionModel& model, const TrainConfig& config, std::uint64_t seed)
    : impl_(std::make_unique<Impl>()) {
  impl_->model = &model;
  impl_->config = config;
  impl_->rng.seed(seed);
  torch::manual_seed(seed);
  model.impl_->net->train();
  impl_->optimizer = std::make_unique<torch::optim::AdamW>(
      model.impl_->net->parameters(), torch::optim::AdamWOptions(config.learningRate).weight_decay(config.weightDecay));
}
FeatureFusionTrainer::~FeatureFusionTrainer() = default;

Losses FeatureFusionTrainer::step(const std::vector<float>& images, int batch, int rows, int columns,
                                  const std::vector<FeatureKeys>& keys, double encryptionWeight, bool fusion) {
  Losses out;
  impl_->optimizer->zero_grad();
  Tensor total = impl_->losses(images, batch, rows, columns, keys, encryptionWeight, fusion, out);
  total.backward();
  torch::nn::utils::clip_grad_norm_(impl_->model->impl_->net->parameters(), 1.0);
  impl_->optimizer->step();
  return out;
}

Losses FeatureFusionTrainer::evaluate(const std::vector<float>& images, int batch, int rows, int columns,
                                      const std::vector<FeatureKeys>& keys, double encryptionWeight, bool fusion) {
  torch::NoGradGuard guard;
  Losses out;
  impl_->losses(images, batch, rows, columns, keys, encryptionWeight, fusion, out);
  return out;
}

void FeatureFusionTrainer::setLearningRate(double lr) {
  for (auto& group : impl_->optimizer->param_groups())
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
}

void FeatureFusionTrainer::saveCheckpoint(const std::string& path, std::uint64_t step) const {
  torch::serialize::OutputArchive archive, modelArchive, optimizerArchive;
  writeConfig(modelArchive, impl_->model->config());
  impl_->model->impl_->net->save(modelArchive);
  impl_->optimizer->save(optimizerArchive);
  archive.write("model", modelArchive);
  archive.write("optimizer", optimizerArchive);
  archive.write("step", torch::tensor({static_cast<long>(step)}));
  archive.save_to(path);
}

std::uint64_t FeatureFusionTrainer::loadCheckpoint(const std::string& path) {
  torch::serialize::InputArchive archive, modelArchive, optimizerArchive;
  Tensor step;
  archive.load_from(path);
  archive.read("step", step);
  archive.read("model", modelArchive);
  archive.read("optimizer", optimizerArchive);
  readConfig(modelArchive);
  impl_->model->impl_->net->load(modelArchive);
  impl_->optimizer->load(optimizerArchive);
  return static_cast<std::uint64_t>(step.item<long>());
}

void setTorchThreads(int threads) { torch::set_num_threads(threads); }

}  // namespace pacsgw::codecs::feature_fusion
