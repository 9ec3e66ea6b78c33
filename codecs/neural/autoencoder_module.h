#pragma once
// Private to codecs/neural/: the LibTorch module of the autoencoder (autoencoder.h describes it) and its
// model-file format. Included only by autoencoder.cpp and autoencoder_training.cpp.
#include "codecs/neural/autoencoder.h"

#include <torch/torch.h>

#include <string>

namespace pacsgw::codecs::neural::detail {

// Model file: a LibTorch archive with the module's parameters and "pacsgw_autoencoder" = int64
// {format 1, width, latent channels}.
constexpr const char* kShapeKey = "pacsgw_autoencoder";
constexpr std::int64_t kModelFormat = 1;

struct AutoencoderNetImpl : torch::nn::Module {
  explicit AutoencoderNetImpl(const AutoencoderShape& s);
  // x: N x 1 x H x W (H, W even), y in [0, 1].
  torch::Tensor encode(const torch::Tensor& x);
  // Rounds the latent to 8 bits; the gradient passes straight through.
  static torch::Tensor quantise(const torch::Tensor& latent);
  torch::Tensor decode(const torch::Tensor& latent);

  AutoencoderShape shape;
  torch::nn::Conv2d e1{nullptr}, e2{nullptr}, e3{nullptr}, e4{nullptr};
  torch::nn::Conv2d d1{nullptr}, d2{nullptr}, d3{nullptr}, d4{nullptr}, d5{nullptr};
};
TORCH_MODULE(AutoencoderNet);

// Writes the model file; `step` >= 0 also records the training step (checkpoints).
void saveAutoencoder(AutoencoderNet& net, const std::string& path, std::int64_t step = -1);
constexpr const char* kStepKey = "pacsgw_training_step";
// Reads the shape and parameters from an archive in memory. Throws CipherError.
AutoencoderNet loadAutoencoder(const std::vector<std::uint8_t>& bytes);

}  // namespace pacsgw::codecs::neural::detail
