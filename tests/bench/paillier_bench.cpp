// Paillier throughput against a plaintext reference, in one run: prints one line per operation with
// operations per second and the ratio to the plaintext equivalent. Run by tests/bench/bench_paillier.py.
#include "codecs/he/batch.h"
#include "codecs/he/encrypted_region.h"
#include "codecs/he/key_derivation.h"
#include "codecs/he/packed_vector.h"
#include "codecs/he/paillier.h"
#include "codecs/he/slot_packing.h"

#include <thread>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>

using namespace pacsgw::codecs::he;
using Clock = std::chrono::steady_clock;

namespace {

volatile std::uint64_t sink;

// Runs `op` until at least `seconds` have passed; returns operations per second.
double rate(const std::function<void()>& op, double seconds) {
  std::size_t n = 0;
  const auto start = Clock::now();
  double elapsed = 0;
  do {
    op();
    ++n;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  } while (elapsed < seconds);
  return static_cast<double>(n) / elapsed;
}

void row(const char* name, double opsPerSecond, double plainOpsPerSecond) {
  std::printf("%-42s %14.1f ops/s   plaintext %16.1f ops/s   slowdown x%.0f\n", name, opsPerSecond,
              plainOpsPerSecond, plainOpsPerSecond / opsPerSecond);
}

}  // namespace

