#include "codecs/eval/nist.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <stdexcept>

namespace pacsgw::eval::nist {
namespace {

constexpr double kPi = 3.14159265358979323846;

double normalCdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

void requireLength(const Bits& e, std::size_t n, const char* test) {
  if (e.size() < n) throw std::invalid_argument(std::string("NIST ") + test + ": sequence too short");
}

// In-place iterative radix-2 FFT (size a power of two).
void fft(std::vector<std::complex<double>>& a, bool inverse) {
  const std::size_t n = a.size();
  for (std::size_t i = 1, j = 0; i < n; ++i) {
    std::size_t bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) std::swap(a[i], a[j]);
  }
  for (std::size_t len = 2; len <= n; len <<= 1) {
    const double ang = 2 * kPi / static_cast<double>(len) * (inverse ? 1 : -1);
    const std::complex<double> wl(std::cos(ang), std::sin(ang));
    for (std::size_t i = 0; i < n; i += len) {
      std::complex<double> w(1);
      for (std::size_t j = 0; j < len / 2; ++j) {
        const auto u = a[i + j], v = a[i + j + len / 2] * w;
        a[i + j] = u + v;
        a[i + j + len / 2] = u - v;
        w *= wl;
      }
    }
  }
  if (inverse)
    for (auto& x : a) x /= static_cast<double>(n);
}

// Magnitudes |X_k| of the DFT of a real sequence of any length (Bluestein's algorithm when needed).
std::vector<double> dftMagnitudes(const std::vector<double>& x, std::size_t count) {
  const std::size_t n = x.size();
  std::vector<double> mags(count);
  if ((n & (n - 1)) == 0) {
    std::vector<std::complex<double>> a(x.begin(), x.end());
    fft(a, false);
    for (std::size_t k = 0; k < count; ++k) mags[k] = std::abs(a[k]);
    return mags;
  }
  std::size_t m = 1;
  while (m < 2 * n - 1) m <<= 1;
  std::vector<std::complex<double>> w(n), a(m), b(m);
  for (std::size_t k = 0; k < n; ++k) {
    // exp(-i pi k^2 / n) with k^2 reduced mod 2n to keep the angle accurate.
    const auto k2 = static_cast<double>((static_cast<unsigned long long>(k) * k) % (2ULL * n));
    const double ang = -kPi * k2 / static_cast<double>(n);
    w[k] = {std::cos(ang), std::sin(ang)};
    a[k] = x[k] * w[k];
  }
  b[0] = std::conj(w[0]);
  for (std::size_t k = 1; k < n; ++k) b[k] = b[m - k] = std::conj(w[k]);
  fft(a, false);
  fft(b, false);
  for (std::size_t i = 0; i < m; ++i) a[i] *= b[i];
  fft(a, true);
  for (std::size_t k = 0; k < count; ++k) mags[k] = std::abs(a[k] * w[k]);
  return mags;
}

// Counts of all overlapping m-bit patterns, the sequence extended by its first m - 1 bits.
std::vector<std::uint64_t> patternCounts(const Bits& e, std::size_t m) {
  std::vector<std::uint64_t> counts(std::size_t{1} << m, 0);
  if (m == 0) {
    counts[0] = e.size();
    return counts;
  }
  const std::size_t n = e.size();
  const std::size_t mask = (std::size_t{1} << m) - 1;
  std::size_t v = 0;
  for (std::size_t i = 0; i < m - 1; ++i) v = (v << 1) | e[i % n];
  for (std::size_t i = 0; i < n; ++i) {
    v = ((v << 1) | e[(i + m - 1) % n]) & mask;
    ++counts[v];
  }
  return counts;
}

double psiSquared(const Bits& e, std::size_t m) {
  if (m == 0) return 0.0;
  const auto counts = patternCounts(e, m);
  const double n = static_cast<double>(e.size());
  double sum = 0;
  for (std::uint64_t c : counts) sum += static_cast<double>(c) * static_cast<double>(c);
  return sum * static_cast<double>(std::size_t{1} << m) / n - n;
}

double phi(const Bits& e, std::size_t m) {
  const auto counts = patternCounts(e, m);
  const double n = static_cast<double>(e.size());
  double sum = 0;
  for (std::uint64_t c : counts)
    if (c) {
      const double p = static_cast<double>(c) / n;
      sum += p * std::log(p);
    }
  return sum;
}

double cusumPValue(long long n, long long z) {
  if (z == 0) return 1.0;
  const double sn = std::sqrt(static_cast<double>(n));
  double sum1 = 0, sum2 = 0;
  // Summation limits with C integer division (truncation), as in SP 800-22 section 2.13.
  for (long long k = (-n / z + 1) / 4; k <= (n / z - 1) / 4; ++k)
    sum1 += normalCdf(static_cast<double>((4 * k + 1) * z) / sn) - normalCdf(static_cast<double>((4 * k - 1) * z) / sn);
  for (long long k = (-n / z - 3) / 4; k <= (n / z - 1) / 4; ++k)
    sum2 += normalCdf(static_cast<double>((4 * k + 3) * z) / sn) - normalCdf(static_cast<double>((4 * k + 1) * z) / sn);
  return std::clamp(1.0 - sum1 + sum2, 0.0, 1.0);
}

}  // namespace

