#!/usr/bin/env bash
# One PNG showing the PACS copy (ciphertext: noise) next to the image the gateway restores, each
# rendered by DCMTK's dcm2pnm with a min-max window. Needs dcmtk and python3 (standard library only).
#
#   scripts/side-by-side-png.sh pacs-copy.dcm restored.dcm side-by-side.png
set -euo pipefail

[[ $# -eq 3 ]] || { sed -n '2,6p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
pacs_copy=$1 restored=$2 out=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# First frame, 8-bit binary PGM/PPM. dcm2pnm's exit code is not enough: check the files.
for pair in "pacs:$pacs_copy" "restored:$restored"; do
  name=${pair%%:*} file=${pair#*:}
  dcm2pnm --quiet +Wm +op "$file" "$tmp/$name.pnm" || true
  [[ -s $tmp/$name.pnm ]] || { echo "side-by-side-png.sh: dcm2pnm could not render $file" >&2; exit 1; }
done

python3 - "$tmp/pacs.pnm" "$tmp/restored.pnm" "$out" <<'PY'
import struct, sys, zlib

def read_pnm(path):
    data = open(path, "rb").read()
    fields, pos = [], 0
    while len(fields) < 4:  # magic, width, height, maxval; '#' comments allowed between them
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    magic, width, height, maxval = fields[0], int(fields[1]), int(fields[2]), int(fields[3])
    if magic not in (b"P5", b"P6") or maxval > 255:
        raise SystemExit(f"{path}: expected an 8-bit binary PGM/PPM from dcm2pnm")
    channels = 3 if magic == b"P6" else 1
    pixels = data[pos + 1:pos + 1 + width * height * channels]
    rows = [pixels[y * width * channels:(y + 1) * width * channels] for y in range(height)]
    if channels == 1:  # to RGB, so grey and colour images can share one picture
        rows = [bytes(b for v in row for b in (v, v, v)) for row in rows]
    return width, height, rows

left, right = read_pnm(sys.argv[1]), read_pnm(sys.argv[2])
gap = 16
width = left[0] + gap + right[0]
height = max(left[1], right[1])
white = b"\xff\xff\xff"

def row(image, y):
    w, h, rows = image
    return rows[y] if y < h else white * w

raw = b"".join(b"\x00" + row(left, y) + white * gap + row(right, y) for y in range(height))

def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) +
       chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
open(sys.argv[3], "wb").write(png)
print(f"{sys.argv[3]}: {width}x{height}, PACS copy on the left, restored image on the right")
PY
