#pragma once
// The chaotic map behind chaos-vpd's key streams K1..K8, and the key-stream generator.
//
// The paper (Kumar et al., Sci. Rep. 15:1211, 2025) uses the 1-D exponential Chebyshev map (1-DEC) of
// Long et al. (2023), but its equation did not survive in the available text. This file implements a
// clearly named stand-in with the properties the paper states for 1-DEC (a Chebyshev core made more
// chaotic by an exponential; positive Lyapunov exponent over the whole parameter range; outputs spread
// uniformly over the state space). See docs/ciphers.md, "The chaotic map".
//
//   x' = frac( e^mu * (1 + T4(2x - 1)) / 2 ),   x in [0, 1),  mu in [8, 12)
//
// T4(u) = 8u^4 - 8u^2 + 1 is the degree-4 Chebyshev polynomial; (1 + T4(u)) / 2 = T2(u)^2 with
// T2(u) = 2u^2 - 1, which is how it is evaluated. Only +, -, *, and exact conversions are
// used, all IEEE-754 correctly rounded, and the build forbids FMA contraction (-ffp-contract=off), so
// every conforming machine computes the same orbit bit for bit. e^mu is computed once per lane by
// portableExp (again only basic operations), never by the platform's libm.
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace pacsgw::codecs::chaos {

constexpr std::size_t kLanes = 8;              // the paper's eight keys K1..K8
constexpr double kMuMin = 8.0;                 // control parameter range [kMuMin, kMuMin + 4)
constexpr std::size_t kTransient = 256;        // iterations discarded before the first output
constexpr std::size_t kReseedInterval = 65536; // steps between orbit perturbations (anti-cycling)

// e^x for |x| <= 64: Cody-Waite reduction by ln 2, a degree-14 Taylor polynomial and exact scaling by
// 2^n, with basic operations only. Deterministic across IEEE-754 machines; within a few ulp of e^x.
double portableExp(double x);

// (1 + T4(u)) / 2 = (2u^2 - 1)^2, evaluated in exactly this order (part of the format).
inline double halfOnePlusT4(double u) {
  const double a = u * u;
  const double w = (a + a) - 1.0;
  return w * w;
}

// One iteration of the map with gain = e^mu. The integer truncation is exact because the value lies in
// [0, gain] and gain < 2^31, so this is floor() without relying on libm. (mu < 12.02, so gain < 2^17.4.)
inline double mapStep(double x, double gain) {
  const double y = gain * halfOnePlusT4((x + x) - 1.0);
  return y - static_cast<double>(static_cast<std::int32_t>(y));
}

// 16 output bits from a state: floor(x * 2^35) mod 2^16, i.e. bits 20..35 below the binary point.
// Why these: after frac() the state keeps at least 52 - 17 = 35 significant bits (gain < 2^17.3), so
// bit 35 is always real; and one step expands the state by about log2(gain) + 2 <= 19.3 bits, so the
// previous output (bits 20..35) says nothing about these bits of the next state. The paper likewise
// keeps low-order digits (floor(|K| * 10^k) mod 256). Exact int32 conversions only (vectorisable).
inline std::uint32_t outputBits(double x) {
  double v = x * 524288.0;                                   // 2^19
  v -= static_cast<double>(static_cast<std::int32_t>(v));    // bits 20.. of x
  return static_cast<std::uint32_t>(static_cast<std::int32_t>(v * 65536.0));
}

// Orbit perturbation applied every kReseedInterval steps: x <- frac(x + frac(k * phi)), phi the golden
// ratio conjugate. Keeps long streams away from the short cycles finite precision can create.
double perturb(double x, std::uint64_t k);

struct LaneSeed {
  double x0 = 0.0;  // initial condition in [0, 1)
  double mu = kMuMin;
};

// The paper's key-generation Step 3: a 64-bit slice of the SHA-512 digest becomes a 15-digit decimal
// (value mod 10^15) divided by 10^15. The remaining high part picks mu in [kMuMin, kMuMin + 4).
LaneSeed laneSeedFromDigestPart(std::uint64_t part);

// One key stream K_i of 32-bit words. For speed it interleaves kSubOrbits orbits of the map, so the CPU
// can run them side by side: all start at x0 (so every bit of x0 matters to each), orbit j runs with
// mu_j = mu + j / 1024. Word t*kSubOrbits + j is
// (outputBits(x_{2t+1}) << 16) | outputBits(x_{2t+2}) of orbit j, x_0 being its state after the
// kTransient discarded iterations.
constexpr std::size_t kSubOrbits = 16;
class KeyStream {
 public:
  explicit KeyStream(const LaneSeed& seed);
  ~KeyStream();  // wipes the orbit states (key material)
  KeyStream(const KeyStream&) = delete;
  KeyStream& operator=(const KeyStream&) = delete;
  // Overwrites `out` with the next `count` words (count rounded up to a multiple of kSubOrbits).
  void generate(std::size_t count, std::vector<std::uint32_t>& out);

 private:
  std::array<double, kSubOrbits> x_{};
  std::array<double, kSubOrbits> gain_{};
  std::uint64_t steps_ = 0;
};

// Lyapunov exponent estimate (1/n) sum ln|f'(x_i)| along an orbit, for docs and tests.
// Uses std::log, so it is a diagnostic only, never part of the cipher.
double lyapunovExponent(double x0, double mu, std::size_t iterations);

}  // namespace pacsgw::codecs::chaos
