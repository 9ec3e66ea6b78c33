#pragma once
// Runs cipher backends over DICOM images and computes the papers' metrics (see docs/evaluation.md).
#include "codecs/eval/dicom_input.h"
#include "codecs/eval/json.h"
#include "codecs/pixel_cipher.h"

#include <array>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

namespace pacsgw::eval {

struct EvalOptions {
  std::vector<std::string> backends;
  std::string device = "cpu";
  std::size_t pairs = 10000;             // adjacent-pixel pairs per direction
  std::uint64_t seed = 20250107;         // sampling positions, noise and the one-pixel change
  bool nist = true;
  std::size_t nistKeyBits = 1200000;     // per key stream (the paper's batch size)
  std::size_t nistCipherBits = std::size_t{1} << 22;  // ciphertext bits tested at most
  std::size_t nistImages = 1;            // images whose key streams and ciphertext go through NIST
  double timingSeconds = 0.5;            // CPU time spent per direction when measuring throughput
  std::size_t figureImages = 3;          // images that get figures in the HTML report
  std::size_t differentialRuns = 10;     // repetitions of the one-pixel test (fresh nonce and position each)
  int threads = 1;                       // LibTorch intra-op threads (1 = the single-core figures)
};

// A grey-scale picture for the report (first plane, downsampled to at most 256 columns).
struct Thumbnail {
  std::size_t width = 0, height = 0;
  std::vector<std::uint8_t> pixels;
};

// Figure data of one (backend, image): 8-bit view histograms and adjacent-pixel pairs, as in the papers.
struct Figures {
  std::string image;
  std::vector<std::uint64_t> histPlain, histCipher;
  std::array<std::vector<std::pair<double, double>>, 3> pairsPlain, pairsCipher;  // H, V, D
  Thumbnail plain, cipher, decrypted, wrongKey, cropped, noisy;
};

struct BackendResult {
  std::string backend;
  Json json;  // the backend's object in the report ("images" holds the per-image details)
  std::vector<Figures> figures;
};

struct EvalReport {
  Json json;  // the whole JSON document
  std::vector<BackendResult> backends;
};

// `log` receives one progress line per step (never key material or pixel values). `progress`, when
// set, is called after each (backend, image) evaluation with the count done, the total and the pixel
// bytes evaluated so far.
using EvalProgress = std::function<void(std::size_t done, std::size_t total, double bytes)>;
EvalReport runEvaluation(const std::vector<EvalImage>& images, const EvalOptions& options, std::ostream& log,
                         const EvalProgress& progress = {});

// Retrieval through the gateway's path (codecs/exact_retrieval.h, recoverPixels): `cipherImage` with its
// record and exact-retrieval envelope, under the associated data the codecs layer used when protecting.
// bitExact only when recovery succeeds, reports exact retrieval and returns `original` byte for byte; any
// refusal (e.g. a stripped or damaged envelope) gives false with the error in `outcome`.
struct GatewayRetrieval {
  bool bitExact = false;
  std::string outcome;
};
GatewayRetrieval gatewayRetrieval(codecs::PixelCipher& cipher, const codecs::PixelLayout& layout,
                                  const std::vector<std::uint8_t>& cipherImage, const SecretBytes& key,
                                  const std::vector<std::uint8_t>& aad, const codecs::CipherRecord& record,
                                  const std::vector<std::uint8_t>& envelope, const std::vector<std::uint8_t>& original);

// Size of the model file a backend uses by default (its shipped model); 0 for backends without one.
std::uint64_t defaultModelBytes(const codecs::BackendInfo& info);

// Published figures of Kumar, Chivukula, Barua, Sci. Rep. 15:1211 (2025) used for comparison.
Json publishedFigures();

}  // namespace pacsgw::eval
