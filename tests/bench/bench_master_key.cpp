// Data key wraps and unwraps per second: master key in memory (file/environment provider) versus in a
// PKCS#11 token (SoftHSM2 in a private token directory, created here). Both measured in the same run.
//
//   build/tests/bench_master_key [operations=2000] [module=/usr/lib/softhsm/libsofthsm2.so]
#include "keystore/master_key_provider.h"
#include "keystore/pkcs11_provider.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

using namespace pacsgw;
using namespace pacsgw::keystore;

namespace {

struct Rates {
  double wrapsPerSecond;
  double unwrapsPerSecond;
};

Rates measure(const MasterKeyProvider& master, int operations) {
  SecretBytes key(32);
  for (std::size_t i = 0; i < key.size(); ++i) key.data()[i] = static_cast<std::uint8_t>(i * 7);
  std::vector<std::vector<std::uint8_t>> blobs;
  blobs.reserve(operations);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < operations; ++i) {
    blobs.push_back(master.wrapForRow("id-" + std::to_string(i), KeyScope::Study, "1.2." + std::to_string(i), key));
  }
  const auto t1 = std::chrono::steady_clock::now();
  for (int i = 0; i < operations; ++i) {
    const SecretBytes back = master.unwrapForRow("id-" + std::to_string(i), KeyScope::Study, "1.2." + std::to_string(i),
                                                 blobs[i]);
    if (back.size() != key.size()) std::abort();
  }
  const auto t2 = std::chrono::steady_clock::now();
  const double wrapSeconds = std::chrono::duration<double>(t1 - t0).count();
  const double unwrapSeconds = std::chrono::duration<double>(t2 - t1).count();
  return {operations / wrapSeconds, operations / unwrapSeconds};
}

}  // namespace

int main(int argc, char** argv) {
  const int operations = argc > 1 ? std::atoi(argv[1]) : 2000;
  const std::string module = argc > 2 ? argv[2] : "/usr/lib/softhsm/libsofthsm2.so";
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("pacsgw-bench-hsm-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "tokens");
  std::ofstream(dir / "softhsm2.conf") << "directories.tokendir = " << (dir / "tokens").string()
                                       << "\nobjectstore.backend = file\nlog.level = ERROR\n";
  ::setenv("SOFTHSM2_CONF", (dir / "softhsm2.conf").c_str(), 1);
  const std::string init = "softhsm2-util --init-token --free --label bench --pin 1234 --so-pin 5678 >/dev/null";
  if (std::system(init.c_str()) != 0) {
    std::fprintf(stderr, "softhsm2-util --init-token failed\n");
    return 1;
  }
  const auto pin = [] { return SecretBytes(reinterpret_cast<const std::uint8_t*>("1234"), 4); };
  int status = 0;
  try {
    generatePkcs11MasterKey(Pkcs11Settings{module, "bench", "kek", pin()});
    const auto token = pkcs11MasterKey(Pkcs11Settings{module, "bench", "kek", pin()});
    SecretBytes fileKey(32);
    for (std::size_t i = 0; i < fileKey.size(); ++i) fileKey.data()[i] = static_cast<std::uint8_t>(i);
    const auto file = softwareMasterKey(std::move(fileKey));
    const Rates fileRates = measure(*file, operations);
    const Rates tokenRates = measure(*token, operations);
    std::printf("data key wraps/unwraps per second, %d operations each\n", operations);
    std::printf("  file provider (RFC 5649 + HKDF, in memory): wrap %9.0f/s  unwrap %9.0f/s\n", fileRates.wrapsPerSecond,
                fileRates.unwrapsPerSecond);
    std::printf("  PKCS#11 provider (AES-GCM in SoftHSM2):      wrap %9.0f/s  unwrap %9.0f/s\n",
                tokenRates.wrapsPerSecond, tokenRates.unwrapsPerSecond);
    std::printf("  ratio token/file:                            wrap %9.2f    unwrap %9.2f\n",
                tokenRates.wrapsPerSecond / fileRates.wrapsPerSecond,
                tokenRates.unwrapsPerSecond / fileRates.unwrapsPerSecond);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    status = 1;
  }
  std::filesystem::remove_all(dir);
  return status;
}
