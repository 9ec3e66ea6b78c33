#!/usr/bin/env python3
"""Paillier (codecs/he) throughput against a plaintext reference run in the same invocation.

Builds nothing: run after the build, e.g.
  python3 tests/bench/bench_paillier.py                # 3072-bit modulus, 1 s per figure
  python3 tests/bench/bench_paillier.py --bits 2048 --seconds 0.5
Prints operations per second for encryption, CRT and textbook decryption, homomorphic addition and
scalar multiplication, packed (slot) encryption per value, and the region mean computed on ciphertext,
each with its slowdown against the plaintext operation; then the key holder's CRT encryption (one thread
and all threads), key derivation, and one slice as ae-he protects it (latent codes, 16x16 block grid of a
512x512 slice, a region mean on the grid). Exits non-zero if an encrypted result differs from plaintext.
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bits", type=int, default=3072, help="modulus size (even, >= 2048)")
    parser.add_argument("--seconds", type=float, default=1.0, help="measuring time per figure")
    parser.add_argument("--latent", type=int, default=4096, help="latent values per slice (8-bit codes)")
    parser.add_argument("--build-dir", default=os.environ.get("PACSGW_BUILD_DIR", str(REPO / "build")))
    args = parser.parse_args()
    program = Path(args.build_dir) / "paillier_bench"
    if not program.exists():
        print(f"bench_paillier: {program} not found; build the project first", file=sys.stderr)
        return 2
    result = subprocess.run([str(program), str(args.bits), str(args.seconds), str(args.latent)], timeout=600)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
