#!/usr/bin/env bash
# The service binary must not contain the research hooks (caller-chosen nonces, unverified decryption,
# raw key streams, evaluation cores): they live in research libraries only pacsgw-eval links.
# Usage: service_symbols.sh PACSGW PACSGW_EVAL
set -euo pipefail
service=$1 eval_program=$2
hooks='pacsgw::codecs::chaos::encryptWithNonce|pacsgw::codecs::chaos::encryptWithFixedSiv|pacsgw::codecs::chaos::decryptUnauthenticated|pacsgw::codecs::chaos::keyStreams|pacsgw::codecs::chaos::decoyFor|pacsgw::codecs::chaos::engine::(encrypt|invertLayers|keyStreams|decoyFor)\(|pacsgw::eval::|pacsgw::codecs::he::PaillierPublicKey::encryptWithRandomness|pacsgw::codecs::he::PaillierPrivateKey::encryptWithResidueSeeds|pacsgw::codecs::ae_he::engine::|pacsgw::codecs::ae_aes::engine::|pacsgw::codecs::edgnet::engine::|pacsgw::codecs::neural::trainEdgNet|pacsgw::codecs::neural::(trainAutoencoder|runTrainCommand|loadTrainingSet)'
service_symbols=$(nm -C "$service")
eval_symbols=$(nm -C "$eval_program")
# Control: the evaluation program does contain the hooks of this build (so the pattern can match).
if ! grep -Eq "$hooks" <<<"$eval_symbols"; then
  echo "FAIL: no research symbol found in $eval_program: the check itself is broken" >&2
  exit 1
fi
found=$(grep -E "$hooks" <<<"$service_symbols" || true)
if [[ -n $found ]]; then
  echo "FAIL: the service binary $service links research hooks:" >&2
  echo "$found" | head -20 >&2
  exit 1
fi
echo "OK: $(grep -Ec "$hooks" <<<"$eval_symbols") research symbols in pacsgw-eval, none in pacsgw"
