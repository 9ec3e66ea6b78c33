#pragma once
// The feature-fusion network (Long et al., reduced): feature encoding groups with logistic-map feature
// keys fused into the features, a pixel-shuffle cipher image, and the key-dependent de-fusion decoder;
// with the paper's statistical, correlation and diffusion losses and one training step. LibTorch is
// confined to model.cpp; this header is plain C++.
//
//   stem conv -> for each group i: FEM_i (stride-2 conv + residual block) -> F_i (feature residual
//   block); K_i (key residual block on the key tensor); alpha_i = fusion block(F_i, K_i), one
//   coefficient per channel in [alphaMin, 1]; A_i = alpha_i F_i + (1 - alpha_i) K_i  (paper Eq. 3)
//   cipher = sigmoid(PixelShuffle(2^G)(A_G)), quantised to cipherBits
//   decrypt: A_G = PixelUnshuffle(logit(cipher)); F_i = (A_i - (1 - alpha_i) K_i) / alpha_i (Eq. 6);
//            A_(i-1) = FDM_i(F_i) (transposed conv + residual block); head conv -> image
#include "codecs/feature_fusion/feature_keys.h"
#include "codecs/pixel_cipher.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace pacsgw::codecs::feature_fusion {

struct ModelConfig {
  int stemChannels = 16;
  std::vector<int> channels{16, 32, 64};  // per group; the last must be 4^groups (pixel shuffle)
  float alphaMin = 0.05f;                 // lower bound of a fusion coefficient (bounds 1/alpha)
  int cipherBits = 16;                    // quantisation of the stored cipher image
};

struct Losses {
  double total = 0, reconstruction = 0, stats = 0, correlation = 0, diffusion = 0, wrongKey = 0;
};

class FeatureFusionModel {
 public:
  explicit FeatureFusionModel(const ModelConfig& config = {}, std::uint64_t seed = 1);
  ~FeatureFusionModel();
  FeatureFusionModel(FeatureFusionModel&&) noexcept;
  FeatureFusionModel& operator=(FeatureFusionModel&&) noexcept;

  // Throws std::runtime_error naming the file when it is missing or not a feature-fusion model. Inference
  // runs on `device` (Device::Cuda needs LibTorch with CUDA and a device: check cudaAvailable() first).
  static FeatureFusionModel load(const std::string& path, Device device = Device::Cpu);
  static bool cudaAvailable();
  Device device() const;
  void save(const std::string& path) const;

  const ModelConfig& config() const;
  std::size_t parameterCount() const;
  int sizeMultiple() const;           // rows and columns must be multiples of 2^groups
  std::size_t coefficientCount() const;  // sum of the group channel counts

  struct Encrypted {
    std::vector<std::uint16_t> cipher;  // rows * columns codes of cipherBits bits
    std::vector<float> alpha;           // coefficientCount() fusion coefficients
  };
  // image: rows * columns values in [0, 1]. Thread-safe (inference only).
  Encrypted encrypt(const std::vector<float>& image, int rows, int columns, const FeatureKeys& keys) const;
  // The model's reconstruction in [0, 1] (lossy). alpha as recovered from the side information.
  std::vector<float> decrypt(const std::vector<std::uint16_t>& cipher, int rows, int columns,
                             const std::vector<float>& alpha, const FeatureKeys& keys) const;

 private:
  friend class FeatureFusionTrainer;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct TrainConfig {
  double learningRate = 1e-3;
  double weightDecay = 1e-4;
  double reconstructionWeight = 10.0;  // L1 weight (the paper's 1 collapses the decoder)
  double wrongKeyMargin = 0.3;         // hinge: a wrong-key decryption must be this far (mean L1)
};

// One optimiser over one model. Deterministic for a given seed and input sequence.
class FeatureFusionTrainer {
 public:
  FeatureFusionTrainer(FeatureFusionModel& model, const TrainConfig& config, std::uint64_t seed);
  ~FeatureFusionTrainer();

  // images: batch * rows * columns values in [0, 1]; keys: one per image. encryptionWeight scales
  // the encryption losses and the wrong-key hinge (0 and fusion off: auto-encoder pre-training).
  Losses step(const std::vector<float>& images, int batch, int rows, int columns,
              const std::vector<FeatureKeys>& keys, double encryptionWeight, bool fusion);
  // The same losses without an update (for held-out monitoring).
  Losses evaluate(const std::vector<float>& images, int batch, int rows, int columns,
                  const std::vector<FeatureKeys>& keys, double encryptionWeight, bool fusion);

  void setLearningRate(double lr);
  // Model, optimiser state and the step reached; loadCheckpoint returns that step.
  void saveCheckpoint(const std::string& path, std::uint64_t step) const;
  std::uint64_t loadCheckpoint(const std::string& path);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Process-wide LibTorch intra-op thread count (training tools).
void setTorchThreads(int threads);

}  // namespace pacsgw::codecs::feature_fusion
