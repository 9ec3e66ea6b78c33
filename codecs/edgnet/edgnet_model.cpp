// EdgNet: modules, model file, tiled inference (one of the two translation units with LibTorch).
#include "codecs/edgnet/edgnet_module.h"

#include <cmath>
#include <map>
#include <mutex>

namespace pacsgw::codecs::edgnet {
namespace detail {

namespace F = torch::nn::functional;
namespace {

constexpr double kEps = 1e-5;

torch::Tensor reflect(const torch::Tensor& x, std::int64_t p) {
  return F::pad(x, F::PadFuncOptions({p, p, p, p}).mode(torch::kReflect));
}

torch::nn::Conv2d conv(int in, int out, int kernel, int stride = 1, bool bias = false) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel).stride(stride).bias(bias));
}

torch::Tensor instanceNormalised(const torch::Tensor& x) {
  const auto mean = x.mean({2, 3}, true);
  const auto var = x.var({2, 3}, false, true);
  return (x - mean) / torch::sqrt(var + kEps);
}

torch::Tensor layerNormalised(const torch::Tensor& x) {
  const auto mean = x.mean({1, 2, 3}, true);
  const auto var = x.var({1, 2, 3}, false, true);
  return (x - mean) / torch::sqrt(var + kEps);
}

}  // namespace

AdaIlnImpl::AdaIlnImpl(int channels) {
  rho = register_parameter("rho", torch::full({1, channels, 1, 1}, 0.9));
}

torch::Tensor AdaIlnImpl::forward(const torch::Tensor& x, const torch::Tensor& gamma, const torch::Tensor& beta) {
  const auto mixed = rho * instanceNormalised(x) + (1 - rho) * layerNormalised(x);
  return mixed * gamma.unsqueeze(2).unsqueeze(3) + beta.unsqueeze(2).unsqueeze(3);
}

IlnImpl::IlnImpl(int channels) {
  rho = register_parameter("rho", torch::zeros({1, channels, 1, 1}));
  gamma = register_parameter("gamma", torch::ones({1, channels, 1, 1}));
  beta = register_parameter("beta", torch::zeros({1, channels, 1, 1}));
}

torch::Tensor IlnImpl::forward(const torch::Tensor& x) {
  return (rho * instanceNormalised(x) + (1 - rho) * layerNormalised(x)) * gamma + beta;
}

ResnetBlockImpl::ResnetBlockImpl(int channels) {
  conv1 = register_module("conv1", conv(channels, channels, 3));
  conv2 = register_module("conv2", conv(channels, channels, 3));
}

torch::Tensor ResnetBlockImpl::forward(const torch::Tensor& x) {
  auto y = torch::relu(instanceNormalised(conv1(reflect(x, 1))));
  return x + instanceNormalised(conv2(reflect(y, 1)));
}

ResnetAdaIlnBlockImpl::ResnetAdaIlnBlockImpl(int channels) {
  conv1 = register_module("conv1", conv(channels, channels, 3));
  norm1 = register_module("norm1", AdaIln(channels));
  conv2 = register_module("conv2", conv(channels, channels, 3));
  norm2 = register_module("norm2", AdaIln(channels));
}

torch::Tensor ResnetAdaIlnBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& gamma,
                                             const torch::Tensor& beta) {
  auto y = torch::relu(norm1(conv1(reflect(x, 1)), gamma, beta));
  return x + norm2(conv2(reflect(y, 1)), gamma, beta);
}

GeneratorImpl::GeneratorImpl(int ngf, int resBlocks) {
  const int c = ngf * 4;  // after two down-samplings
  encoder = torch::nn::Sequential();
  encoder->push_back(torch::nn::ReflectionPad2d(3));
  encoder->push_back(conv(1, ngf, 7));
  encoder->push_back(torch::nn::InstanceNorm2d(ngf));
  encoder->push_back(torch::nn::ReLU());
  for (int i = 0, ch = ngf; i < 2; ++i, ch *= 2) {
    encoder->push_back(torch::nn::ReflectionPad2d(1));
    encoder->push_back(conv(ch, ch * 2, 3, 2));
    encoder->push_back(torch::nn::InstanceNorm2d(ch * 2));
    encoder->push_back(torch::nn::ReLU());
  }
  for (int i = 0; i < resBlocks; ++i) encoder->push_back(ResnetBlock(c));
  register_module("encoder", encoder);
  gapFc = register_module("gap_fc", torch::nn::Linear(torch::nn::LinearOptions(c, 1).bias(false)));
  gmpFc = register_module("gmp_fc", torch::nn::Linear(torch::nn::LinearOptions(c, 1).bias(false)));
  camConv = register_module("cam_conv", conv(2 * c, c, 1, 1, true));
  // The "light" MLP: global average pooling first, so its size does not depend on the image size. It also
  // sees the input's mean and standard deviation, which the instance normalisations discard.
  mlp = register_module("mlp", torch::nn::Sequential(torch::nn::Linear(torch::nn::LinearOptions(c + 2, c).bias(false)),
                                                     torch::nn::ReLU(),
                                                     torch::nn::Linear(torch::nn::LinearOptions(c, c).bias(false)),
                                                     torch::nn::ReLU()));
  gammaFc = register_module("gamma", torch::nn::Linear(torch::nn::LinearOptions(c, c).bias(false)));
  betaFc = register_module("beta", torch::nn::Linear(torch::nn::LinearOptions(c, c).bias(false)));
  for (int i = 0; i < resBlocks; ++i)
    decoderBlocks.push_back(register_module("decoder" + std::to_string(i), ResnetAdaIlnBlock(c)));
  for (int i = 0, ch = c; i < 2; ++i, ch /= 2) {
    upConvs.push_back(register_module("up_conv" + std::to_string(i), conv(ch, ch / 2, 3)));
    upNorms.push_back(register_module("up_norm" + std::to_string(i), Iln(ch / 2)));
  }
  outConv = register_module("out_conv", conv(ngf, 1, 7));
}

