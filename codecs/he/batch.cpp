// Parallel batch encryption and decryption (see batch.h).
#include "codecs/he/batch.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

namespace pacsgw::codecs::he {
namespace {

std::vector<BigNum> forEach(const std::vector<BigNum>& in, unsigned threads,
                            const std::function<BigNum(const BigNum&)>& op) {
  std::vector<BigNum> out(in.size());
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  threads = static_cast<unsigned>(std::min<std::size_t>(threads, in.size()));
  std::atomic<std::size_t> next{0};
  std::exception_ptr error;
  std::mutex errorMutex;
  auto work = [&] {
    for (;;) {
      const std::size_t i = next.fetch_add(1);
      if (i >= in.size()) return;
      try {
        out[i] = op(in[i]);
      } catch (...) {
        std::lock_guard<std::mutex> lock(errorMutex);
        if (!error) error = std::current_exception();
        next.store(in.size());
        return;
      }
    }
  };
  if (threads <= 1) {
    work();
  } else {
    std::vector<std::thread> pool;
    pool.reserve(threads - 1);
    for (unsigned t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
  }
  if (error) std::rethrow_exception(error);
  return out;
}

}  // namespace

std::vector<BigNum> encryptAll(const PaillierPrivateKey& key, const std::vector<BigNum>& plaintexts,
                               unsigned threads) {
  return forEach(plaintexts, threads, [&](const BigNum& m) { return key.encrypt(m); });
}

std::vector<BigNum> decryptAll(const PaillierPrivateKey& key, const std::vector<BigNum>& ciphertexts,
                               unsigned threads) {
  return forEach(ciphertexts, threads, [&](const BigNum& c) { return key.decrypt(c); });
}

}  // namespace pacsgw::codecs::he
