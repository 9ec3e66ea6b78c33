#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz, clang with AddressSanitizer and UBSan) in their own build
# directory and runs each for a bounded time. Exits non-zero when a harness finds a crash, a leak, a
# hang (-timeout) or excessive memory use (-rss_limit_mb); the reproducer is left in the build dir.
#
#   scripts/fuzz.sh                       # every harness, 20 s each (what ctest's fuzz.short runs)
#   scripts/fuzz.sh --seconds 300 fuzz_config
#
# Options: --seconds N (per harness), --build-dir DIR (default <repo>/build-fuzz), --jobs N.
# The corpus grows in DIR/corpus/<harness>, seeded from tests/fuzz/corpus/<harness>.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=20
build_dir=$repo/build-fuzz
jobs=${PACSGW_JOBS:-2}
targets=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --build-dir) build_dir=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if [[ ${#targets[@]} -eq 0 ]]; then
  for f in "$repo"/tests/fuzz/fuzz_*.cpp; do targets+=("$(basename "${f%.cpp}")"); done
fi

cxx=$(command -v clang++-14 || command -v clang++ || true)
if [[ -z $cxx ]]; then
  echo "fuzz.sh: clang++ not found (Debian packages clang-14 and libclang-rt-14-dev; scripts/setup.sh installs them)" >&2
  exit 1
fi
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
generator=()
if command -v ninja >/dev/null && [[ ! -f $build_dir/CMakeCache.txt ]]; then generator=(-G Ninja); fi

cmake -S "$repo" -B "$build_dir" "${generator[@]}" "${launcher[@]}" -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPACSGW_FUZZ=ON -DPACSGW_WITH_TORCH=OFF -DPACSGW_BUILD_TESTS=OFF >/dev/null
cmake --build "$build_dir" --target "${targets[@]}" -j "$jobs"

failed=0
for t in "${targets[@]}"; do
  corpus=$build_dir/corpus/$t
  artifacts=$build_dir/artifacts/$t/
  mkdir -p "$corpus" "$artifacts"
  seeds=()
  [[ -d $repo/tests/fuzz/corpus/$t ]] && seeds=("$repo/tests/fuzz/corpus/$t")
  log=$build_dir/$t.log
  echo "== $t: ${seconds} s"
  set +e
  "$build_dir/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts" "$corpus" "${seeds[@]}" >"$log" 2>&1
  rc=$?
  set -e
  # The last status line (executions, coverage, features, corpus size) and the final statistics.
  grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$log" | tail -1 || true
  grep -E '^stat::(number_of_executed_units|peak_rss_mb|new_units_added)' "$log" || true
  if [[ $rc -ne 0 ]]; then
    echo "== $t FAILED (exit $rc); reproducer in $artifacts" >&2
    grep -E 'ERROR: |SUMMARY: |runtime error' "$log" | head -5 >&2 || true
    failed=1
  fi
done
exit $failed
