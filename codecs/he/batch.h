#pragma once
// Many Paillier encryptions or decryptions at once, spread over threads: ciphertexts are independent, so
// throughput scales with cores. The key is shared read-only; every thread uses its own BN_CTX.
#include "codecs/he/paillier.h"

#include <vector>

namespace pacsgw::codecs::he {

// threads == 0: one per hardware thread. Results are in input order. The first error is rethrown.
std::vector<BigNum> encryptAll(const PaillierPrivateKey& key, const std::vector<BigNum>& plaintexts,
                               unsigned threads = 0);
std::vector<BigNum> decryptAll(const PaillierPrivateKey& key, const std::vector<BigNum>& ciphertexts,
                               unsigned threads = 0);

}  // namespace pacsgw::codecs::he
