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

echo "[test] ctest --test-dir $build_dir --output-on-failure $*"
status=0
ctest --test-dir "$build_dir" --output-on-failure "$@" || status=$?
exit "$status"
