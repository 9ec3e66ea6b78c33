#include "codecs/chaos/chaos_map.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

// The vector helpers of runOrbits are internal and inlined, so GCC's note that AVX vector arguments
// change the calling convention does not concern us.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace pacsgw::codecs::chaos {
namespace {

// Cody-Waite split of ln 2: kLn2Hi has trailing zero bits, so n * kLn2Hi is exact for |n| < 2^11.
constexpr double kLn2Hi = 0x1.62e42feep-1;
constexpr double kLn2Lo = 0x1.a39ef35793c76p-33;
constexpr double kInvLn2 = 0x1.71547652b82fep0;
constexpr double kGoldenConjugate = 0x1.3c6ef372fe95p-1;  // (sqrt(5) - 1) / 2
constexpr std::uint64_t kTenPow15 = 1000000000000000ULL;

// frac for non-negative values below 2^31, without libm.
inline double fracSmall(double v) { return v - static_cast<double>(static_cast<std::int32_t>(v)); }

}  // namespace

double portableExp(double x) {
  if (!(x >= -64.0 && x <= 64.0)) throw std::domain_error("portableExp: argument out of range");
  // x = n ln2 + r, |r| <= ln2 / 2 (rounding to nearest by adding +-0.5 and truncating).
  const double t = x * kInvLn2;
  const int n = static_cast<int>(t < 0.0 ? t - 0.5 : t + 0.5);
  const double r = (x - n * kLn2Hi) - n * kLn2Lo;
  // Taylor series to degree 14, Horner form: the truncation error is below 2^-60 for |r| <= 0.35.
  double p = 1.0 / 87178291200.0;  // 1/14!
  constexpr double kInvFactorials[] = {1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0,
                                       1.0 / 3628800.0,    1.0 / 362880.0,    1.0 / 40320.0,
                                       1.0 / 5040.0,       1.0 / 720.0,       1.0 / 120.0,
                                       1.0 / 24.0,         1.0 / 6.0,         0.5,
                                       1.0,                1.0};
  for (double c : kInvFactorials) p = p * r + c;
  // Scale by 2^n with exact multiplications by powers of two.
  double scale = 1.0;
  const double step = n >= 0 ? 2.0 : 0.5;
  for (int i = 0; i < (n >= 0 ? n : -n); ++i) scale *= step;
  return p * scale;
}

double perturb(double x, std::uint64_t k) {
  const double kd = static_cast<double>(k % (std::uint64_t{1} << 30));
  const double offset = fracSmall(kd * kGoldenConjugate);
  const double v = x + offset;
  return v >= 1.0 ? v - 1.0 : v;
}

LaneSeed laneSeedFromDigestPart(std::uint64_t part) {
  LaneSeed seed;
  // Both operands are exact doubles (below 2^53), so the quotient is the correctly rounded d / 10^15.
  seed.x0 = static_cast<double>(part % kTenPow15) / static_cast<double>(kTenPow15);
  const std::uint64_t high = part / kTenPow15;  // 0 .. 18446
  seed.mu = kMuMin + static_cast<double>(high % 1024) / 256.0;
  return seed;
}

KeyStream::KeyStream(const LaneSeed& seed) {
  if (!(seed.x0 >= 0.0 && seed.x0 < 1.0) || !(seed.mu >= kMuMin && seed.mu < kMuMin + 4.0))
    throw std::invalid_argument("KeyStream: seed out of range");
  for (std::size_t j = 0; j < kSubOrbits; ++j) {
    gain_[j] = portableExp(seed.mu + static_cast<double>(j) / 1024.0);
    x_[j] = seed.x0;
  }
  for (std::size_t i = 0; i < kTransient; ++i)
    for (std::size_t j = 0; j < kSubOrbits; ++j) x_[j] = mapStep(x_[j], gain_[j]);
}

