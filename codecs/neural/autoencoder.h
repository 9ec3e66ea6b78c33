#pragma once
// The convolutional autoencoder family of the neural backends (ae-aes; the feature extractor of ae-he),
// after Alslman et al. 2022 (Electronics 11:3967, Table 2), for one-channel CT/MR frames:
//
//   encoder: conv3x3(1->W) ReLU, maxpool 2x2, conv3x3(W->W) ReLU, conv3x3(W->W/2) ReLU,
//            conv1x1(W/2->C) sigmoid                                  -> latent C x ceil(H/2) x ceil(W/2)
//   decoder: conv1x1(C->C) sigmoid, conv3x3(C->W) ReLU, upsample 2x (nearest), conv3x3(W->W) ReLU,
//            conv3x3(W->W) ReLU, conv3x3(W->1) sigmoid                 -> frame H x W in [0, 1]
//
// The paper's "Dense" layers act per pixel, i.e. 1x1 convolutions. Fully convolutional: any frame size
// (odd sizes are padded by edge replication and cropped back). The latent is quantised to 8 bits
// (round(255 y)); training passes the rounding straight through. W (width) and C (latent channels) are
// stored in the model file. LibTorch stays inside autoencoder.cpp and autoencoder_training.cpp.
#include "codecs/neural/frames.h"
#include "codecs/neural/model_store.h"
#include "codecs/pixel_cipher.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace pacsgw::codecs::neural {

struct AutoencoderShape {
  int width = 32;          // W: feature maps of the full- and half-resolution convolutions
  int latentChannels = 3;  // C: latent channels (the paper's 3, "so it can be visualised as an image")
};
constexpr int kAutoencoderDownscale = 2;

inline std::size_t latentBytes(const AutoencoderShape& s, int rows, int columns) {
  return static_cast<std::size_t>(s.latentChannels) * ((rows + 1) / 2) * ((columns + 1) / 2);
}

class Autoencoder {
 public:
  ~Autoencoder();
  Autoencoder(const Autoencoder&) = delete;
  Autoencoder& operator=(const Autoencoder&) = delete;

  // The model in `file` on `device`; one instance per (digest, device) per process, shared and read-only.
  // Throws CipherError if the file is not an autoencoder model of this family.
  static std::shared_ptr<const Autoencoder> load(const ModelFile& file, Device device);

  const ModelDigest& digest() const;
  const AutoencoderShape& shape() const;
  Device device() const;
  std::size_t parameterCount() const;

  // Thread-safe (inference only). Latent: C planes of ceil(H/2) x ceil(W/2) bytes.
  std::vector<std::uint8_t> encode(const UnitFrame& frame) const;
  std::vector<float> decode(const std::uint8_t* latent, int rows, int columns) const;

  struct Impl;

 private:
  explicit Autoencoder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

bool cudaAvailable();
// LibTorch's intra-op threads for the whole process (0: leave as is).
void setTensorThreads(int threads);

}  // namespace pacsgw::codecs::neural
