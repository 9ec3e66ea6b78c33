#!/usr/bin/env bash
# Installs what is missing, fetches the test data, builds, and runs every test (unit and
# integration) with ctest. The exit status is ctest's.
#
#   sudo scripts/test.sh                 # everything
#   scripts/test.sh -L integration       # extra arguments go to ctest
#   scripts/test.sh -R store_path -V
#
# Environment: as scripts/setup.sh (PACSGW_BUILD_DIR, PACSGW_WITH_TORCH, PACSGW_JOBS, ...).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${PACSGW_BUILD_DIR:-$repo/build}

"$repo/scripts/setup.sh" --deps-only
"$repo/scripts/fetch-test-data.sh"
"$repo/scripts/setup.sh" --no-deps

# The integration suite must be part of the run: a build configured without it (no Python,
# PACSGW_INTEGRATION_TESTS=OFF) fails here instead of passing with unit tests only.
integration=$(ctest --test-dir "$build_dir" -N -L integration | sed -nE 's/^Total Tests: ([0-9]+)$/\1/p')
if [[ ${integration:-0} -eq 0 ]]; then
  echo "[test] ERROR: no integration tests registered in $build_dir (configure with Python 3 and PACSGW_INTEGRATION_TESTS=ON)" >&2
  exit 1
fi

# Unit tests run on every core; integration scripts are marked RUN_SERIAL and run one at a time.
export CTEST_PARALLEL_LEVEL=${CTEST_PARALLEL_LEVEL:-$(nproc)}

echo "[test] ctest --test-dir $build_dir --output-on-failure --no-tests=error $*"
status=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
ctest --test-dir "$build_dir" --output-on-failure --no-tests=error "$@" 2>&1 | tee "$log" || status=$?
# A script whose tests were all skipped exits 77 and shows as skipped, never as passed; list them.
if grep -q '\*\*\*Skipped\|Not Run' "$log"; then
  echo "[test] skipped (not counted as passed):"
  grep -E '\*\*\*Skipped|Not Run' "$log" | sed 's/^/[test]   /'
fi
exit "$status"
