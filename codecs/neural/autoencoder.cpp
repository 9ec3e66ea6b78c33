// The autoencoder: module, model file, inference (one of the two translation units with LibTorch).
#include "codecs/neural/autoencoder_module.h"

#include <map>
#include <mutex>
#include <sstream>
#include <utility>

namespace pacsgw::codecs::neural {
namespace detail {

namespace F = torch::nn::functional;

AutoencoderNetImpl::AutoencoderNetImpl(const AutoencoderShape& s) : shape(s) {
  const int w = s.width, h = s.width / 2, c = s.latentChannels;
  auto conv = [](int in, int out, int k) { return torch::nn::Conv2dOptions(in, out, k).padding(k / 2); };
  e1 = register_module("e1", torch::nn::Conv2d(conv(1, w, 3)));
  e2 = register_module("e2", torch::nn::Conv2d(conv(w, w, 3)));
  e3 = register_module("e3", torch::nn::Conv2d(conv(w, h, 3)));
  e4 = register_module("e4", torch::nn::Conv2d(conv(h, c, 1)));
  d1 = register_module("d1", torch::nn::Conv2d(conv(c, c, 1)));
  d2 = register_module("d2", torch::nn::Conv2d(conv(c, w, 3)));
  d3 = register_module("d3", torch::nn::Conv2d(conv(w, w, 3)));
  d4 = register_module("d4", torch::nn::Conv2d(conv(w, w, 3)));
  d5 = register_module("d5", torch::nn::Conv2d(conv(w, 1, 3)));
}

torch::Tensor AutoencoderNetImpl::encode(const torch::Tensor& x) {
  auto y = torch::relu(e1(x));
  y = F::max_pool2d(y, F::MaxPool2dFuncOptions(2));
  y = torch::relu(e2(y));
  y = torch::relu(e3(y));
  return torch::sigmoid(e4(y));
}

torch::Tensor AutoencoderNetImpl::quantise(const torch::Tensor& latent) {
  const auto q = torch::round(latent * 255.0) / 255.0;
  return latent + (q - latent).detach();
}

torch::Tensor AutoencoderNetImpl::decode(const torch::Tensor& latent) {
  auto y = torch::sigmoid(d1(latent));
  y = torch::relu(d2(y));
  y = F::interpolate(y, F::InterpolateFuncOptions().scale_factor(std::vector<double>{2.0, 2.0}).mode(torch::kNearest));
  y = torch::relu(d3(y));
  y = torch::relu(d4(y));
  return torch::sigmoid(d5(y));
}

void saveAutoencoder(AutoencoderNet& net, const std::string& path, std::int64_t step) {
  torch::serialize::OutputArchive archive;
  net->save(archive);
  if (step >= 0) archive.write(kStepKey, torch::tensor({step}, torch::kInt64));
  archive.write(kShapeKey, torch::tensor({kModelFormat, static_cast<std::int64_t>(net->shape.width),
                                          static_cast<std::int64_t>(net->shape.latentChannels)},
                                         torch::kInt64));
  archive.save_to(path);
}

AutoencoderNet loadAutoencoder(const std::vector<std::uint8_t>& bytes) {
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    torch::Tensor shapeTensor;
    if (!archive.try_read(kShapeKey, shapeTensor) || shapeTensor.numel() != 3 ||
        shapeTensor.scalar_type() != torch::kInt64)
      throw CipherError("not a pacsgw autoencoder model");
    const auto v = shapeTensor.accessor<std::int64_t, 1>();
    if (v[0] != kModelFormat) throw CipherError("autoencoder model format " + std::to_string(v[0]) + " is not supported");
    AutoencoderShape s;
    s.width = static_cast<int>(v[1]);
    s.latentChannels = static_cast<int>(v[2]);
    if (s.width < 2 || s.width > 512 || s.width % 2 || s.latentChannels < 1 || s.latentChannels > 64)
      throw CipherError("autoencoder model has an implausible shape");
    AutoencoderNet net(s);
    net->load(archive);
    return net;
  } catch (const CipherError&) {
    throw;
  } catch (const std::exception& e) {
    throw CipherError(std::string("cannot read the autoencoder model: ") + e.what());
  }
}

}  // namespace detail

struct Autoencoder::Impl {
  detail::AutoencoderNet net{nullptr};
  ModelDigest digest{};
  Device device = Device::Cpu;
  torch::Device torchDevice{torch::kCPU};
  std::size_t parameters = 0;
};

Autoencoder::Autoencoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Autoencoder::~Autoencoder() = default;

std::shared_ptr<const Autoencoder> Autoencoder::load(const ModelFile& file, Device device) {
  static std::mutex mutex;
  static std::map<std::pair<std::string, int>, std::shared_ptr<const Autoencoder>> cache;
  const auto key = std::make_pair(hex(file.sha256), static_cast<int>(device));
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  auto impl = std::make_unique<Impl>();
  impl->net = detail::loadAutoencoder(file.bytes);
  impl->digest = file.sha256;
  impl->device = device;
  impl->torchDevice = device == Device::Cuda ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  impl->net->to(impl->torchDevice);
  impl->net->eval();
  for (const auto& p : impl->net->parameters()) impl->parameters += static_cast<std::size_t>(p.numel());
  std::shared_ptr<const Autoencoder> model(new Autoencoder(std::move(impl)));
  if (cache.size() >= 8) cache.clear();  // bounded: a few models per process at most
  cache.emplace(key, model);
  return model;
}

const ModelDigest& Autoencoder::digest() const { return impl_->digest; }
const AutoencoderShape& Autoencoder::shape() const { return impl_->net->shape; }
Device Autoencoder::device() const { return impl_->device; }
std::size_t Autoencoder::parameterCount() const { return impl_->parameters; }

std::vector<std::uint8_t> Autoencoder::encode(const UnitFrame& frame) const {
  c10::InferenceMode guard;
  const int h = frame.rows, w = frame.columns;
  auto x = torch::from_blob(const_cast<float*>(frame.values.data()), {1, 1, h, w}, torch::kFloat32)
               .to(impl_->torchDevice);
  if (h % 2 || w % 2)
    x = detail::F::pad(x, detail::F::PadFuncOptions({0, w % 2, 0, h % 2}).mode(torch::kReplicate));
  auto latent = impl_->net->encode(x);
  latent = torch::round(latent * 255.0).clamp(0, 255).to(torch::kUInt8).contiguous().cpu();
  const auto* p = latent.data_ptr<std::uint8_t>();
  return std::vector<std::uint8_t>(p, p + latent.numel());
}

std::vector<float> Autoencoder::decode(const std::uint8_t* latent, int rows, int columns) const {
  c10::InferenceMode guard;
  const int lh = (rows + 1) / 2, lw = (columns + 1) / 2;
  auto z = torch::from_blob(const_cast<std::uint8_t*>(latent), {1, shape().latentChannels, lh, lw}, torch::kUInt8)
               .to(impl_->torchDevice)
               .to(torch::kFloat32) / 255.0;
  auto y = impl_->net->decode(z).slice(2, 0, rows).slice(3, 0, columns).contiguous().cpu();
  const float* p = y.data_ptr<float>();
  return std::vector<float>(p, p + y.numel());
}

bool cudaAvailable() { return torch::cuda::is_available(); }

void setTensorThreads(int threads) {
  if (threads > 0) torch::set_num_threads(threads);
}

}  // namespace pacsgw::codecs::neural