Bits bitsOfBytes(const std::uint8_t* data, std::size_t size, std::size_t maxBits) {
  Bits bits;
  bits.reserve(std::min(maxBits, size * 8));
  for (std::size_t i = 0; i < size && bits.size() < maxBits; ++i)
    for (int b = 7; b >= 0 && bits.size() < maxBits; --b) bits.push_back((data[i] >> b) & 1);
  return bits;
}

Bits bitsOfWords(const std::vector<std::uint32_t>& words, std::size_t maxBits) {
  Bits bits;
  bits.reserve(std::min(maxBits, words.size() * 32));
  for (std::size_t i = 0; i < words.size() && bits.size() < maxBits; ++i)
    for (int b = 31; b >= 0 && bits.size() < maxBits; --b) bits.push_back((words[i] >> b) & 1);
  return bits;
}

Bits bitsFromString(const std::string& s) {
  Bits bits;
  for (char c : s)
    if (c == '0' || c == '1') bits.push_back(static_cast<std::uint8_t>(c - '0'));
  return bits;
}

double igamc(double a, double x) {
  if (a <= 0) throw std::invalid_argument("igamc: a must be positive");
  if (x <= 0) return 1.0;
  const double logPrefix = -x + a * std::log(x) - std::lgamma(a);
  if (x < a + 1) {
    // Series for the lower function P(a, x) = e^-x x^a / Gamma(a + 1) * sum x^n / ((a+1)...(a+n)).
    double term = 1.0 / a, sum = term;
    for (int n = 1; n < 1000000; ++n) {
      term *= x / (a + n);
      sum += term;
      if (term < sum * 1e-16) break;
    }
    return std::clamp(1.0 - sum * std::exp(logPrefix), 0.0, 1.0);
  }
  // Continued fraction for Q(a, x) (modified Lentz).
  const double tiny = 1e-300;
  double b = x + 1 - a, c = 1 / tiny, d = 1 / b, h = d;
  for (int i = 1; i < 1000000; ++i) {
    const double an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (std::fabs(d) < tiny) d = tiny;
    c = b + an / c;
    if (std::fabs(c) < tiny) c = tiny;
    d = 1 / d;
    const double delta = d * c;
    h *= delta;
    if (std::fabs(delta - 1) < 1e-16) break;
  }
  return std::clamp(std::exp(logPrefix) * h, 0.0, 1.0);
}

double frequency(const Bits& e) {
  requireLength(e, 1, "frequency");
  long long s = 0;
  for (auto b : e) s += b ? 1 : -1;
  const double sObs = std::fabs(static_cast<double>(s)) / std::sqrt(static_cast<double>(e.size()));
  return std::erfc(sObs / std::sqrt(2.0));
}

double blockFrequency(const Bits& e, std::size_t m) {
  if (m == 0) throw std::invalid_argument("NIST block frequency: M must be positive");
  const std::size_t blocks = e.size() / m;
  if (blocks == 0) throw std::invalid_argument("NIST block frequency: sequence shorter than one block");
  double chi2 = 0;
  for (std::size_t i = 0; i < blocks; ++i) {
    std::size_t ones = 0;
    for (std::size_t j = 0; j < m; ++j) ones += e[i * m + j];
    const double pi = static_cast<double>(ones) / static_cast<double>(m) - 0.5;
    chi2 += pi * pi;
  }
  chi2 *= 4.0 * static_cast<double>(m);
  return igamc(static_cast<double>(blocks) / 2, chi2 / 2);
}

double runs(const Bits& e) {
  requireLength(e, 2, "runs");
  const double n = static_cast<double>(e.size());
  std::size_t ones = 0;
  for (auto b : e) ones += b;
  const double pi = static_cast<double>(ones) / n;
  if (std::fabs(pi - 0.5) >= 2.0 / std::sqrt(n)) return 0.0;  // frequency prerequisite fails
  std::size_t v = 1;
  for (std::size_t k = 1; k < e.size(); ++k) v += e[k] != e[k - 1];
  const double num = std::fabs(static_cast<double>(v) - 2 * n * pi * (1 - pi));
  return std::erfc(num / (2 * std::sqrt(2 * n) * pi * (1 - pi)));
}

std::vector<double> longestRunProbabilities(std::size_t m) {
  switch (m) {
    case 8: return {0.21484375, 0.3671875, 0.23046875, 0.1875};
    case 128: return {0.1174035788, 0.242955959, 0.249363483, 0.17517706, 0.102701071, 0.112398847};
    case 10000: return {0.0882, 0.2092, 0.2483, 0.1933, 0.1208, 0.0675, 0.0727};
    default: throw std::invalid_argument("NIST longest run: M must be 8, 128 or 10000");
  }
}