int main(int argc, char** argv) {
  const int bits = argc > 1 ? std::atoi(argv[1]) : kDefaultModulusBits;
  const double seconds = argc > 2 ? std::atof(argv[2]) : 1.0;
  std::mt19937_64 rng(1);

  auto t0 = Clock::now();
  const PaillierPrivateKey key = generatePaillierKey(bits);
  const double keygenSeconds = std::chrono::duration<double>(Clock::now() - t0).count();
  const PaillierPublicKey& pub = key.publicKey();
  const PackedPaillier he(pub);
  std::printf("modulus %d bits, %zu slots of %u bits, key generation %.2f s\n", pub.modulusBits(),
              he.packing().slots(), he.packing().slotBits(), keygenSeconds);

  const BigNum m = BigNum::fromWord(123456789);
  const BigNum c = pub.encrypt(m), c2 = pub.encrypt(BigNum::fromWord(987654321));
  std::uint64_t a = rng(), b = rng();
  const double plainAdd = rate([&] { sink = a + (b ^ sink); }, seconds);
  const double plainMul = rate([&] { sink = a * (b ^ sink); }, seconds);

  const double publicEncrypt = rate([&] { pub.encrypt(m); }, seconds);
  const double holderEncrypt = rate([&] { key.encrypt(m); }, seconds);
  row("encrypt (one value), public key", publicEncrypt, plainAdd);
  row("encrypt (one value), key holder (CRT)", holderEncrypt, plainAdd);
  std::printf("%-42s x%.2f\n", "CRT speed-up over public-key encryption", holderEncrypt / publicEncrypt);
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  {
    std::vector<BigNum> batch(8 * threads, m);
    const double perSecond = rate([&] { encryptAll(key, batch, threads); }, seconds) * batch.size();
    row(("encrypt, key holder, " + std::to_string(threads) + " threads").c_str(), perSecond, plainAdd);
    std::printf("%-42s x%.2f\n", "key holder on all threads vs public key", perSecond / publicEncrypt);
  }
  {
    std::vector<std::uint8_t> seed(32, 7);
    t0 = Clock::now();
    const PaillierPrivateKey derived = derivePaillierKey(seed.data(), seed.size(), bits);
    std::printf("%-42s %.2f s (once per study and process)\n", "key derivation from the study subkey",
                std::chrono::duration<double>(Clock::now() - t0).count());
  }
  const double crt = rate([&] { key.decrypt(c); }, seconds);
  const double textbook = rate([&] { key.decryptWithoutCrt(c); }, seconds);
  row("decrypt, CRT", crt, plainAdd);
  row("decrypt, textbook (no CRT)", textbook, plainAdd);
  std::printf("%-42s x%.2f\n", "CRT speed-up over textbook decryption", crt / textbook);
  row("homomorphic add E(a)E(b)", rate([&] { pub.add(c, c2); }, seconds), plainAdd);
  row("scalar multiply E(a)^k, k < 2^16", rate([&] { pub.multiplyPlain(c, BigNum::fromWord(40000)); }, seconds),
      plainMul);

  // Packed: per value, with every slot filled with 16-bit samples.
  const std::size_t slots = he.packing().slots();
  std::vector<std::uint64_t> values(slots);
  for (auto& v : values) v = rng() % 65536;
  const PackedCiphertext pc = he.encrypt(values, 65535);
  row("packed encrypt, per 16-bit value", rate([&] { he.encrypt(values, 65535); }, seconds) * slots, plainAdd);
  row("packed add, per 16-bit value", rate([&] { he.add(pc, pc); }, seconds) * slots, plainAdd);

  // Region mean on a 64 x 64 patch of 12-bit samples.
  const std::size_t side = 64;
  std::vector<std::uint16_t> image(side * side);
  for (auto& s : image) s = static_cast<std::uint16_t>(rng() % 4096);
  t0 = Clock::now();
  const EncryptedImage enc = encryptImage(he, image, side, side, 4095);
  const double encryptImageSeconds = std::chrono::duration<double>(Clock::now() - t0).count();
  const Region region{8, 5, 48, 50};
  double cipherMean = 0;
  const double onCiphertext = rate([&] { cipherMean = decryptRegionMean(key, he, enc, encryptedRegionSum(he, enc, region), region); }, seconds);
  double plainMean = 0;
  const double onPlaintext = rate([&] { plainMean = plaintextRegionMean(image, side, region); }, seconds);
  std::printf("encrypt a %zux%zu image: %zu ciphertexts in %.2f s\n", side, side, enc.chunks.size(), encryptImageSeconds);
  row("region mean 48x50 on ciphertext (+decrypt)", onCiphertext, onPlaintext);
  std::printf("region mean: ciphertext %.6f, plaintext %.6f -> %s\n", cipherMean, plainMean,
              cipherMean == plainMean ? "equal" : "DIFFERENT");

  // One slice as the ae-he backend protects it: a latent of `latentValues` 8-bit codes densely packed,
  // and the 16 x 16 block-sum grid of a 512 x 512 signed CT slice, both encrypted by the key holder.
  const std::size_t latentValues = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 4096;
  std::vector<std::uint64_t> latent(latentValues);
  for (auto& v : latent) v = rng() % 256;
  t0 = Clock::now();
  const EncryptedVector encLatent = encryptVector(key, latent, 255, 8, threads);
  const double latentEncrypt = std::chrono::duration<double>(Clock::now() - t0).count();
  t0 = Clock::now();
  const bool latentOk = decryptVector(key, encLatent, threads) == latent;
  const double latentDecrypt = std::chrono::duration<double>(Clock::now() - t0).count();
  std::vector<std::int32_t> slice(512 * 512);
  for (auto& s : slice) s = static_cast<std::int32_t>(rng() % 4096) - 1024;
  const BlockGrid grid = blockSums(slice, 512, 512, 16, 32768, 65535);
  t0 = Clock::now();
  const EncryptedImage encGrid = encryptGrid(key, he, grid.sums, grid.rows, grid.columns, grid.bound(), threads);
  const double gridEncrypt = std::chrono::duration<double>(Clock::now() - t0).count();
  const Region tiles{10, 12, 6, 5};
  t0 = Clock::now();
  const PackedCiphertext roi = encryptedRegionSum(he, encGrid, tiles);
  const double roiSeconds = std::chrono::duration<double>(Clock::now() - t0).count();
  const double roiCipher = decryptBlockRegionMean(key, he, encGrid, grid, roi, tiles);
  const double roiPlain = plaintextBlockRegionMean(slice, grid, tiles);
  const std::size_t ctBytes = static_cast<std::size_t>(BN_num_bytes(pub.nSquared().get()));
  std::printf("slice latent: %zu 8-bit codes -> %zu ciphertexts (%zu slots each), %zu bytes; encrypt %.2f s, "
              "decrypt %.2f s on %u threads -> %s\n",
              latentValues, encLatent.ciphertexts.size(), slotsPerCiphertext(pub, 8),
              encLatent.ciphertexts.size() * ctBytes, latentEncrypt, latentDecrypt, threads,
              latentOk ? "exact" : "DIFFERENT");
  std::printf("slice block grid: 512x512 in 16x16 tiles -> %zu ciphertexts, %zu bytes; encrypt %.2f s\n",
              encGrid.chunks.size(), encGrid.chunks.size() * ctBytes, gridEncrypt);
  std::printf("ROI mean (%zux%zu tiles) on ciphertext %.3f s: %.6f, plaintext %.6f -> %s\n", tiles.rows,
              tiles.columns, roiSeconds, roiCipher, roiPlain, roiCipher == roiPlain ? "equal" : "DIFFERENT");
  return cipherMean == plainMean && roiCipher == roiPlain && latentOk ? 0 : 1;
}
