#pragma once
// A subset of NIST SP 800-22 rev. 1a ("A Statistical Test Suite for Random and Pseudorandom Number
// Generators for Cryptographic Applications"), implemented from the document's definitions: frequency,
// block frequency, runs, longest run of ones, cumulative sums, discrete Fourier transform, approximate
// entropy and serial. A sequence passes a test when its P-value is at least 0.01.
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace pacsgw::eval::nist {

using Bits = std::vector<std::uint8_t>;  // one bit (0 or 1) per element

// Bits of bytes, most significant bit of each byte first.
Bits bitsOfBytes(const std::uint8_t* data, std::size_t size, std::size_t maxBits = SIZE_MAX);
Bits bitsOfWords(const std::vector<std::uint32_t>& words, std::size_t maxBits = SIZE_MAX);  // MSB first
Bits bitsFromString(const std::string& zerosAndOnes);

// Regularised upper incomplete gamma function Q(a, x) (the "igamc" of SP 800-22).
double igamc(double a, double x);

double frequency(const Bits& e);                         // 2.1
double blockFrequency(const Bits& e, std::size_t m);     // 2.2
double runs(const Bits& e);                              // 2.3
double longestRunOfOnes(const Bits& e);                  // 2.4 (M = 8, 128 or 10^4 by length)
double discreteFourierTransform(const Bits& e);          // 2.6
std::pair<double, double> serial(const Bits& e, std::size_t m);  // 2.11: P-value 1 and 2
double approximateEntropy(const Bits& e, std::size_t m);         // 2.12
std::pair<double, double> cumulativeSums(const Bits& e);         // 2.13: forward, reverse

// Longest-run class probabilities for block length m (8, 128 or 10000), as tabulated in SP 800-22.
std::vector<double> longestRunProbabilities(std::size_t m);

struct TestResult {
  std::string name;
  double pValue = 0;
  bool pass = false;
};

// The subset on one sequence, parameters within SP 800-22's recommendations for its length n: block
// frequency M = max(20, n / 100 + 1) (so fewer than 100 blocks), approximate entropy
// m = min(10, floor(log2 n) - 6), serial m = min(16, floor(log2 n) - 3).
std::vector<TestResult> runSubset(const Bits& e);

}  // namespace pacsgw::eval::nist