// The hot loop of the key schedule, written with GCC/Clang vector extensions so the eight orbits run in
// SIMD registers: exactly the operations of mapStep() and outputBits(), in the same order, lane by lane
// (a test compares it with the scalar functions). The AVX2 clone only widens the registers; IEEE
// arithmetic and truncating conversions give identical bits in every clone.
namespace {
typedef double V4d __attribute__((vector_size(32)));
typedef std::int32_t V4i __attribute__((vector_size(16)));
typedef std::uint32_t V4u __attribute__((vector_size(16)));

inline V4d truncToDouble(V4d v, V4i& asInt) {
  asInt = __builtin_convertvector(v, V4i);
  return __builtin_convertvector(asInt, V4d);
}

inline V4d stepVector(V4d x, V4d gain) {
  const V4d u = (x + x) - 1.0;
  const V4d a = u * u;
  const V4d w = (a + a) - 1.0;
  const V4d y = gain * (w * w);
  V4i unused;
  return y - truncToDouble(y, unused);
}

inline V4u bitsVector(V4d x) {
  V4i unused;
  V4d v = x * 524288.0;
  v = v - truncToDouble(v, unused);
  return __builtin_convertvector(__builtin_convertvector(v * 65536.0, V4i), V4u);
}
}  // namespace

static_assert(kSubOrbits % 4 == 0, "runOrbits works on vectors of four orbits");
constexpr std::size_t kVectors = kSubOrbits / 4;

// Only x86-64 gets a wider clone; elsewhere the vectors map to the native SIMD width (or scalar code).
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define PACSGW_CHAOS_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define PACSGW_CHAOS_CLONES
#endif

PACSGW_CHAOS_CLONES
static void runOrbits(double* x, const double* gains, std::uint32_t* dst, std::size_t steps) {  // steps is even
  // kVectors independent dependency chains keep the floating-point units busy (one chain is
  // latency-bound at ~50 cycles per step).
  V4d v[kVectors], gain[kVectors];
  std::memcpy(v, x, sizeof v);
  std::memcpy(gain, gains, sizeof gain);
  for (std::size_t t = 0; t < steps; t += 2) {
    V4u out[kVectors];
#pragma GCC unroll 8
    for (std::size_t k = 0; k < kVectors; ++k) {
      v[k] = stepVector(v[k], gain[k]);
      out[k] = bitsVector(v[k]) << 16;
    }
#pragma GCC unroll 8
    for (std::size_t k = 0; k < kVectors; ++k) {
      v[k] = stepVector(v[k], gain[k]);
      out[k] |= bitsVector(v[k]);
    }
    std::memcpy(dst + t / 2 * kSubOrbits, out, sizeof out);
  }
  std::memcpy(x, v, sizeof v);
}

KeyStream::~KeyStream() {
  // Volatile stores, so the wipe is not optimised away as dead stores.
  volatile double* x = x_.data();
  volatile double* g = gain_.data();
  for (std::size_t j = 0; j < kSubOrbits; ++j) x[j] = g[j] = 0.0;
}

void KeyStream::generate(std::size_t count, std::vector<std::uint32_t>& out) {
  const std::size_t words = (count + kSubOrbits - 1) / kSubOrbits;  // per orbit
  const std::size_t steps = 2 * words;
  out.resize(words * kSubOrbits);
  double x[kSubOrbits];
  for (std::size_t j = 0; j < kSubOrbits; ++j) x[j] = x_[j];
  std::size_t t = 0;
  while (t < steps) {
    const std::size_t untilReseed = kReseedInterval - static_cast<std::size_t>(steps_ % kReseedInterval);
    const std::size_t run = std::min(steps - t, untilReseed);
    runOrbits(x, gain_.data(), out.data() + t / 2 * kSubOrbits, run);
    t += run;
    steps_ += run;
    if (steps_ % kReseedInterval == 0) {
      const std::uint64_t k = steps_ / kReseedInterval;
      for (std::size_t j = 0; j < kSubOrbits; ++j) x[j] = perturb(x[j], k * kSubOrbits + j);
    }
  }
  for (std::size_t j = 0; j < kSubOrbits; ++j) {
    x_[j] = x[j];
    x[j] = 0.0;
  }
}

double lyapunovExponent(double x0, double mu, std::size_t iterations) {
  const double gain = portableExp(mu);
  double x = x0;
  for (std::size_t i = 0; i < kTransient; ++i) x = mapStep(x, gain);
  double sum = 0.0;
  std::size_t used = 0;
  for (std::size_t i = 0; i < iterations; ++i) {
    const double u = 2.0 * x - 1.0;
    const double derivative = gain * (32.0 * u * u * u - 16.0 * u);  // d/dx of the map: gain * T4'(u)
    if (derivative != 0.0) {
      sum += std::log(std::fabs(derivative));
      ++used;
    }
    x = mapStep(x, gain);
  }
  return used ? sum / static_cast<double>(used) : 0.0;
}

}  // namespace pacsgw::codecs::chaos
