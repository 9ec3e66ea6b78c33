#!/usr/bin/env bash
# Writes tests/data/fixtures/encrypted-<name>/: pydicom's CT_small.dcm encrypted by the pacsgw build
# at hand, with the (test-only) master key and keystore that decrypt it. The directory is committed
# and tests/integration/test_compat_fixture.py must keep decrypting it with every later build, so a
# change to the key-reference block, the cipher or the keystore that breaks objects already in a
# PACS fails the suite. Run it only to add a fixture for a new format; never to refresh an old one.
#
#   scripts/make-compat-fixture.sh NAME [PACSGW_BIN]     e.g. scripts/make-compat-fixture.sh v1
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
name=${1:?usage: make-compat-fixture.sh NAME [PACSGW_BIN]}
bin=${2:-$repo/build/pacsgw}
cache=${PACSGW_TEST_CACHE:-$repo/tests/data/cache}
source=$cache/src/pydicom/test_files/CT_small.dcm
out=$repo/tests/data/fixtures/encrypted-$name
[[ -f $source ]] || { echo "$source missing: run scripts/fetch-test-data.sh" >&2; exit 1; }
[[ -e $out ]] && { echo "$out exists: fixtures are never regenerated" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -m 700 "$tmp/data"
"$bin" config defaults --data-dir "$tmp/data" > "$tmp/pacsgw.yaml"
"$bin" keys init-master --config "$tmp/pacsgw.yaml" >/dev/null
"$bin" encrypt --config "$tmp/pacsgw.yaml" "$source" "$tmp/ct_small_encrypted.dcm"

mkdir -p "$out"
cp "$tmp/data/master.key" "$out/test-master.key"
cp "$tmp/data/keystore.db" "$out/keystore.db"
cp "$tmp/ct_small_encrypted.dcm" "$out/"
cat > "$out/README.md" <<TEXT
# Encrypted fixture "$name"

\`ct_small_encrypted.dcm\` is pydicom's \`CT_small.dcm\` (sha256 $(sha256sum "$source" | cut -d' ' -f1))
encrypted by \`$("$bin" version | tr -d '\n')\` (commit $(git -C "$repo" rev-parse --short HEAD)) with the
default configuration (aes-256-gcm, study key scope). \`test-master.key\` and \`keystore.db\` are the
master key and keystore it was made with: a **test key**, used nowhere else.

Never regenerate this directory: \`tests/integration/test_compat_fixture.py\` checks that every build
still decrypts it to the original pixel data. Made by \`scripts/make-compat-fixture.sh\`.
TEXT
echo "wrote $out"