std::pair<torch::Tensor, torch::Tensor> GeneratorImpl::forward(const torch::Tensor& x) {
  auto h = encoder->forward(x);
  const auto n = h.size(0), c = h.size(1);
  // Class activation map: the auxiliary classifier's weights re-weight the feature channels.
  const auto gapLogit = gapFc(h.mean({2, 3}));
  const auto gmpLogit = gmpFc(std::get<0>(h.flatten(2).max(2)));
  const auto hGap = h * gapFc->weight.view({1, c, 1, 1});
  const auto hGmp = h * gmpFc->weight.view({1, c, 1, 1});
  const auto cam = torch::cat({gapLogit, gmpLogit}, 1);
  h = torch::relu(camConv(torch::cat({hGap, hGmp}, 1)));
  const auto level = torch::stack({x.mean({1, 2, 3}), x.flatten(1).std(1, false)}, 1);
  const auto m = mlp->forward(torch::cat({h.mean({2, 3}).view({n, c}), level}, 1));
  const auto gamma = gammaFc(m), beta = betaFc(m);
  for (auto& block : decoderBlocks) h = block(h, gamma, beta);
  for (std::size_t i = 0; i < upConvs.size(); ++i) {
    h = F::interpolate(h, F::InterpolateFuncOptions().scale_factor(std::vector<double>{2.0, 2.0}).mode(torch::kNearest));
    h = torch::relu(upNorms[i](upConvs[i](reflect(h, 1))));
  }
  return {torch::tanh(outConv(reflect(h, 3))), cam};
}

GeneratorPairImpl::GeneratorPairImpl(const EdgNetShape& s) : shape(s) {
  encrypt = register_module("encrypt", Generator(s.ngf, s.resBlocks));
  decrypt = register_module("decrypt", Generator(s.ngf, s.resBlocks));
}

torch::Tensor spectrallyNormalised(const torch::Tensor& weight, torch::Tensor& u, torch::Tensor& v, bool training) {
  const auto w = weight.reshape({weight.size(0), -1});
  torch::Tensor uu = u, vv = v;
  if (training) {
    torch::NoGradGuard noGrad;
    v.copy_(F::normalize(torch::mv(w.t(), u), F::NormalizeFuncOptions().dim(0).eps(1e-12)));
    u.copy_(F::normalize(torch::mv(w, v), F::NormalizeFuncOptions().dim(0).eps(1e-12)));
    // Copies: a later forward updates u and v in place while this graph still needs them.
    uu = u.clone();
    vv = v.clone();
  }
  const auto sigma = torch::dot(uu, torch::mv(w, vv));
  return weight / sigma;
}

SnConv2dImpl::SnConv2dImpl(int in, int out, int kernel, int stride_, bool withBias) : stride(stride_) {
  torch::nn::Conv2d init(torch::nn::Conv2dOptions(in, out, kernel).bias(withBias));
  weight = register_parameter("weight", init->weight.detach().clone());
  if (withBias) bias = register_parameter("bias", init->bias.detach().clone());
  u = register_buffer("u", F::normalize(torch::randn({out}), F::NormalizeFuncOptions().dim(0)));
  v = register_buffer("v", F::normalize(torch::randn({in * kernel * kernel}), F::NormalizeFuncOptions().dim(0)));
}

torch::Tensor SnConv2dImpl::forward(const torch::Tensor& x) {
  return F::conv2d(x, spectrallyNormalised(weight, u, v, is_training()), F::Conv2dFuncOptions().bias(bias).stride(stride));
}