double longestRunOfOnes(const Bits& e) {
  const std::size_t n = e.size();
  if (n < 128) throw std::invalid_argument("NIST longest run: needs at least 128 bits");
  std::size_t m;
  std::size_t lowest;  // the run length of the first class (which also takes everything shorter)
  if (n < 6272) {
    m = 8;
    lowest = 1;
  } else if (n < 750000) {
    m = 128;
    lowest = 4;
  } else {
    m = 10000;
    lowest = 10;
  }
  const auto pi = longestRunProbabilities(m);
  const std::size_t classes = pi.size();
  std::vector<double> nu(classes, 0);
  const std::size_t blocks = n / m;
  for (std::size_t i = 0; i < blocks; ++i) {
    std::size_t run = 0, longest = 0;
    for (std::size_t j = 0; j < m; ++j) {
      run = e[i * m + j] ? run + 1 : 0;
      longest = std::max(longest, run);
    }
    const std::size_t cls = longest <= lowest ? 0 : std::min(classes - 1, longest - lowest);
    nu[cls] += 1;
  }
  double chi2 = 0;
  for (std::size_t i = 0; i < classes; ++i) {
    const double expected = static_cast<double>(blocks) * pi[i];
    chi2 += (nu[i] - expected) * (nu[i] - expected) / expected;
  }
  return igamc(static_cast<double>(classes - 1) / 2, chi2 / 2);
}

double discreteFourierTransform(const Bits& e) {
  const std::size_t n = e.size();
  requireLength(e, 2, "DFT");
  std::vector<double> x(n);
  for (std::size_t i = 0; i < n; ++i) x[i] = e[i] ? 1.0 : -1.0;
  const auto mags = dftMagnitudes(x, n / 2);
  const double nd = static_cast<double>(n);
  const double threshold = std::sqrt(std::log(1.0 / 0.05) * nd);
  const double n0 = 0.95 * nd / 2;
  double n1 = 0;
  for (double v : mags) n1 += v < threshold;
  const double d = (n1 - n0) / std::sqrt(nd * 0.95 * 0.05 / 4);
  return std::erfc(std::fabs(d) / std::sqrt(2.0));
}

std::pair<double, double> serial(const Bits& e, std::size_t m) {
  if (m < 2) throw std::invalid_argument("NIST serial: m must be at least 2");
  requireLength(e, m, "serial");
  const double p0 = psiSquared(e, m), p1 = psiSquared(e, m - 1), p2 = psiSquared(e, m - 2);
  const double del1 = p0 - p1, del2 = p0 - 2 * p1 + p2;
  return {igamc(std::ldexp(1.0, static_cast<int>(m) - 2), del1 / 2),
          igamc(std::ldexp(1.0, static_cast<int>(m) - 3), del2 / 2)};
}

double approximateEntropy(const Bits& e, std::size_t m) {
  if (m < 1) throw std::invalid_argument("NIST approximate entropy: m must be at least 1");
  requireLength(e, m + 1, "approximate entropy");
  const double apEn = phi(e, m) - phi(e, m + 1);
  const double chi2 = 2.0 * static_cast<double>(e.size()) * (std::log(2.0) - apEn);
  return igamc(std::ldexp(1.0, static_cast<int>(m) - 1), chi2 / 2);
}

std::pair<double, double> cumulativeSums(const Bits& e) {
  requireLength(e, 1, "cumulative sums");
  const auto n = static_cast<long long>(e.size());
  long long s = 0, zf = 0;
  for (auto b : e) {
    s += b ? 1 : -1;
    zf = std::max(zf, s < 0 ? -s : s);
  }
  s = 0;
  long long zr = 0;
  for (auto it = e.rbegin(); it != e.rend(); ++it) {
    s += *it ? 1 : -1;
    zr = std::max(zr, s < 0 ? -s : s);
  }
  return {cusumPValue(n, zf), cusumPValue(n, zr)};
}

std::vector<TestResult> runSubset(const Bits& e) {
  const std::size_t n = e.size();
  if (n < 1000) throw std::invalid_argument("NIST subset: at least 1000 bits are needed");
  const auto log2n = static_cast<std::size_t>(std::floor(std::log2(static_cast<double>(n))));
  const std::size_t apenM = std::min<std::size_t>(10, log2n - 6);
  const std::size_t serialM = std::min<std::size_t>(16, log2n - 3);
  std::vector<TestResult> out;
  auto add = [&](std::string name, double p) { out.push_back({std::move(name), p, p >= 0.01}); };
  add("frequency", frequency(e));
  add("block_frequency", blockFrequency(e, std::max<std::size_t>(20, n / 100 + 1)));
  const auto cusum = cumulativeSums(e);
  add("cusum_forward", cusum.first);
  add("cusum_reverse", cusum.second);
  add("runs", runs(e));
  add("longest_run", longestRunOfOnes(e));
  add("dft", discreteFourierTransform(e));
  add("approximate_entropy", approximateEntropy(e, apenM));
  const auto ser = serial(e, serialM);
  add("serial_1", ser.first);
  add("serial_2", ser.second);
  return out;
}

}  // namespace pacsgw::eval::nist
