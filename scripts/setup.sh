#!/usr/bin/env bash
# Installs every build, test and runtime dependency of pacsgw on Debian 12 (bookworm) and builds it.
# Idempotent: packages already installed are skipped (dpkg-query, no apt call at all when nothing is
# missing) and the build is incremental.
#
#   sudo scripts/setup.sh              # install what is missing, configure, build build/pacsgw
#   scripts/setup.sh --deps-only       # packages only
#   scripts/setup.sh --no-deps         # build only
#
# Environment: PACSGW_BUILD_DIR (default <repo>/build), PACSGW_BUILD_TYPE (default Release),
#              PACSGW_WITH_TORCH (ON|OFF, default ON), PACSGW_JOBS (default: number of cores),
#              PACSGW_BUILD_TESTS (ON|OFF, default ON; the container image builds without them),
#              PACSGW_PACKAGES (all|build, default all; build: only what compiling needs).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${PACSGW_BUILD_DIR:-$repo/build}
build_type=${PACSGW_BUILD_TYPE:-Release}
with_torch=${PACSGW_WITH_TORCH:-ON}
jobs=${PACSGW_JOBS:-$(nproc)}
do_deps=1
do_build=1
for arg in "$@"; do
  case $arg in
    --deps-only) do_build=0 ;;
    --no-deps) do_deps=0 ;;
    -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

say() { printf '[setup] %s\n' "$*"; }

build_packages=(
  # toolchain
  g++ cmake ninja-build pkg-config git ca-certificates curl
  # libraries the product links
  libdcmtk-dev libssl-dev libboost-dev libspdlog-dev libyaml-cpp-dev libsqlite3-dev libpq-dev zlib1g-dev libtorch-dev
  # PKCS#11 header for the HSM master key provider (the module itself is loaded at run time)
  libp11-kit-dev
  # unit tests
  libgtest-dev libgmock-dev
)
test_packages=(
  # clang and its libFuzzer runtime for the fuzzing harnesses (scripts/fuzz.sh, ctest fuzz.short)
  clang-14 libclang-rt-14-dev
  # peers and tools for integration tests, benchmarks and operations
  dcmtk orthanc sqlite3 postgresql python3 python3-pydicom python3-numpy
  # a software PKCS#11 token for the HSM master key tests, and pkcs11-tool to inspect it
  softhsm2 opensc
  # loopback capture for the DICOM TLS test (no clear pixels on the wire); openssl makes its certificates
  tcpdump openssl
  # checkers for the deployment files: promtool (/metrics format, dashboard queries), systemd-analyze,
  # YAML and the Kubernetes API models (manifest fields)
  prometheus systemd python3-yaml python3-kubernetes
  # the container image test (tests/integration/test_container.py, scripts/build-image.sh)
  # (dnsname: containers find each other by service name on podman's CNI networks)
  podman runc debootstrap podman-compose golang-github-containernetworking-plugin-dnsname
  # a real syslog receiver over TLS (RFC 5425) for the audit trail's forwarding test
  rsyslog rsyslog-gnutls
)
packages=("${build_packages[@]}")
[[ ${PACSGW_PACKAGES:-all} == build ]] || packages+=("${test_packages[@]}")

install_missing() {
  local missing=() p
  for p in "${packages[@]}"; do
    if [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) != "install ok installed" ]]; then
      missing+=("$p")
    fi
  done
  # npm fetches test data. A Node.js from elsewhere often bundles its own npm, and Debian's npm
  # package would conflict with it, so only install Debian's when there is no npm at all.
  if [[ ${PACSGW_PACKAGES:-all} != build ]] && ! command -v npm >/dev/null 2>&1; then
    missing+=(nodejs npm)
  fi
  if [[ ${#missing[@]} -eq 0 ]]; then
    say "all packages present"
    return
  fi
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { echo "[setup] run as root to install: ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
  fi
  say "installing: ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

build() {
  # Debian's python3 is pinned because pydicom and numpy come from Debian packages; a pyenv or
  # virtualenv interpreter earlier in PATH would not see them.
  local python=/usr/bin/python3
  [[ -x $python ]] || python=$(command -v python3)
  say "configuring $build_dir ($build_type, LibTorch backends $with_torch)"
  cmake -S "$repo" -B "$build_dir" -G Ninja \
    -DCMAKE_BUILD_TYPE="$build_type" \
    -DPACSGW_WITH_TORCH="$with_torch" \
    -DPACSGW_BUILD_TESTS="${PACSGW_BUILD_TESTS:-ON}" \
    -DPython3_EXECUTABLE="$python"
  say "building with $jobs jobs"
  cmake --build "$build_dir" -j "$jobs"
  [[ -x $build_dir/pacsgw ]] || { echo "[setup] build finished but $build_dir/pacsgw is missing" >&2; exit 1; }
  say "built $build_dir/pacsgw"
}

[[ $do_deps -eq 1 ]] && install_missing
[[ $do_build -eq 1 ]] && build
exit 0
