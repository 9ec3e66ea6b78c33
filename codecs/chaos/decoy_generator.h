#pragma once
// The DCGAN decoy-image generator of chaos-vpd (paper Step 1 of the key generation). LibTorch is confined
// to decoy_generator.cpp; this header is plain C++.
//
// Architecture: the paper's DCGAN generator family scaled down to a 32x32x3 decoy, latent 64:
//   z(64) -ConvT 4x4 s1-> 4x4x128 -ConvT 4x4 s2-> 8x8x64 -ConvT 4x4 s2-> 16x16x32 -ConvT 4x4 s2-> 32x32x3
// with ReLU between layers and a bounded (hard tanh) output quantised to uint8. The weights are small
// integers drawn from a fixed public seed (an untrained generator: the decoy is key entropy only, never
// an image anyone looks at). Batch normalisation is replaced by an exact power-of-two rescaling of each
// layer's activations. Every value is an integer far below 2^53 held in float64, so each product and
// sum is exact: the decoy is bit-identical whatever the summation order, BLAS, thread count or device.
#include "codecs/pixel_cipher.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace pacsgw::codecs::chaos {

constexpr int kDecoySide = 32;
constexpr int kDecoyChannels = 3;
constexpr std::size_t kDecoyBytes = static_cast<std::size_t>(kDecoyChannels) * kDecoySide * kDecoySide;
constexpr std::size_t kLatentDim = 64;
constexpr std::size_t kLatentBytes = 4 * kLatentDim;  // each latent value is a sum of four bytes

using DecoyImage = std::array<std::uint8_t, kDecoyBytes>;  // planar R, G, B planes, rows top to bottom

class DecoyGenerator {
 public:
  explicit DecoyGenerator(Device device = Device::Cpu);
  ~DecoyGenerator();
  DecoyGenerator(const DecoyGenerator&) = delete;
  DecoyGenerator& operator=(const DecoyGenerator&) = delete;

  // z_i = b[4i] + b[4i+1] + b[4i+2] + b[4i+3] - 510: an integer latent with a near-Gaussian shape,
  // as DCGAN's Gaussian noise vector. Thread-safe.
  DecoyImage generate(const std::uint8_t* latentBytes) const;

  Device device() const;
  std::size_t parameterCount() const;
  // SHA-256 over the integer weights in layer order; pinned by tests so a change is never silent.
  std::array<std::uint8_t, 32> weightsDigest() const;
  // Runs the layers through LibTorch's native conv_transpose2d as well and reports whether both
  // formulations agree exactly for this latent (a test hook).
  bool matchesNativeConvTranspose(const std::uint8_t* latentBytes) const;

  // Process-wide instance per device, built on first use (thread-safe).
  static const DecoyGenerator& shared(Device device);
  static bool cudaAvailable();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Sets LibTorch's intra-op thread count for the whole process (the evaluation's single-core runs).
void setTensorThreads(int threads);

}  // namespace pacsgw::codecs::chaos
