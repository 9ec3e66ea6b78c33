#pragma once
// The EdgNet generator pair (after Ding et al., EDG-Net, reduced): G_enc maps a windowed slice to a cipher
// image in the style of a classical chaotic cipher, G_dec maps the cipher image back. No LibTorch here
// (edgnet_module.h holds the networks; docs/ciphers.md, "edgnet", describes them).
//
// Inference works tile by tile: the frame is padded by edge replication to a multiple of the model's tile
// (the training patch size, stored in the model file), cut into tiles that run as one batch, and cropped
// back. Tiles are what the networks saw in training, so instance and layer statistics match.
// The cipher image is quantised to 8 bits (round(255 y)), as the paper's cipher images are.
#include "codecs/neural/frames.h"
#include "codecs/neural/model_store.h"
#include "codecs/pixel_cipher.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace pacsgw::codecs::edgnet {

struct EdgNetShape {
  int ngf = 16;        // feature maps of the first convolution (doubled by each of the two down-samplings)
  int resBlocks = 2;   // residual blocks in the encoder, and AdaILN residual blocks in the decoder
  int tile = 64;       // inference tile = training patch (pixels, a multiple of 4)
};

class EdgNetModel {
 public:
  ~EdgNetModel();
  EdgNetModel(const EdgNetModel&) = delete;
  EdgNetModel& operator=(const EdgNetModel&) = delete;

  // The generator pair in `file` on `device`; one instance per (digest, device) per process, shared and
  // read-only. Throws CipherError if the file is not an edgnet model.
  static std::shared_ptr<const EdgNetModel> load(const neural::ModelFile& file, Device device);

  const neural::ModelDigest& digest() const;
  const EdgNetShape& shape() const;
  Device device() const;
  std::size_t parameterCount() const;  // both generators

  // Thread-safe (inference only). The cipher image: rows * columns bytes, row-major.
  std::vector<std::uint8_t> encrypt(const neural::UnitFrame& frame) const;
  // The reconstruction in [0, 1] of a cipher image of rows * columns bytes.
  std::vector<float> decrypt(const std::uint8_t* cipher, int rows, int columns) const;

  struct Impl;

 private:
  explicit EdgNetModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pacsgw::codecs::edgnet
