#!/usr/bin/env bash
# Runs `pacsgw eval` on the real images of the test-data cache for every backend of the build, pinned to
# one CPU core with one LibTorch thread, and writes OUT_DIR/eval.json and OUT_DIR/eval.html.
#
#   scripts/eval-report.sh [OUT_DIR]        (default: build/eval)
#   PACSGW_BIN=/path/to/pacsgw PACSGW_TEST_CACHE=/elsewhere scripts/eval-report.sh
#
# Needs the cache filled by scripts/fetch-test-data.sh. Extra arguments after OUT_DIR go to pacsgw eval.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${PACSGW_BIN:-$repo/build/pacsgw}
cache=${PACSGW_TEST_CACHE:-$repo/tests/data/cache}
out=${1:-$repo/build/eval}
shift || true

[[ -x $bin ]] || { echo "eval-report: $bin not found; build it or set PACSGW_BIN" >&2; exit 2; }
pyd=$cache/src/pydicom/test_files
inputs=()
for f in "$cache/ct_rle.dcm" "$cache/mf_mr.dcm" "$cache/mf_xa_jpeg.dcm" "$pyd/CT_small.dcm" "$pyd/MR_small.dcm" \
         "$pyd/SC_rgb_rle.dcm"; do
  [[ -f $f ]] && inputs+=("$f")
done
((${#inputs[@]})) || { echo "eval-report: no images in $cache; run scripts/fetch-test-data.sh" >&2; exit 2; }
mkdir -p "$out"

# One core, one thread: the throughput figures are single-core figures.
pin=()
command -v taskset >/dev/null && pin=(taskset -c 0)
OMP_NUM_THREADS=1 "${pin[@]}" "$bin" eval --backend all --threads 1 \
  --json "$out/eval.json" --report "$out/eval.html" "$@" "${inputs[@]}"
echo "eval-report: wrote $out/eval.json and $out/eval.html"
