#pragma once
// Private to codecs/edgnet/: the LibTorch modules of EdgNet (generators, discriminators, hand-written
// spectral normalisation) and the model-file format. Included only by edgnet_model.cpp and
// edgnet_training.cpp.
#include "codecs/edgnet/edgnet_model.h"

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

namespace pacsgw::codecs::edgnet::detail {

// Model file: a LibTorch archive with submodules "encrypt" (G_p->c) and "decrypt" (G_c->p) and
// "pacsgw_edgnet" = int64 {format 1, ngf, residual blocks, tile}.
constexpr const char* kShapeKey = "pacsgw_edgnet";
constexpr std::int64_t kModelFormat = 1;
constexpr const char* kStepKey = "pacsgw_training_step";

// ---- normalisation layers of the generator ----

// Adaptive instance-layer normalisation: gamma * (rho * IN(x) + (1 - rho) * LN(x)) + beta, with gamma and
// beta from the generator's MLP and rho learnable per channel (clipped to [0, 1] after every step).
struct AdaIlnImpl : torch::nn::Module {
  explicit AdaIlnImpl(int channels);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& gamma, const torch::Tensor& beta);
  torch::Tensor rho;
};
TORCH_MODULE(AdaIln);

// Instance-layer normalisation with its own learnable gamma and beta (the up-sampling path).
struct IlnImpl : torch::nn::Module {
  explicit IlnImpl(int channels);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor rho, gamma, beta;
};
TORCH_MODULE(Iln);

// [pad 1, conv 3x3, IN, ReLU, pad 1, conv 3x3, IN] + x
struct ResnetBlockImpl : torch::nn::Module {
  explicit ResnetBlockImpl(int channels);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
};
TORCH_MODULE(ResnetBlock);

// [pad 1, conv 3x3, AdaILN, ReLU, pad 1, conv 3x3, AdaILN] + x
struct ResnetAdaIlnBlockImpl : torch::nn::Module {
  explicit ResnetAdaIlnBlockImpl(int channels);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& gamma, const torch::Tensor& beta);
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  AdaIln norm1{nullptr}, norm2{nullptr};
};
TORCH_MODULE(ResnetAdaIlnBlock);

// ---- generator ----

// Input and output in [-1, 1], N x 1 x H x W with H, W multiples of 4. Returns the image and the two CAM
// logits (GAP, GMP) of the auxiliary classifier, N x 2.
struct GeneratorImpl : torch::nn::Module {
  GeneratorImpl(int ngf, int resBlocks);
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x);

  torch::nn::Sequential encoder{nullptr};
  torch::nn::Linear gapFc{nullptr}, gmpFc{nullptr};
  torch::nn::Conv2d camConv{nullptr};
  torch::nn::Sequential mlp{nullptr};
  torch::nn::Linear gammaFc{nullptr}, betaFc{nullptr};
  std::vector<ResnetAdaIlnBlock> decoderBlocks;
  std::vector<torch::nn::Conv2d> upConvs;
  std::vector<Iln> upNorms;
  torch::nn::Conv2d outConv{nullptr};
};
TORCH_MODULE(Generator);

struct GeneratorPairImpl : torch::nn::Module {
  explicit GeneratorPairImpl(const EdgNetShape& s);
  EdgNetShape shape;
  Generator encrypt{nullptr};  // G_p->c
  Generator decrypt{nullptr};  // G_c->p
};
TORCH_MODULE(GeneratorPair);

// ---- discriminators (training only) ----

// Spectral normalisation (Miyato et al.) written out: the weight divided by its largest singular value,
// estimated by one power iteration per training forward with a persistent u (and v) vector.
torch::Tensor spectrallyNormalised(const torch::Tensor& weight, torch::Tensor& u, torch::Tensor& v, bool training);

struct SnConv2dImpl : torch::nn::Module {
  SnConv2dImpl(int in, int out, int kernel, int stride, bool bias);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight, bias, u, v;
  int stride;
};
TORCH_MODULE(SnConv2d);

struct SnLinearImpl : torch::nn::Module {
  SnLinearImpl(int in, int out);  // no bias (the CAM logits)
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight, u, v;
};
TORCH_MODULE(SnLinear);

// PatchGAN with CAM: (nLayers - 2) stride-2 4x4 convolutions from ndf channels, one stride-1, the CAM
// block, a 1-channel 4x4 patch map. Global (more layers, larger receptive field) and local discriminators
// differ only in nLayers. Returns the patch map and the two CAM logits (N x 2).
struct DiscriminatorImpl : torch::nn::Module {
  DiscriminatorImpl(int ndf, int nLayers);
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x);
  std::vector<SnConv2d> convs;
  SnLinear gapFc{nullptr}, gmpFc{nullptr};
  torch::nn::Conv2d camConv{nullptr};
  SnConv2d outConv{nullptr};
};
TORCH_MODULE(Discriminator);

// Writes the generator pair; `step` >= 0 also records the training step (checkpoints).
void saveGenerators(GeneratorPair& pair, const std::string& path, std::int64_t step = -1);
// Reads the shape and parameters from an archive in memory. Throws CipherError.
GeneratorPair loadGenerators(const std::vector<std::uint8_t>& bytes);

// Clamps every AdaILN / ILN rho to [0, 1] (after each optimiser step).
void clipRho(torch::nn::Module& module);

// Pads N x 1 x H x W by edge replication to multiples of `tile` and reshapes to tiles (N*T x 1 x tile x
// tile); untile() inverts it and crops to rows x columns.
torch::Tensor toTiles(const torch::Tensor& image, int tile);
torch::Tensor fromTiles(const torch::Tensor& tiles, int rows, int columns, int tile);

}  // namespace pacsgw::codecs::edgnet::detail
