#include "codecs/eval/eval_runner.h"

#include "codecs/eval/cores.h"
#include "codecs/exact_retrieval.h"
#include "codecs/neural/model_store.h"
#include "codecs/eval/metrics.h"
#include "codecs/eval/nist.h"

#include <openssl/rand.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <map>
#include <ostream>
#include <random>
#include <stdexcept>

namespace pacsgw::eval {
namespace {

using codecs::CipherRecord;
using codecs::PixelBuffer;
using Bytes = std::vector<std::uint8_t>;

constexpr double kAlphas[] = {0.05, 0.01, 0.001};
constexpr Direction kDirections[] = {Direction::Horizontal, Direction::Vertical, Direction::Diagonal};
constexpr const char* kDirectionKeys[] = {"h", "v", "d"};
constexpr ViewKind kViews[] = {ViewKind::Msb8, ViewKind::Full};

double threadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double wallSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

Bytes randomBytes(std::size_t n) {
  Bytes b(n);
  if (n && RAND_bytes(b.data(), static_cast<int>(n)) != 1) throw std::runtime_error("eval: random generator failed");
  return b;
}

SecretBytes randomKey() {
  SecretBytes k(32);
  if (RAND_bytes(k.data(), 32) != 1) throw std::runtime_error("eval: random generator failed");
  return k;
}

PixelBuffer bufferOf(const EvalImage& img, Bytes& bytes) {
  PixelBuffer b;
  b.layout = img.layout;
  b.segments.push_back({bytes.data(), bytes.size()});
  return b;
}

ImageView viewOf(const EvalImage& img, const Bytes& bytes, ViewKind kind) {
  return makeView(img.layout, bytes.data(), bytes.size(), kind);
}

std::size_t bytesPerSample(const EvalImage& img) { return img.layout.bitsAllocated / 8; }
std::size_t sampleCount(const EvalImage& img) { return img.bytes.size() / bytesPerSample(img); }

// One-pixel change: flip the least significant bit of sample `index`.
Bytes withOnePixelChanged(const Bytes& plain, const EvalImage& img, std::size_t index) {
  Bytes b = plain;
  b[index * bytesPerSample(img)] ^= 1;
  return b;
}

Json differentialJson(const Differential& d, double mn, double f) {
  Json j = Json::object();
  j["npcr"] = d.npcr;
  j["uaci"] = d.uaci;
  Json npcrPass = Json::object(), uaciPass = Json::object(), npcrCrit = Json::object(), uaciInt = Json::object();
  for (double a : kAlphas) {
    const std::string key = a == 0.05 ? "0.05" : a == 0.01 ? "0.01" : "0.001";
    const double crit = 100 * wuNpcrCritical(mn, f, a);
    const auto iv = wuUaciInterval(mn, f, a);
    npcrCrit[key] = crit;
    Json range = Json::array();
    range.push(100 * iv.first);
    range.push(100 * iv.second);
    uaciInt[key] = range;
    npcrPass[key] = d.npcr >= crit;
    uaciPass[key] = d.uaci >= 100 * iv.first && d.uaci <= 100 * iv.second;
  }
  j["npcr_pass"] = npcrPass;
  j["uaci_pass"] = uaciPass;
  j["npcr_critical"] = npcrCrit;
  j["uaci_interval"] = uaciInt;
  return j;
}

Differential diff(const EvalImage& img, const Bytes& a, const Bytes& b, ViewKind kind) {
  return npcrUaci(viewOf(img, a, kind), viewOf(img, b, kind));
}

// Zeroes a centred block of a quarter of the rows and columns (1/16 of the area) in every plane.
Bytes cropped(const EvalImage& img, const Bytes& c) {
  Bytes out = c;
  const auto& l = img.layout;
  const std::size_t rows = l.rows, cols = l.columns, spp = l.samplesPerPixel, bps = bytesPerSample(img);
  const std::size_t frames = std::max<std::uint32_t>(1, l.numberOfFrames);
  const std::size_t r0 = rows / 2 - rows / 8, r1 = r0 + std::max<std::size_t>(1, rows / 4);
  const std::size_t c0 = cols / 2 - cols / 8, c1 = c0 + std::max<std::size_t>(1, cols / 4);
  for (std::size_t f = 0; f < frames; ++f)
    for (std::size_t s = 0; s < spp; ++s)
      for (std::size_t r = r0; r < std::min(r1, rows); ++r)
        for (std::size_t col = c0; col < std::min(c1, cols); ++col) {
          const std::size_t i = l.planarConfiguration == 1 ? ((f * spp + s) * rows + r) * cols + col
                                                          : ((f * rows + r) * cols + col) * spp + s;
          for (std::size_t b = 0; b < bps; ++b) out[i * bps + b] = 0;
        }
  return out;
}

// Salt-and-pepper noise of the given density on the raw samples (all bits 0 or all bits 1).
Bytes saltAndPepper(const EvalImage& img, const Bytes& c, double density, std::mt19937_64& rng) {
  Bytes out = c;
  const std::size_t bps = bytesPerSample(img), n = sampleCount(img);
  const auto hits = static_cast<std::size_t>(std::llround(density * static_cast<double>(n)));
  std::uniform_int_distribution<std::size_t> pick(0, n - 1);
  for (std::size_t k = 0; k < std::max<std::size_t>(1, hits); ++k) {
    const std::size_t i = pick(rng);
    const std::uint8_t v = (rng() & 1) ? 0xFF : 0x00;
    for (std::size_t b = 0; b < bps; ++b) out[i * bps + b] = v;
  }
  return out;
}

// Additive Gaussian noise of variance `variance` (on the [0, 1] scale of the raw sample range), clamped.
Bytes gaussianNoise(const EvalImage& img, const Bytes& c, double variance, std::mt19937_64& rng) {
  Bytes out = c;
  const std::size_t bps = bytesPerSample(img), n = sampleCount(img);
  const double maxValue = std::ldexp(1.0, static_cast<int>(8 * bps)) - 1;
  std::normal_distribution<double> noise(0.0, std::sqrt(variance) * maxValue);
  for (std::size_t i = 0; i < n; ++i) {
    std::uint32_t raw = out[i * bps];
    if (bps == 2) raw |= static_cast<std::uint32_t>(out[i * bps + 1]) << 8;
    const double v = std::clamp(std::round(raw + noise(rng)), 0.0, maxValue);
    const auto w = static_cast<std::uint32_t>(v);
    out[i * bps] = static_cast<std::uint8_t>(w);
    if (bps == 2) out[i * bps + 1] = static_cast<std::uint8_t>(w >> 8);
  }
  return out;
}

// Decrypts through the backend and reports whether the backend refused with AuthenticationError.
Json authenticatedOutcome(codecs::PixelCipher& cipher, const EvalImage& img, Bytes data, const SecretBytes& key,
                          const Bytes& aad, const CipherRecord& rec, const Bytes& plain) {
  Json j = Json::object();
  PixelBuffer b = bufferOf(img, data);
  try {
    cipher.decrypt(b, key, aad, rec);
    j["rejected"] = false;
    j["outcome"] = data == plain ? "decrypted to the original" : "decrypted to wrong pixels without an error";
  } catch (const codecs::AuthenticationError&) {
    j["rejected"] = true;
    j["outcome"] = "AuthenticationError";
  } catch (const std::exception& e) {
    j["rejected"] = false;
    j["outcome"] = std::string("other error: ") + e.what();
  }
  return j;
}

Json nullIfInfinite(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

// The decryption figures' 8-bit view: each frame windowed to the original frame's min..max (frames.h).
ImageView windowed8(const EvalImage& img, const Bytes& bytes, const std::vector<DisplayWindow>& windows) {
  return windowedView(img.layout, bytes.data(), bytes.size(), windows);
}

Json viewQuality(const EvalImage& img, const Bytes& plain, const Bytes& other, const std::vector<DisplayWindow>& windows) {
  Json j = Json::object();
  j["psnr_windowed8"] = nullIfInfinite(psnr(windowed8(img, plain, windows), windowed8(img, other, windows)));
  for (ViewKind k : kViews) {
    const ImageView a = viewOf(img, plain, k), b = viewOf(img, other, k);
    Json v = Json::object();
    v["psnr"] = psnr(a, b);
    v["npcr"] = npcrUaci(a, b).npcr;
    j[toString(k)] = v;
  }
  std::size_t same = 0;
  const std::size_t bps = bytesPerSample(img);
  for (std::size_t i = 0; i < sampleCount(img); ++i)
    same += std::equal(plain.begin() + i * bps, plain.begin() + (i + 1) * bps, other.begin() + i * bps);
  j["exact_samples_percent"] = 100.0 * static_cast<double>(same) / static_cast<double>(sampleCount(img));
  return j;
}

Thumbnail thumbnail(const EvalImage& img, const Bytes& bytes, bool windowLikePlain, const Bytes& plain) {
  const ImageView full = viewOf(img, bytes, ViewKind::Full);
  const ImageView msb = viewOf(img, bytes, ViewKind::Msb8);
  Thumbnail t;
  const std::size_t step = std::max<std::size_t>(1, (full.cols + 255) / 256);
  t.width = full.cols / step;
  t.height = full.rows / step;
  t.pixels.resize(t.width * t.height);
  double lo = 0, hi = 255;
  if (windowLikePlain) {  // window from the plain image's 0.5 / 99.5 percentiles
    const ImageView p = viewOf(img, plain, ViewKind::Full);
    std::vector<std::int32_t> first(p.values.begin(), p.values.begin() + static_cast<long>(p.rows * p.cols));
    std::sort(first.begin(), first.end());
    lo = first[first.size() / 200];
    hi = first[first.size() - 1 - first.size() / 200];
    if (hi <= lo) hi = lo + 1;
  }
  for (std::size_t y = 0; y < t.height; ++y)
    for (std::size_t x = 0; x < t.width; ++x) {
      double sum = 0;
      for (std::size_t dy = 0; dy < step; ++dy)
        for (std::size_t dx = 0; dx < step; ++dx)
          sum += windowLikePlain ? full.at(0, y * step + dy, x * step + dx) : msb.at(0, y * step + dy, x * step + dx);
      const double v = sum / static_cast<double>(step * step);
      t.pixels[y * t.width + x] = static_cast<std::uint8_t>(std::clamp((v - lo) / (hi - lo) * 255.0, 0.0, 255.0));
    }
  return t;
}

Json nistJson(const std::string& name, const nist::Bits& bits) {
  Json j = Json::object();
  j["name"] = name;
  j["bits"] = bits.size();
  Json tests = Json::object();
  bool all = true;
  for (const auto& r : nist::runSubset(bits)) {
    Json t = Json::object();
    t["p_value"] = r.pValue;
    t["pass"] = r.pass;
    tests[r.name] = t;
    all = all && r.pass;
  }
  j["tests"] = tests;
  j["all_pass"] = all;
  return j;
}

struct Timing {
  double encryptCpu = 0, decryptCpu = 0, encryptWall = 0, decryptWall = 0, generatorMs = 0;
  std::size_t runs = 0;
};

// The gateway's path: protectPixels / recoverPixels (backend plus, for lossy backends, the exact-retrieval
// envelope). `aad` is the codecs layer's associated data, `backendAad` what the backend sees (for the core).
Timing measureThroughput(codecs::PixelCipher& cipher, DeterministicCore* core, const EvalImage& img,
                         const SecretBytes& key, const Bytes& aad, const Bytes& backendAad, double budget) {
  std::vector<double> encCpu, decCpu, encWall, decWall, gen;
  Bytes work = img.bytes;
  PixelBuffer b = bufferOf(img, work);
  const auto protect = [&] { return codecs::protectPixels(cipher, b, key, aad, codecs::Retrieval::Exact); };
  const auto recover = [&](const codecs::ProtectedPixels& p) {
    codecs::recoverPixels(cipher, b, key, aad, p.record, p.envelope);
  };
  recover(protect());  // warm-up (first use builds lazily initialised state)
  double spent = 0;
  while ((spent < budget || encCpu.size() < 3) && encCpu.size() < 2000) {
    std::copy(img.bytes.begin(), img.bytes.end(), work.begin());
    double c0 = threadCpuSeconds(), w0 = wallSeconds();
    const codecs::ProtectedPixels sealed = protect();
    double c1 = threadCpuSeconds(), w1 = wallSeconds();
    encCpu.push_back(c1 - c0);
    encWall.push_back(w1 - w0);
    c0 = threadCpuSeconds();
    w0 = wallSeconds();
    recover(sealed);
    c1 = threadCpuSeconds();
    w1 = wallSeconds();
    decCpu.push_back(c1 - c0);
    decWall.push_back(w1 - w0);
    spent += encCpu.back() + decCpu.back();
    if (core != nullptr) {
      // The generator's own cost, from the same code path with a fresh nonce (not part of the timing).
      Bytes probe(std::min<std::size_t>(img.bytes.size(), 64 * bytesPerSample(img)), 0);
      PixelBuffer pb = bufferOf(img, probe);
      pb.layout.rows = 1;
      pb.layout.columns = static_cast<std::uint16_t>(probe.size() / bytesPerSample(img));
      pb.layout.numberOfFrames = 1;
      pb.layout.samplesPerPixel = 1;
      core->encryptWithNonce(pb, key, backendAad, randomBytes(core->nonceBytes()));
      if (core->lastGeneratorMs() > 0) gen.push_back(core->lastGeneratorMs());
    }
  }
  Timing t;
  t.encryptCpu = median(encCpu);
  t.decryptCpu = median(decCpu);
  t.encryptWall = median(encWall);
  t.decryptWall = median(decWall);
  t.generatorMs = median(gen);
  t.runs = encCpu.size();
  return t;
}

struct ImageRun {
  Json json;
  Figures figures;
  bool withFigures = false;
};

ImageRun evaluateImage(codecs::PixelCipher& cipher, DeterministicCore* core, const EvalImage& img,
                       std::size_t imageIndex, const EvalOptions& opt, std::ostream& log) {
  ImageRun run;
  Json& j = run.json;
  const auto& l = img.layout;
  const std::string name = std::filesystem::path(img.path).filename().string();
  j["path"] = img.path;
  j["modality"] = img.modality;
  j["sop_class_uid"] = img.sopClassUid;
  j["transfer_syntax"] = img.originalTransferSyntax;
  j["rows"] = l.rows;
  j["columns"] = l.columns;
  j["frames"] = std::max<std::uint32_t>(1, l.numberOfFrames);
  j["samples_per_pixel"] = l.samplesPerPixel;
  j["bits_allocated"] = l.bitsAllocated;
  j["bits_stored"] = l.bitsStored;
  j["pixel_representation"] = l.pixelRepresentation;
  j["bytes"] = img.bytes.size();

  // The same positions, pairs and noise for every backend: the generator depends on seed and image only.
  std::mt19937_64 rng(opt.seed ^ (0x9E3779B97F4A7C15ULL * (imageIndex + 1)));
  // The object's associated data as the codecs layer passes it to protectPixels, and what the backend
  // itself sees (for a lossy backend with a retrieval marker appended): every backend-level operation
  // below (cores, authenticated and unverified decryption) uses the latter.
  const Bytes gatewayAad = [&] {
    const std::string s = "pacsgw-eval|" + name + "|" + std::to_string(l.rows) + "x" + std::to_string(l.columns);
    return Bytes(s.begin(), s.end());
  }();
  const Bytes aad = codecs::backendAad(cipher.info(), gatewayAad, codecs::Retrieval::Exact);
  const SecretBytes key = randomKey();
  const Bytes& plain = img.bytes;
  const std::size_t n = sampleCount(img);

  // --- Encryption as deployed (the gateway's path, fresh nonce) and decryption -------------------
  log << "  " << name << ": encrypt / decrypt\n";
  Bytes c1 = plain;
  PixelBuffer b1 = bufferOf(img, c1);
  const codecs::ProtectedPixels sealed = codecs::protectPixels(cipher, b1, key, gatewayAad, codecs::Retrieval::Exact);
  const CipherRecord& r1 = sealed.record;
  // The backend's own decryption (for a learned backend the model's reconstruction, no envelope).
  Bytes d1 = c1;
  PixelBuffer bd = bufferOf(img, d1);
  cipher.decrypt(bd, key, aad, r1);
  const bool lossless = d1 == plain;
  // Retrieval as the gateway does it: backend plus exact-retrieval envelope, compared byte for byte.
  const GatewayRetrieval retrieved = gatewayRetrieval(cipher, l, c1, key, gatewayAad, r1, sealed.envelope, plain);
  j["bit_exact"] = retrieved.bitExact;
  j["gateway_retrieval"] = retrieved.outcome;
  j["envelope_bytes"] = sealed.envelope.size();
  j["payload_bytes"] = r1.payload.size();

  // Decryption quality of the backend's own output: 8-bit view per frame windowed to the original frame's
  // min..max (the papers' and the models' view), the stored values at full range, and the file's own
  // display window when it has one.
  const std::vector<DisplayWindow> windows = frameMinMaxWindows(l, plain.data(), plain.size());
  {
    const ImageView p8 = windowed8(img, plain, windows), d8 = windowed8(img, d1, windows);
    j["decrypt_psnr"] = nullIfInfinite(psnr(p8, d8));  // null = infinite (identical)
    j["decrypt_ssim"] = ssim(p8, d8);
    const ImageView pf = storedView(l, plain.data(), plain.size()), df = storedView(l, d1.data(), d1.size());
    j["decrypt_psnr_full_range"] = nullIfInfinite(psnr(pf, df));
    j["decrypt_ssim_full_range"] = ssim(pf, df);
    j["dicom_window"] = img.dicomWindow.has_value();
    if (img.dicomWindow) {
      const std::vector<DisplayWindow> w{{img.dicomWindow->first, img.dicomWindow->second}};
      const ImageView pw = windowed8(img, plain, w), dw = windowed8(img, d1, w);
      j["decrypt_psnr_dicom_window"] = nullIfInfinite(psnr(pw, dw));
      j["decrypt_ssim_dicom_window"] = ssim(pw, dw);
    } else {
      j["decrypt_psnr_dicom_window"] = nullptr;
      j["decrypt_ssim_dicom_window"] = nullptr;
    }
  }

  // --- Statistics of plain and cipher images -----------------------------------------------------
  std::array<std::vector<PixelPair>, 3> pairs;
  const ImageView shape = viewOf(img, plain, ViewKind::Msb8);
  for (std::size_t d = 0; d < 3; ++d) pairs[d] = samplePairs(shape, kDirections[d], opt.pairs, rng);
  const std::size_t changeAt = std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
  const Bytes p2 = withOnePixelChanged(plain, img, changeAt);

  Json views = Json::object();
  for (ViewKind k : kViews) {
    const ImageView pv = viewOf(img, plain, k), cv = viewOf(img, c1, k), dv = viewOf(img, d1, k);
    Json v = Json::object();
    v["F"] = static_cast<double>(pv.peak);
    v["samples"] = pv.size();
    v["entropy_plain"] = entropy(pv);
    v["entropy_cipher"] = entropy(cv);
    v["entropy_ideal"] = static_cast<double>(k == ViewKind::Msb8 ? 8 : l.bitsAllocated);
    Json cp = Json::object(), cc = Json::object(), ca = Json::object();
    for (std::size_t d = 0; d < 3; ++d) {
      cp[kDirectionKeys[d]] = correlation(pairValues(pv, pairs[d], kDirections[d]));
      cc[kDirectionKeys[d]] = correlation(pairValues(cv, pairs[d], kDirections[d]));
      ca[kDirectionKeys[d]] = correlationAllPairs(cv, kDirections[d]);
    }
    v["corr_plain"] = cp;
    v["corr_cipher"] = cc;
    v["corr_cipher_all_pairs"] = ca;
    v["mse_plain_cipher"] = mse(pv, cv);
    v["psnr_plain_cipher"] = psnr(pv, cv);
    v["decrypt_psnr"] = psnr(pv, dv);  // this view's (top byte / all allocated bits); +inf (null) when identical
    v["decrypt_ssim"] = ssim(pv, dv);
    views[toString(k)] = v;
  }

  // --- Differential: one-pixel change -------------------------------------------------------------
  log << "  " << name << ": differential and key sensitivity\n";
  Json position = Json::object();
  position["sample_index"] = changeAt;
  position["change"] = "least significant bit flipped";
  j["one_pixel_change"] = position;
  Bytes c2 = p2;
  {
    PixelBuffer b2 = bufferOf(img, c2);
    cipher.encrypt(b2, key, aad);  // fresh nonce, as the gateway would
  }
  Bytes cf1, cf2, ck;
  CipherRecord rf1;
  const SecretBytes flippedKey = [&] {
    SecretBytes k = key;
    k.data()[0] ^= 0x01;
    return k;
  }();
  if (core) {
    const Bytes nonce = randomBytes(core->nonceBytes());
    cf1 = plain;
    PixelBuffer bf1 = bufferOf(img, cf1);
    rf1 = core->encryptWithNonce(bf1, key, aad, nonce);
    cf2 = p2;
    PixelBuffer bf2 = bufferOf(img, cf2);
    core->encryptWithNonce(bf2, key, aad, nonce);
    ck = plain;
    PixelBuffer bk = bufferOf(img, ck);
    core->encryptWithNonce(bk, flippedKey, aad, nonce);
    // Trust the core only if the backend itself accepts and decrypts what it produced.
    Bytes check = cf1;
    PixelBuffer bc = bufferOf(img, check);
    bool verified = false;
    try {
      CipherRecord rc = rf1;
      rc.backendVersion = cipher.info().version;
      cipher.decrypt(bc, key, aad, rc);
      // A lossy backend decrypts to its reconstruction: its acceptance of the core's record verifies the core.
      verified = !cipher.info().lossless || check == plain;
    } catch (const std::exception&) {
      verified = false;
    }
    j["deterministic_core"] = core->description();
    j["deterministic_core_verified"] = verified;
  } else {
    ck = plain;
    PixelBuffer bk = bufferOf(img, ck);
    cipher.encrypt(bk, flippedKey, aad);
    j["deterministic_core"] = nullptr;
  }

  for (ViewKind k : kViews) {
    Json& v = views[toString(k)];
    const double mn = static_cast<double>(n), f = k == ViewKind::Msb8 ? 255.0 : std::ldexp(1.0, l.bitsAllocated) - 1;
    Json fresh = differentialJson(diff(img, c1, c2, k), mn, f);
    fresh["mode"] = "independent encryptions, fresh nonce each (as deployed)";
    if (core) {
      Json same = differentialJson(diff(img, cf1, cf2, k), mn, f);
      same["mode"] = "same key and nonce";
      v["differential"] = same;
    } else {
      v["differential"] = fresh;
    }
    v["differential_fresh_nonce"] = fresh;
    Json ks = differentialJson(diff(img, core ? cf1 : c1, ck, k), mn, f);
    ks["mode"] = core ? "one key bit flipped, same nonce" : "one key bit flipped, fresh nonce";
    v["key_sensitivity"] = ks;
  }

  // Wu's tests are statistical: at alpha = 0.05 an ideal cipher fails 5 % of single runs. Repeat the
  // same-key-and-nonce test with fresh nonces and positions and report the distribution.
  if (core && opt.differentialRuns > 1) {
    std::map<std::string, std::vector<Differential>> runs;
    for (std::size_t r = 0; r < opt.differentialRuns; ++r) {
      const Bytes nonce = randomBytes(core->nonceBytes());
      const std::size_t at = std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
      Bytes a = plain, b2 = withOnePixelChanged(plain, img, at);
      PixelBuffer pa = bufferOf(img, a), pb = bufferOf(img, b2);
      core->encryptWithNonce(pa, key, aad, nonce);
      core->encryptWithNonce(pb, key, aad, nonce);
      for (ViewKind k : kViews) runs[toString(k)].push_back(diff(img, a, b2, k));
    }
    for (ViewKind k : kViews) {
      const auto& list = runs[toString(k)];
      const double mn = static_cast<double>(n), f = k == ViewKind::Msb8 ? 255.0 : std::ldexp(1.0, l.bitsAllocated) - 1;
      const double crit = 100 * wuNpcrCritical(mn, f, 0.05);
      const auto iv = wuUaciInterval(mn, f, 0.05);
      double sn = 0, sn2 = 0, su = 0, su2 = 0;
      std::size_t npass = 0, upass = 0;
      for (const auto& d : list) {
        sn += d.npcr;
        sn2 += d.npcr * d.npcr;
        su += d.uaci;
        su2 += d.uaci * d.uaci;
        npass += d.npcr >= crit;
        upass += d.uaci >= 100 * iv.first && d.uaci <= 100 * iv.second;
      }
      const double cnt = static_cast<double>(list.size());
      Json rep = Json::object();
      rep["runs"] = list.size();
      rep["npcr_mean"] = sn / cnt;
      rep["npcr_sd"] = std::sqrt(std::max(0.0, sn2 / cnt - (sn / cnt) * (sn / cnt)));
      rep["npcr_theory_mean"] = 100 * npcrMean(f);
      rep["npcr_theory_sd"] = 100 * npcrSigma(mn, f);
      rep["uaci_mean"] = su / cnt;
      rep["uaci_sd"] = std::sqrt(std::max(0.0, su2 / cnt - (su / cnt) * (su / cnt)));
      rep["uaci_theory_mean"] = 100 * uaciMean(f);
      rep["uaci_theory_sd"] = 100 * uaciSigma(mn, f);
      rep["npcr_pass_rate"] = static_cast<double>(npass) / cnt;
      rep["uaci_pass_rate"] = static_cast<double>(upass) / cnt;
      rep["mode"] = "same key and nonce within a run; fresh nonce and change position per run; alpha 0.05";
      views[toString(k)]["differential_repeated"] = rep;
    }
  }

  // The paper's layers alone (no plaintext-dependent keys): diffusion from a change at three places.
  if (core) {
    Json layers = Json::array();
    const Bytes nonce = randomBytes(core->nonceBytes());
    Bytes base = plain;
    PixelBuffer bb = bufferOf(img, base);
    if (core->encryptLayersOnly(bb, key, aad, nonce)) {
      for (auto [label, idx] : {std::pair<const char*, std::size_t>{"first", 0}, {"centre", n / 2}, {"last", n - 1}}) {
        Bytes changed = withOnePixelChanged(plain, img, idx);
        PixelBuffer bc = bufferOf(img, changed);
        core->encryptLayersOnly(bc, key, aad, nonce);
        Json e = Json::object();
        e["position"] = label;
        e["sample_index"] = idx;
        for (ViewKind k : kViews) {
          const Differential d = diff(img, base, changed, k);
          Json dv = Json::object();
          dv["npcr"] = d.npcr;
          dv["uaci"] = d.uaci;
          e[toString(k)] = dv;
        }
        layers.push(e);
      }
      j["differential_layers_only"] = layers;
    }
  }

  // --- Wrong key, tampering, noise, cropping ------------------------------------------------------
  log << "  " << name << ": wrong key, tampering, noise, cropping\n";
  Json auth = Json::object();
  auth["wrong_key"] = authenticatedOutcome(cipher, img, c1, flippedKey, aad, r1, plain);
  const Bytes crop = cropped(img, c1);
  const Bytes sp = saltAndPepper(img, c1, 0.0002, rng);
  const Bytes gauss = gaussianNoise(img, c1, 0.0005, rng);
  auth["crop"] = authenticatedOutcome(cipher, img, crop, key, aad, r1, plain);
  auth["salt_pepper"] = authenticatedOutcome(cipher, img, sp, key, aad, r1, plain);
  auth["gaussian"] = authenticatedOutcome(cipher, img, gauss, key, aad, r1, plain);
  j["authenticated_decryption"] = auth;

  Bytes wrong = c1, cropDec = crop, spDec = sp, gaussDec = gauss;
  if (core) {
    Json unverified = Json::object();
    auto coreDecrypt = [&](Bytes& data, const SecretBytes& k) {
      PixelBuffer bx = bufferOf(img, data);
      core->decryptUnverified(bx, k, aad, r1);
    };
    coreDecrypt(wrong, flippedKey);
    coreDecrypt(cropDec, key);
    coreDecrypt(spDec, key);
    coreDecrypt(gaussDec, key);
    unverified["wrong_key"] = viewQuality(img, plain, wrong, windows);
    unverified["crop"] = viewQuality(img, plain, cropDec, windows);
    unverified["salt_pepper"] = viewQuality(img, plain, spDec, windows);
    unverified["gaussian"] = viewQuality(img, plain, gaussDec, windows);
    // Flat robustness figures: PSNR (windowed 8-bit view) of the unverified decryption.
    for (const char* what : {"wrong_key", "crop", "salt_pepper", "gaussian"})
      j[std::string(what) + "_psnr"] = *unverified[what].find("psnr_windowed8");
    unverified["note"] = "decryption without verification (the papers' figures); crop = centre block of 1/16 of "
                         "the area zeroed, salt_pepper density 0.0002, gaussian variance 0.0005 of full scale";
    j["unverified_decryption"] = unverified;
  }
  j["views"] = views;

  // --- NIST SP 800-22 subset ----------------------------------------------------------------------
  if (opt.nist && imageIndex < opt.nistImages) {
    log << "  " << name << ": NIST SP 800-22 subset\n";
    Json nistJ = Json::object();
    Json streams = Json::array();
    if (core) {
      for (const auto& s : core->keyStreams(key, rf1, opt.nistKeyBits))
        streams.push(nistJson(s.name, nist::bitsOfBytes(s.bytes.data(), s.bytes.size(), opt.nistKeyBits)));
    }
    nistJ["key_streams"] = streams;
    nistJ["ciphertext"] = nistJson("ciphertext", nist::bitsOfBytes(c1.data(), c1.size(), opt.nistCipherBits));
    std::size_t passed = 0, total = 0;
    auto count = [&](const Json& seq) {
      for (const auto& t : seq.find("tests")->members()) {
        ++total;
        passed += t.second.find("pass")->boolean();
      }
    };
    for (const auto& seq : nistJ.find("key_streams")->items()) count(seq);
    count(*nistJ.find("ciphertext"));
    nistJ["tests_passed"] = passed;
    nistJ["tests_total"] = total;
    nistJ["note"] = "a random sequence fails each test with probability 0.01";
    j["nist"] = nistJ;
    j["nist_tests_passed"] = passed;
    j["nist_tests_total"] = total;
  }

  // --- Throughput ---------------------------------------------------------------------------------
  log << "  " << name << ": throughput\n";
  const Timing t = measureThroughput(cipher, core, img, key, gatewayAad, aad, opt.timingSeconds);
  const double mb = static_cast<double>(img.bytes.size()) / 1e6;
  Json tj = Json::object();
  tj["runs"] = t.runs;
  tj["encrypt_ms"] = 1e3 * t.encryptCpu;
  tj["decrypt_ms"] = 1e3 * t.decryptCpu;
  tj["encrypt_mb_s"] = mb / t.encryptCpu;
  tj["decrypt_mb_s"] = mb / t.decryptCpu;
  tj["encrypt_mb_s_wall"] = mb / t.encryptWall;
  tj["decrypt_mb_s_wall"] = mb / t.decryptWall;
  if (t.generatorMs > 0) {
    tj["generator_ms"] = t.generatorMs;
    tj["encrypt_mb_s_without_generator"] = mb / (t.encryptCpu - 1e-3 * t.generatorMs);
  }
  tj["encrypt_images_per_s"] = 1.0 / t.encryptCpu;
  tj["decrypt_images_per_s"] = 1.0 / t.decryptCpu;
  tj["encrypt_images_per_s_wall"] = 1.0 / t.encryptWall;
  tj["decrypt_images_per_s_wall"] = 1.0 / t.decryptWall;
  tj["path"] = "protectPixels / recoverPixels: the backend plus, for a lossy backend, the exact-retrieval envelope";
  tj["clock"] = "median thread CPU time per call (MB = 10^6 bytes)";
  j["throughput"] = tj;

  // --- Flat keys (the 8-bit view unless suffixed _full) -------------------------------------------
  auto flat = [&](const char* suffix, ViewKind k) {
    const Json& v = views[toString(k)];
    const std::string s = suffix;
    j["entropy" + s] = v.find("entropy_cipher")->number();
    j["corr_h" + s] = v.find("corr_cipher")->find("h")->number();
    j["corr_v" + s] = v.find("corr_cipher")->find("v")->number();
    j["corr_d" + s] = v.find("corr_cipher")->find("d")->number();
    j["corr_h_all" + s] = v.find("corr_cipher_all_pairs")->find("h")->number();
    j["corr_v_all" + s] = v.find("corr_cipher_all_pairs")->find("v")->number();
    j["corr_d_all" + s] = v.find("corr_cipher_all_pairs")->find("d")->number();
    const Json& dj = *v.find("differential");
    j["npcr" + s] = dj.find("npcr")->number();
    j["uaci" + s] = dj.find("uaci")->number();
    j["npcr_pass" + s] = dj.find("npcr_pass")->find("0.05")->boolean();
    j["uaci_pass" + s] = dj.find("uaci_pass")->find("0.05")->boolean();
    if (const Json* rep = v.find("differential_repeated")) {
      j["npcr_mean" + s] = rep->find("npcr_mean")->number();
      j["npcr_sd" + s] = rep->find("npcr_sd")->number();
      j["uaci_mean" + s] = rep->find("uaci_mean")->number();
      j["uaci_sd" + s] = rep->find("uaci_sd")->number();
      j["npcr_runs_pass_rate" + s] = rep->find("npcr_pass_rate")->number();
      j["uaci_runs_pass_rate" + s] = rep->find("uaci_pass_rate")->number();
    }
    const Json& fj = *v.find("differential_fresh_nonce");
    j["npcr_fresh_nonce" + s] = fj.find("npcr")->number();
    j["uaci_fresh_nonce" + s] = fj.find("uaci")->number();
    const Json& kj = *v.find("key_sensitivity");
    j["key_sensitivity_npcr" + s] = kj.find("npcr")->number();
    j["key_sensitivity_uaci" + s] = kj.find("uaci")->number();
    j["psnr_plain_cipher" + s] = v.find("psnr_plain_cipher")->number();
  };
  flat("", ViewKind::Msb8);
  flat("_full", ViewKind::Full);
  j["lossless"] = lossless;
  j["wrong_key_rejected"] = auth.find("wrong_key")->find("rejected")->boolean();
  j["tamper_detected"] = auth.find("crop")->find("rejected")->boolean() &&
                         auth.find("salt_pepper")->find("rejected")->boolean() &&
                         auth.find("gaussian")->find("rejected")->boolean();
  j["encrypt_mb_s"] = mb / t.encryptCpu;
  j["decrypt_mb_s"] = mb / t.decryptCpu;
  j["encrypt_images_per_s"] = 1.0 / t.encryptCpu;
  j["decrypt_images_per_s"] = 1.0 / t.decryptCpu;

  // --- Figures ------------------------------------------------------------------------------------
  if (imageIndex < opt.figureImages) {
    run.withFigures = true;
    Figures& f = run.figures;
    f.image = name;
    const ImageView p8 = viewOf(img, plain, ViewKind::Msb8), c8 = viewOf(img, c1, ViewKind::Msb8);
    f.histPlain = histogram(p8);
    f.histCipher = histogram(c8);
    for (std::size_t d = 0; d < 3; ++d) {
      f.pairsPlain[d] = pairValues(p8, pairs[d], kDirections[d]);
      f.pairsCipher[d] = pairValues(c8, pairs[d], kDirections[d]);
    }
    f.plain = thumbnail(img, plain, true, plain);
    f.cipher = thumbnail(img, c1, false, plain);
    f.decrypted = thumbnail(img, d1, true, plain);
    if (core) {
      f.wrongKey = thumbnail(img, wrong, true, plain);
      f.cropped = thumbnail(img, cropDec, true, plain);
      f.noisy = thumbnail(img, spDec, true, plain);
    }
  }
  return run;
}

// Mean of numeric members and conjunction of boolean members over the images.
void summarise(Json& backend, const std::vector<Json>& images) {
  static const char* kNumeric[] = {"entropy", "corr_h", "corr_v", "corr_d", "corr_h_all", "corr_v_all",
                                   "corr_d_all", "npcr", "uaci", "npcr_mean", "uaci_mean", "npcr_runs_pass_rate",
                                   "uaci_runs_pass_rate", "npcr_fresh_nonce",
                                   "uaci_fresh_nonce", "key_sensitivity_npcr", "key_sensitivity_uaci",
                                   "psnr_plain_cipher"};
  static const char* kBoolean[] = {"npcr_pass", "uaci_pass"};
  for (const char* suffix : {"", "_full"}) {
    for (const char* key : kNumeric) {
      const std::string k = std::string(key) + suffix;
      double sum = 0;
      std::size_t count = 0;
      bool anyNull = false;
      for (const auto& img : images) {
        const Json* v = img.find(k);
        if (v && v->isNumber()) {
          sum += v->number();
          ++count;
        } else {
          anyNull = true;
        }
      }
      // decrypt_psnr is null (infinite) when every image decrypted bit-exactly.
      backend[k] = count && !anyNull ? Json(sum / static_cast<double>(count)) : Json(nullptr);
    }
    for (const char* key : kBoolean) {
      const std::string k = std::string(key) + suffix;
      std::size_t passed = 0;
      for (const auto& img : images) passed += img.find(k) && img.find(k)->boolean();
      // True only if every image passes; at alpha = 0.05 an ideal cipher fails 5 % of single tests, so
      // the rate is the more telling figure over many images.
      backend[k] = !images.empty() && passed == images.size();
      const std::string base = std::string(key).substr(0, std::string(key).size() - 5);  // drop "_pass"
      backend[base + "_pass_rate" + suffix] = images.empty() ? 0.0 : static_cast<double>(passed) / images.size();
    }
  }
  // Decryption and robustness figures (no view suffix). A mean is null when an image's value is null
  // (infinite PSNR); the DICOM-window figures average the images that have a window.
  for (const char* key : {"decrypt_psnr", "decrypt_ssim", "decrypt_psnr_full_range", "decrypt_ssim_full_range",
                          "decrypt_psnr_dicom_window", "decrypt_ssim_dicom_window", "wrong_key_psnr", "crop_psnr",
                          "salt_pepper_psnr", "gaussian_psnr"}) {
    const bool windowOnly = std::string(key).find("dicom_window") != std::string::npos;
    double sum = 0;
    std::size_t count = 0;
    bool anyNull = false, anyMissing = false;
    for (const auto& img : images) {
      if (windowOnly && !img.find("dicom_window")->boolean()) continue;
      const Json* v = img.find(key);
      if (v == nullptr) anyMissing = true;
      else if (v->isNumber()) sum += v->number(), ++count;
      else anyNull = true;
    }
    if (anyMissing && count == 0 && !anyNull) continue;  // not measured for this backend (no core)
    backend[key] = count && !anyNull ? Json(sum / static_cast<double>(count)) : Json(nullptr);
  }
  double nistPassed = 0, nistTotal = 0;
  for (const auto& img : images)
    if (const Json* t = img.find("nist_tests_total")) {
      nistTotal += t->number();
      nistPassed += img.find("nist_tests_passed")->number();
    }
  if (nistTotal > 0) {
    backend["nist_tests_passed"] = nistPassed;
    backend["nist_tests_total"] = nistTotal;
  }
  bool lossless = !images.empty(), bitExact = !images.empty(), rejected = !images.empty(), tamper = !images.empty();
  double envelopeBytes = 0, payloadBytes = 0, encCpuS = 0, decCpuS = 0, encWallS = 0, decWallS = 0;
  double bytes = 0, encMs = 0, decMs = 0, gen = 0, genCount = 0, encMsWithoutGen = 0;
  for (const auto& img : images) {
    lossless = lossless && img.find("lossless")->boolean();
    bitExact = bitExact && img.find("bit_exact")->boolean();
    envelopeBytes += img.find("envelope_bytes")->number();
    payloadBytes += img.find("payload_bytes")->number();
    rejected = rejected && img.find("wrong_key_rejected")->boolean();
    tamper = tamper && img.find("tamper_detected")->boolean();
    const Json& t = *img.find("throughput");
    bytes += img.find("bytes")->number();
    encMs += t.find("encrypt_ms")->number();
    decMs += t.find("decrypt_ms")->number();
    encCpuS += 1.0 / t.find("encrypt_images_per_s")->number();
    decCpuS += 1.0 / t.find("decrypt_images_per_s")->number();
    encWallS += 1.0 / t.find("encrypt_images_per_s_wall")->number();
    decWallS += 1.0 / t.find("decrypt_images_per_s_wall")->number();
    if (const Json* g = t.find("generator_ms")) {
      gen += g->number();
      encMsWithoutGen += t.find("encrypt_ms")->number() - g->number();
      ++genCount;
    }
  }
  const double count = static_cast<double>(std::max<std::size_t>(1, images.size()));
  backend["lossless"] = lossless;
  backend["bit_exact"] = bitExact;  // through the gateway's path (envelope), every image
  backend["envelope_bytes_mean"] = envelopeBytes / count;
  backend["payload_bytes_mean"] = payloadBytes / count;
  backend["wrong_key_rejected"] = rejected;
  backend["tamper_detected"] = tamper;
  // Throughput pooled over the images (total bytes / total time), so that tiny images do not dominate.
  backend["encrypt_mb_s"] = encMs > 0 ? bytes / 1e3 / encMs : 0.0;
  backend["decrypt_mb_s"] = decMs > 0 ? bytes / 1e3 / decMs : 0.0;
  backend["encrypt_ms_per_image"] = encMs / count;
  backend["encrypt_images_per_s"] = encCpuS > 0 ? static_cast<double>(images.size()) / encCpuS : 0.0;
  backend["decrypt_images_per_s"] = decCpuS > 0 ? static_cast<double>(images.size()) / decCpuS : 0.0;
  // Wall clock as well: a backend with worker threads (ae-he's Paillier) spends CPU outside the caller's thread.
  backend["encrypt_images_per_s_wall"] = encWallS > 0 ? static_cast<double>(images.size()) / encWallS : 0.0;
  backend["decrypt_images_per_s_wall"] = decWallS > 0 ? static_cast<double>(images.size()) / decWallS : 0.0;
  if (genCount > 0) {
    backend["generator_ms"] = gen / genCount;
    backend["encrypt_mb_s_without_generator"] = encMsWithoutGen > 0 ? bytes / 1e3 / encMsWithoutGen : 0.0;
  }
}

std::string utcNow() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

GatewayRetrieval gatewayRetrieval(codecs::PixelCipher& cipher, const codecs::PixelLayout& layout,
                                  const Bytes& cipherImage, const SecretBytes& key, const Bytes& aad,
                                  const CipherRecord& record, const Bytes& envelope, const Bytes& original) {
  GatewayRetrieval out;
  Bytes work = cipherImage;
  PixelBuffer b;
  b.layout = layout;
  b.segments.push_back({work.data(), work.size()});
  try {
    const codecs::Retrieval r = codecs::recoverPixels(cipher, b, key, aad, record, envelope);
    out.bitExact = r == codecs::Retrieval::Exact && work == original;
    out.outcome = r == codecs::Retrieval::Lossy ? "lossy reconstruction (no envelope)"
                  : work == original             ? "exact original"
                                                 : "exact retrieval returned other pixels";
  } catch (const codecs::AuthenticationError& e) {
    out.outcome = std::string("AuthenticationError: ") + e.what();
  } catch (const std::exception& e) {
    out.outcome = std::string("error: ") + e.what();
  }
  return out;
}

std::uint64_t defaultModelBytes(const codecs::BackendInfo& info) {
  if (info.lossless) return 0;  // the learned backends are the lossy ones
  try {
    return std::filesystem::file_size(codecs::neural::resolveModelPath(info.id, ""));
  } catch (const std::exception&) {
    return 0;  // a lossy backend without a model file
  }
}

Json publishedFigures() {
  Json p = Json::object();
  p["citation"] = "M. Kumar, A. S. Chivukula, G. Barua, Deep learning-based encryption scheme for medical images "
                  "using DCGAN and virtual planet domain, Scientific Reports 15:1211 (2025), "
                  "doi:10.1038/s41598-024-84186-6";
  p["images"] = "8-bit RGB, per channel; 512 x 512 test images (critical values of Tables 12-13)";
  Json npcr = Json::array(), uaci = Json::array();
  for (double v : {99.6253, 99.6354, 99.6507}) npcr.push(v);  // Table 11, average of 10 images (R, G, B)
  for (double v : {33.4511, 33.4622, 33.4563}) uaci.push(v);
  p["npcr_avg_rgb"] = npcr;
  p["uaci_avg_rgb"] = uaci;
  p["npcr_range"] = "99.0463 - 99.9468 (Table 11)";
  p["uaci_range"] = "33.3643 - 33.5662 (Table 11)";
  p["entropy_range"] = Json::array();
  p["entropy_range"].push(7.9992);
  p["entropy_range"].push(7.9994);
  p["corr_max_abs"] = 0.1031;  // Table 9 (Baboon, diagonal, B)
  p["corr_typical_abs"] = "0.0005 - 0.1031 (Table 9)";
  p["psnr_plain_cipher_db"] = "10.5611 - 14.1151 (Table 10)";
  p["time_s_per_image_encrypt"] = "0.29 - 1.77 (Table 5, Python 3.11, Ryzen 9 7950X; sizes not given)";
  p["time_s_per_image_decrypt"] = "0.27 - 1.80";
  Json wu = Json::object();
  wu["npcr_critical_512"] = "99.5893 / 99.5810 / 99.5717 (alpha 0.05 / 0.01 / 0.001)";
  wu["uaci_interval_512"] = "33.3730-33.5541 / 33.3445-33.5826 / 33.3115-33.6156";
  p["wu_tables_12_13"] = wu;
  p["nist"] = "all 14 reported tests pass on keys (Table 4) and ciphertext (Table 14), 10 sequences";
  return p;
}

EvalReport runEvaluation(const std::vector<EvalImage>& images, const EvalOptions& opt, std::ostream& log,
                         const EvalProgress& progress) {
  if (images.empty()) throw std::invalid_argument("eval: no images");
  limitTensorThreads(opt.threads);
  EvalReport report;
  Json& root = report.json;
  root["tool"] = "pacsgw eval";
  root["generated"] = utcNow();
  root["device"] = opt.device;
  root["tensor_threads"] = opt.threads;
  root["seed"] = static_cast<double>(opt.seed);
  root["pairs_per_direction"] = opt.pairs;
  Json inputs = Json::array();
  for (const auto& img : images) inputs.push(img.path);
  root["inputs"] = inputs;
  Json defs = Json::object();
  defs["views"] = "msb8: most significant byte of each allocated sample (the papers' 8-bit view, F = 255); "
                  "full: all allocated bits, signed if Pixel Representation is 1 (F = 2^bits - 1); keys without "
                  "a suffix are msb8, keys ending in _full are the full range";
  defs["npcr_uaci"] = "one sample's least significant bit flipped; npcr/uaci use the same key and nonce for both "
                      "images when the backend has a deterministic core, *_fresh_nonce encrypts each image "
                      "independently as the gateway does; pass = Wu et al. 2011 test at alpha 0.05 with MN = "
                      "number of samples (an ideal cipher fails 5 % of single runs); npcr_mean/uaci_mean and "
                      "*_runs_pass_rate repeat the test with fresh nonces and positions";
  defs["correlation"] = "corr_h/v/d: Pearson r of random adjacent pairs (10,000 by default) per direction within "
                        "a plane, as the papers; its standard error for an ideal cipher is 1/sqrt(pairs) = 0.01. "
                        "corr_*_all: every adjacent pair of every plane";
  defs["throughput"] = "MB = 10^6 bytes of pixel data; median thread CPU time of the whole encrypt()/decrypt() "
                       "call (key derivation, generator, tag included); a backend's encrypt_mb_s / decrypt_mb_s "
                       "pool its images (total bytes / total time)";
  root["definitions"] = defs;
  root["paper"] = publishedFigures();

  Json backends = Json::array();
  const std::size_t steps = opt.backends.size() * images.size();
  std::size_t stepsDone = 0;
  double bytesDone = 0;
  const auto stepDone = [&](const EvalImage& img) {
    bytesDone += static_cast<double>(img.bytes.size());
    if (progress) progress(++stepsDone, steps, bytesDone);
  };
  for (const auto& id : opt.backends) {
    log << "backend " << id << "\n";
    codecs::CipherOptions co;
    co.device = opt.device;
    const auto cipher = codecs::makeCipher(id, co);
    auto core = makeDeterministicCore(id, opt.device);
    BackendResult br;
    br.backend = id;
    Json& b = br.json;
    b["backend"] = id;
    b["version"] = cipher->info().version;
    b["summary"] = cipher->info().summary;
    b["authenticated"] = cipher->info().authenticated;
    b["declared_lossless"] = cipher->info().lossless;
    b["device"] = cipher->device() == codecs::Device::Cuda ? "cuda" : "cpu";
    b["model_size_bytes"] = static_cast<double>(defaultModelBytes(cipher->info()));
    std::vector<Json> imageResults;
    Json skipped = Json::array();
    for (std::size_t i = 0; i < images.size(); ++i) {
      try {
        cipher->checkSupported(images[i].layout);
      } catch (const codecs::UnsupportedLayoutError& e) {
        Json s = Json::object();
        s["path"] = images[i].path;
        s["reason"] = e.what();
        skipped.push(s);
        stepDone(images[i]);
        continue;
      }
      ImageRun run = evaluateImage(*cipher, core.get(), images[i], i, opt, log);
      stepDone(images[i]);
      if (run.withFigures) br.figures.push_back(std::move(run.figures));
      imageResults.push_back(std::move(run.json));
    }
    summarise(b, imageResults);
    Json arr = Json::array();
    for (auto& r : imageResults) arr.push(std::move(r));
    b["images"] = arr;
    b["skipped"] = skipped;
    backends.push(b);
    report.backends.push_back(std::move(br));
  }
  root["backends"] = backends;
  return report;
}

}  // namespace pacsgw::eval