SnLinearImpl::SnLinearImpl(int in, int out) {
  torch::nn::Linear init(torch::nn::LinearOptions(in, out).bias(false));
  weight = register_parameter("weight", init->weight.detach().clone());
  u = register_buffer("u", F::normalize(torch::randn({out}), F::NormalizeFuncOptions().dim(0)));
  v = register_buffer("v", F::normalize(torch::randn({in}), F::NormalizeFuncOptions().dim(0)));
}

torch::Tensor SnLinearImpl::forward(const torch::Tensor& x) {
  return F::linear(x, spectrallyNormalised(weight, u, v, is_training()));
}

DiscriminatorImpl::DiscriminatorImpl(int ndf, int nLayers) {
  convs.push_back(register_module("conv0", SnConv2d(1, ndf, 4, 2, true)));
  int ch = ndf;
  for (int i = 1; i < nLayers - 2; ++i, ch *= 2)
    convs.push_back(register_module("conv" + std::to_string(i), SnConv2d(ch, ch * 2, 4, 2, true)));
  convs.push_back(register_module("conv" + std::to_string(nLayers - 2), SnConv2d(ch, ch * 2, 4, 1, true)));
  ch *= 2;
  gapFc = register_module("gap_fc", SnLinear(ch, 1));
  gmpFc = register_module("gmp_fc", SnLinear(ch, 1));
  camConv = register_module("cam_conv", conv(2 * ch, ch, 1, 1, true));
  outConv = register_module("out_conv", SnConv2d(ch, 1, 4, 1, false));
}

std::pair<torch::Tensor, torch::Tensor> DiscriminatorImpl::forward(const torch::Tensor& x) {
  auto h = x;
  for (auto& c : convs) h = F::leaky_relu(c(reflect(h, 1)), F::LeakyReLUFuncOptions().negative_slope(0.2));
  const auto c = h.size(1);
  const auto gapLogit = gapFc(h.mean({2, 3}));
  const auto gmpLogit = gmpFc(std::get<0>(h.flatten(2).max(2)));
  const auto hGap = h * gapFc->weight.view({1, c, 1, 1});
  const auto hGmp = h * gmpFc->weight.view({1, c, 1, 1});
  h = F::leaky_relu(camConv(torch::cat({hGap, hGmp}, 1)), F::LeakyReLUFuncOptions().negative_slope(0.2));
  return {outConv(reflect(h, 1)), torch::cat({gapLogit, gmpLogit}, 1)};
}

void saveGenerators(GeneratorPair& pair, const std::string& path, std::int64_t step) {
  torch::serialize::OutputArchive archive;
  pair->save(archive);
  if (step >= 0) archive.write(kStepKey, torch::tensor({step}, torch::kInt64));
  archive.write(kShapeKey, torch::tensor({kModelFormat, static_cast<std::int64_t>(pair->shape.ngf),
                                          static_cast<std::int64_t>(pair->shape.resBlocks),
                                          static_cast<std::int64_t>(pair->shape.tile)},
                                         torch::kInt64));
  archive.save_to(path);
}

GeneratorPair loadGenerators(const std::vector<std::uint8_t>& bytes) {
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    torch::Tensor shapeTensor;
    if (!archive.try_read(kShapeKey, shapeTensor) || shapeTensor.numel() != 4 ||
        shapeTensor.scalar_type() != torch::kInt64)
      throw CipherError("not a pacsgw edgnet model");
    const auto v = shapeTensor.accessor<std::int64_t, 1>();
    if (v[0] != kModelFormat) throw CipherError("edgnet model format " + std::to_string(v[0]) + " is not supported");
    EdgNetShape s;
    s.ngf = static_cast<int>(v[1]);
    s.resBlocks = static_cast<int>(v[2]);
    s.tile = static_cast<int>(v[3]);
    if (s.ngf < 2 || s.ngf > 256 || s.resBlocks < 0 || s.resBlocks > 16 || s.tile < 16 || s.tile > 1024 || s.tile % 4)
      throw CipherError("edgnet model has an implausible shape");
    GeneratorPair pair(s);
    pair->load(archive);
    return pair;
  } catch (const CipherError&) {
    throw;
  } catch (const std::exception& e) {
    throw CipherError(std::string("cannot read the edgnet model: ") + e.what());
  }
}

void clipRho(torch::nn::Module& module) {
  torch::NoGradGuard noGrad;
  for (auto& p : module.named_parameters()) {
    const std::string& name = p.key();
    if (name.size() >= 3 && name.compare(name.size() - 3, 3, "rho") == 0) p.value().clamp_(0, 1);
  }
}

