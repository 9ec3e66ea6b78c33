// The only translation unit of chaos-vpd that includes LibTorch (ATen per-operator headers only).
#include "codecs/chaos/decoy_generator.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/col2im.h>
#include <ATen/ops/conv_transpose2d.h>
#include <ATen/ops/from_blob.h>
#include <c10/core/InferenceMode.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace pacsgw::codecs::chaos {
namespace {

constexpr const char* kWeightSeedLabel = "pacsgw chaos-vpd decoy generator v1";
constexpr int kKernel = 4;
constexpr int kWeightRange = 7;  // weights are integers in [-7, 7]

struct LayerSpec {
  int in, out, stride, padding, outSide;
};
// A reduced DCGAN generator: 32x32x3 output, latent 64, ngf 32 (the paper's is 128x128 from 4x4x1024).
constexpr LayerSpec kLayers[] = {
    {64, 128, 1, 0, 4},
    {128, 64, 2, 1, 8},
    {64, 32, 2, 1, 16},
    {32, 3, 2, 1, 32},
};

std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

std::array<std::uint8_t, 32> sha256(const void* data, std::size_t size) {
  std::array<std::uint8_t, 32> out{};
  unsigned int len = 0;
  if (EVP_Digest(data, size, out.data(), &len, EVP_sha256(), nullptr) != 1 || len != out.size())
    throw CipherError("chaos-vpd: SHA-256 failed");
  return out;
}

// Bit length of a non-negative integer held exactly in a double (frexp is exact).
int bitLength(double v) {
  if (v < 1.0) return 0;
  int exponent = 0;
  std::frexp(v, &exponent);
  return exponent;
}

// Exact power-of-two rescale so that every value is below 2^bits (the integer stand-in for BatchNorm).
at::Tensor rescale(const at::Tensor& x, double maxValue, int bits) {
  const int shift = std::max(0, bitLength(maxValue) - bits);
  if (shift == 0) return x;
  return x.mul(std::ldexp(1.0, -shift)).floor();
}

}  // namespace

struct DecoyGenerator::Impl {
  Device device = Device::Cpu;
  at::Device torchDevice = at::Device(at::kCPU);
  std::vector<at::Tensor> nativeWeights;  // [in, out, 4, 4], as ConvTranspose2d stores them
  std::vector<at::Tensor> columnWeights;  // [out*16, in]: transposed matrix for the GEMM formulation
  // GEMM element type: int32 on the CPU (exact by construction, and faster than the reference BLAS
  // Debian's LibTorch links), float64 on CUDA (no integer GEMM there; exact because all values are
  // integers below 2^53). Both give the same integers.
  at::ScalarType gemmType = at::kInt;
  std::vector<std::int8_t> raw;
  std::array<std::uint8_t, 32> digest{};

  at::Tensor latent(const std::uint8_t* bytes) const {
    std::array<double, kLatentDim> z{};
    for (std::size_t i = 0; i < kLatentDim; ++i)
      z[i] = static_cast<double>(int{bytes[4 * i]} + bytes[4 * i + 1] + bytes[4 * i + 2] + bytes[4 * i + 3] - 510);
    return at::from_blob(z.data(), {static_cast<long>(kLatentDim), 1}, at::TensorOptions().dtype(at::kDouble))
        .clone()
        .to(torchDevice);
  }

  // Final layer: hard tanh onto [-128, 127] after an exact rescale, then shift to uint8.
  DecoyImage quantise(const at::Tensor& pre) const {
    const double maxAbs = pre.abs().max().item<double>();
    const at::Tensor q = rescale(pre, maxAbs, 7).add(128.0).clamp(0.0, 255.0).to(at::kByte).cpu().contiguous();
    DecoyImage image{};
    if (static_cast<std::size_t>(q.numel()) != image.size()) throw CipherError("chaos-vpd: decoy size mismatch");
    std::memcpy(image.data(), q.data_ptr<std::uint8_t>(), image.size());
    return image;
  }

