#!/usr/bin/env bash
# Builds the pacsgw container images with podman (or docker), without a registry: when the base image
# debian:bookworm-slim cannot be pulled, a local one is made with debootstrap and imported under that
# name, so the Dockerfile is the same one a hospital builds with Docker.
#
#   sudo scripts/build-image.sh                  # pacsgw:aes-only (PACSGW_WITH_TORCH=OFF)
#   sudo scripts/build-image.sh full             # pacsgw:full (with the LibTorch research backends)
#   sudo scripts/build-image.sh orthanc          # pacsgw-orthanc (docker/orthanc.Dockerfile)
#   sudo scripts/build-image.sh prebuilt build/pacsgw   # pacsgw:prebuilt from an executable built on
#                                                       # this Debian 12 host (docker/prebuilt.Dockerfile)
#
# Prints the build time and the image size. Environment: PACSGW_DEBIAN_MIRROR (default
# http://deb.debian.org/debian) for debootstrap; PACSGW_IMAGE_TAG to name the image differently.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
variant=${1:-aes-only}
base=docker.io/library/debian:bookworm-slim
mirror=${PACSGW_DEBIAN_MIRROR:-http://deb.debian.org/debian}
say() { printf '[build-image] %s\n' "$*"; }
die() { printf '[build-image] ERROR: %s\n' "$*" >&2; exit 1; }

command -v podman >/dev/null || die "podman not installed (Debian packages podman runc)"
# A host without its own containers.conf gets the repository's (docker/podman-containers.conf says why).
if [[ -z ${CONTAINERS_CONF:-} && ! -e /etc/containers/containers.conf ]]; then
  export CONTAINERS_CONF=$repo/docker/podman-containers.conf
fi
# runc: crun's cgroup handling fails on some virtual machines; runc works everywhere podman does.
podman_build=(podman build --pull=never --runtime runc --format docker)

if ! podman image exists "$base"; then
  if ! podman pull -q "$base" >/dev/null 2>&1; then
    command -v debootstrap >/dev/null || die "no registry and no debootstrap (Debian package debootstrap)"
    [[ $(id -u) -eq 0 ]] || die "making the local base image with debootstrap needs root"
    rootfs=$(mktemp -d)
    trap 'rm -rf "$rootfs"' EXIT
    say "no registry: making $base with debootstrap from $mirror"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
    cat >"$rootfs/etc/apt/sources.list" <<SRC
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
SRC
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
    tar -C "$rootfs" -c . | podman import -q - "$base" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
  fi
fi

start=$(date +%s)
case $variant in
  aes-only|full)
    torch=OFF
    [[ $variant == full ]] && torch=ON
    tag=${PACSGW_IMAGE_TAG:-localhost/pacsgw:$variant}
    "${podman_build[@]}" --ignorefile "$repo/docker/Dockerfile.dockerignore" --build-arg PACSGW_WITH_TORCH=$torch \
      -f "$repo/docker/Dockerfile" -t "$tag" "$repo"
    ;;
  orthanc)
    tag=${PACSGW_IMAGE_TAG:-localhost/pacsgw-orthanc:latest}
    "${podman_build[@]}" -f "$repo/docker/orthanc.Dockerfile" -t "$tag" "$repo/docker"
    ;;
  prebuilt)
    # The executable as built here (the same Debian 12 as the image), stripped, with the packages
    # that hold its libraries: no compiler and no compile inside the image.
    bin=${2:-$repo/build/pacsgw}
    [[ -x $bin ]] || die "no executable at $bin (build first, or name it: build-image.sh prebuilt PATH)"
    tag=${PACSGW_IMAGE_TAG:-localhost/pacsgw:prebuilt}
    context=$(mktemp -d)
    trap 'rm -rf "$context"' EXIT
    # pacsgw eval / pacsgw train run the sibling program pacsgw-eval; the learned backends find their
    # shipped models under <prefix>/share/pacsgw/models (codecs/neural/model_store.h).
    eval_bin=$(dirname "$bin")/pacsgw-eval
    [[ -x $eval_bin ]] || die "no pacsgw-eval next to $bin (it is built with pacsgw)"
    strip --strip-unneeded -o "$context/pacsgw" "$bin"
    strip --strip-unneeded -o "$context/pacsgw-eval" "$eval_bin"
    { "$repo/scripts/list-runtime-packages.sh" "$bin"; "$repo/scripts/list-runtime-packages.sh" "$eval_bin"; } \
      | sort -u > "$context/runtime-packages.txt"
    mkdir "$context/models"
    cp "$repo"/models/*.pt "$context/models/"
    cp "$repo/docker/pacsgw.yaml" "$context/pacsgw.yaml"
    cp "$repo/dicom/pacsgw.dic" "$context/pacsgw.dic"
    "${podman_build[@]}" -f "$repo/docker/prebuilt.Dockerfile" -t "$tag" "$context"
    ;;
  *) die "unknown variant '$variant' (aes-only, full, orthanc, prebuilt)" ;;
esac
seconds=$(( $(date +%s) - start ))
size=$(podman image inspect --format '{{.Size}}' "$tag")
say "$tag built in $((seconds / 60)) min $((seconds % 60)) s, $((size / 1000000)) MB"
