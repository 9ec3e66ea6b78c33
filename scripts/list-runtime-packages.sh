#!/usr/bin/env bash
# Prints, one per line, the Debian packages that provide the shared libraries an executable loads.
# The slim runtime images install exactly these (docker/Dockerfile, docker/prebuilt.Dockerfile).
#
#   scripts/list-runtime-packages.sh build/pacsgw
set -euo pipefail
bin=${1:?usage: list-runtime-packages.sh EXECUTABLE}

# Every spelling a library may be registered under (/usr-merged or not, through symlinks), asked of
# dpkg in one call: one call per library takes minutes for the LibTorch build's ~150 libraries.
declare -A owner_of=()
libs=()
candidates=()
while read -r lib; do
  libs+=("$lib")
  resolved=$(readlink -f "$lib")
  for path in "$lib" "$resolved"; do
    candidates+=("$path" "/usr${path#/usr}" "${path#/usr}")
  done
done < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }')
[[ ${#libs[@]} -gt 0 ]] || { echo "list-runtime-packages: $bin loads no shared library" >&2; exit 1; }

while IFS= read -r line; do
  [[ $line == diversion* ]] && continue
  package=${line%%: *}              # "pkg1:amd64, pkg2:amd64: path"
  package=${package%%,*}
  package=${package%%:*}
  owner_of[${line#*: }]=$package
done < <(dpkg-query -S "${candidates[@]}" 2>/dev/null || true)

status=0
packages=()
for lib in "${libs[@]}"; do
  resolved=$(readlink -f "$lib")
  found=
  for path in "$lib" "$resolved" "/usr${lib#/usr}" "${lib#/usr}" "/usr${resolved#/usr}" "${resolved#/usr}"; do
    if [[ -n ${owner_of[$path]:-} ]]; then found=${owner_of[$path]}; break; fi
  done
  if [[ -z $found ]]; then
    echo "list-runtime-packages: no package owns $lib" >&2
    status=1
    continue
  fi
  packages+=("$found")
done
printf '%s\n' "${packages[@]}" | sort -u
exit "$status"