torch::Tensor toTiles(const torch::Tensor& image, int tile) {
  const auto n = image.size(0), h = image.size(2), w = image.size(3);
  const auto th = (h + tile - 1) / tile, tw = (w + tile - 1) / tile;
  auto x = image;
  if (th * tile != h || tw * tile != w)
    x = F::pad(x, F::PadFuncOptions({0, tw * tile - w, 0, th * tile - h}).mode(torch::kReplicate));
  return x.view({n, 1, th, tile, tw, tile}).permute({0, 2, 4, 1, 3, 5}).reshape({n * th * tw, 1, tile, tile});
}

torch::Tensor fromTiles(const torch::Tensor& tiles, int rows, int columns, int tile) {
  const std::int64_t th = (rows + tile - 1) / tile, tw = (columns + tile - 1) / tile;
  const auto n = tiles.size(0) / (th * tw);
  return tiles.view({n, th, tw, 1, tile, tile})
      .permute({0, 3, 1, 4, 2, 5})
      .reshape({n, 1, th * tile, tw * tile})
      .slice(2, 0, rows)
      .slice(3, 0, columns);
}

}  // namespace detail

struct EdgNetModel::Impl {
  detail::GeneratorPair pair{nullptr};
  neural::ModelDigest digest{};
  Device device = Device::Cpu;
  torch::Device torchDevice{torch::kCPU};
  std::size_t parameters = 0;

  // Runs `g` over the tiles of a 1 x 1 x H x W image in [-1, 1], a bounded number of tiles at a time.
  torch::Tensor run(detail::Generator& g, const torch::Tensor& image) const {
    const int rows = static_cast<int>(image.size(2)), columns = static_cast<int>(image.size(3));
    const auto tiles = detail::toTiles(image.to(torchDevice), pair->shape.tile);
    std::vector<torch::Tensor> out;
    constexpr std::int64_t kChunk = 64;
    for (std::int64_t at = 0; at < tiles.size(0); at += kChunk)
      out.push_back(g->forward(tiles.slice(0, at, std::min(at + kChunk, tiles.size(0)))).first);
    return detail::fromTiles(torch::cat(out, 0), rows, columns, pair->shape.tile).contiguous().cpu();
  }
};

EdgNetModel::EdgNetModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EdgNetModel::~EdgNetModel() = default;

std::shared_ptr<const EdgNetModel> EdgNetModel::load(const neural::ModelFile& file, Device device) {
  static std::mutex mutex;
  static std::map<std::pair<std::string, int>, std::shared_ptr<const EdgNetModel>> cache;
  const auto key = std::make_pair(neural::hex(file.sha256), static_cast<int>(device));
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  auto impl = std::make_unique<Impl>();
  impl->pair = detail::loadGenerators(file.bytes);
  impl->digest = file.sha256;
  impl->device = device;
  impl->torchDevice = device == Device::Cuda ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  impl->pair->to(impl->torchDevice);
  impl->pair->eval();
  for (const auto& p : impl->pair->parameters()) impl->parameters += static_cast<std::size_t>(p.numel());
  std::shared_ptr<const EdgNetModel> model(new EdgNetModel(std::move(impl)));
  if (cache.size() >= 8) cache.clear();  // bounded: a few models per process at most
  cache.emplace(key, model);
  return model;
}

const neural::ModelDigest& EdgNetModel::digest() const { return impl_->digest; }
const EdgNetShape& EdgNetModel::shape() const { return impl_->pair->shape; }
Device EdgNetModel::device() const { return impl_->device; }
std::size_t EdgNetModel::parameterCount() const { return impl_->parameters; }

std::vector<std::uint8_t> EdgNetModel::encrypt(const neural::UnitFrame& frame) const {
  c10::InferenceMode guard;
  const auto x = torch::from_blob(const_cast<float*>(frame.values.data()), {1, 1, frame.rows, frame.columns},
                                  torch::kFloat32) * 2.0 - 1.0;
  const auto y = impl_->run(impl_->pair->encrypt, x);
  const auto q = torch::round((y + 1.0) * 127.5).clamp(0, 255).to(torch::kUInt8).contiguous();
  const auto* p = q.data_ptr<std::uint8_t>();
  return std::vector<std::uint8_t>(p, p + q.numel());
}

std::vector<float> EdgNetModel::decrypt(const std::uint8_t* cipher, int rows, int columns) const {
  c10::InferenceMode guard;
  const auto c = torch::from_blob(const_cast<std::uint8_t*>(cipher), {1, 1, rows, columns}, torch::kUInt8)
                     .to(torch::kFloat32) / 127.5 - 1.0;
  const auto y = ((impl_->run(impl_->pair->decrypt, c) + 1.0) * 0.5).clamp(0, 1).contiguous();
  const float* p = y.data_ptr<float>();
  return std::vector<float>(p, p + y.numel());
}

}  // namespace pacsgw::codecs::edgnet