  // ConvTranspose2d as GEMM + col2im: only exact integer products and sums, on any device.
  DecoyImage forwardGemm(const std::uint8_t* latentBytes) const {
    c10::InferenceMode guard;
    at::Tensor x = latent(latentBytes).to(gemmType);  // [in, H*W]
    for (std::size_t l = 0; l < std::size(kLayers); ++l) {
      const LayerSpec& s = kLayers[l];
      const at::Tensor cols = columnWeights[l].mm(x).to(at::kDouble).unsqueeze(0);  // [1, out*16, H*W]
      at::Tensor y = at::col2im(cols, {s.outSide, s.outSide}, {kKernel, kKernel}, {1, 1}, {s.padding, s.padding},
                                {s.stride, s.stride});  // [1, out, side, side]
      if (l + 1 == std::size(kLayers)) return quantise(y);
      y = y.relu();
      y = rescale(y, y.max().item<double>(), 8);
      x = y.view({s.out, s.outSide * s.outSide}).to(gemmType);
    }
    throw CipherError("chaos-vpd: generator has no layers");
  }

  DecoyImage forwardNative(const std::uint8_t* latentBytes) const {
    c10::InferenceMode guard;
    at::Tensor x = latent(latentBytes).view({1, static_cast<long>(kLatentDim), 1, 1});
    for (std::size_t l = 0; l < std::size(kLayers); ++l) {
      const LayerSpec& s = kLayers[l];
      at::Tensor y = at::conv_transpose2d(x, nativeWeights[l], {}, {s.stride, s.stride}, {s.padding, s.padding});
      if (l + 1 == std::size(kLayers)) return quantise(y);
      y = y.relu();
      x = rescale(y, y.max().item<double>(), 8);
    }
    throw CipherError("chaos-vpd: generator has no layers");
  }
};

DecoyGenerator::DecoyGenerator(Device device) : impl_(std::make_unique<Impl>()) {
  if (device == Device::Cuda && !cudaAvailable())
    throw CipherError("chaos-vpd: device 'cuda' requested but LibTorch has no CUDA device");
  impl_->device = device;
  impl_->torchDevice = device == Device::Cuda ? at::Device(at::kCUDA) : at::Device(at::kCPU);
  impl_->gemmType = device == Device::Cuda ? at::kDouble : at::kInt;

  // Weights: integers in [-7, 7] from splitmix64 seeded by SHA-256 of a public label. Our own generator,
  // not LibTorch's, so the weights can never change with a LibTorch upgrade.
  const auto seedDigest = sha256(kWeightSeedLabel, std::strlen(kWeightSeedLabel));
  std::uint64_t state = 0;
  for (int i = 0; i < 8; ++i) state = (state << 8) | seedDigest[i];
  for (const LayerSpec& s : kLayers) {
    const std::size_t count = static_cast<std::size_t>(s.in) * s.out * kKernel * kKernel;
    std::vector<double> values(count);
    for (std::size_t i = 0; i < count; ++i) {
      const int draw = static_cast<int>(splitmix64(state) % (2 * kWeightRange + 1));
      const auto w = static_cast<std::int8_t>(draw - kWeightRange);
      impl_->raw.push_back(w);
      values[i] = w;
    }
    const at::Tensor native =
        at::from_blob(values.data(), {s.in, s.out, kKernel, kKernel}, at::TensorOptions().dtype(at::kDouble))
            .clone()
            .to(impl_->torchDevice);
    impl_->nativeWeights.push_back(native);
    impl_->columnWeights.push_back(
        native.view({s.in, s.out * kKernel * kKernel}).t().contiguous().to(impl_->gemmType));
  }
  impl_->digest = sha256(impl_->raw.data(), impl_->raw.size());
}

DecoyGenerator::~DecoyGenerator() = default;

DecoyImage DecoyGenerator::generate(const std::uint8_t* latentBytes) const {
  return impl_->forwardGemm(latentBytes);
}

Device DecoyGenerator::device() const { return impl_->device; }

std::size_t DecoyGenerator::parameterCount() const { return impl_->raw.size(); }

std::array<std::uint8_t, 32> DecoyGenerator::weightsDigest() const { return impl_->digest; }

bool DecoyGenerator::matchesNativeConvTranspose(const std::uint8_t* latentBytes) const {
  return impl_->forwardGemm(latentBytes) == impl_->forwardNative(latentBytes);
}

const DecoyGenerator& DecoyGenerator::shared(Device device) {
  if (device == Device::Cuda) {
    static const DecoyGenerator cuda(Device::Cuda);
    return cuda;
  }
  static const DecoyGenerator cpu(Device::Cpu);
  return cpu;
}

bool DecoyGenerator::cudaAvailable() { return at::hasCUDA(); }

void setTensorThreads(int threads) {
  if (threads > 0) at::set_num_threads(threads);
}

}  // namespace pacsgw::codecs::chaos
