#!/usr/bin/env bash
# Prints, one per line, the Debian packages that provide the shared libraries an executable loads.
# The slim runtime image installs exactly these (docker/Dockerfile).
#
#   scripts/list-runtime-packages.sh build/pacsgw
set -euo pipefail
bin=${1:?usage: list-runtime-packages.sh EXECUTABLE}

owner() {  # path -> package name, trying the /usr-merged and unmerged spellings
  local path=$1 candidate out
  for candidate in "$path" "$(readlink -f "$path")" "/usr${path#/usr}" "${path#/usr}"; do
    if out=$(dpkg-query -S "$candidate" 2>/dev/null); then
      grep -v '^diversion' <<<"$out" | head -n1 | cut -d: -f1
      return 0
    fi
  done
  echo "list-runtime-packages: no package owns $path" >&2
  return 1
}

ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | while read -r lib; do
  owner "$lib"
done | sort -u
