#!/usr/bin/env python3
"""scripts/side-by-side-png.sh, the quick start's picture: the PACS copy (noise) next to the restored
image. The PNG is decoded here and compared with dcm2pnm's own rendering of the original file.

Run alone:  PACSGW_BIN=build/pacsgw python3 tests/integration/test_side_by_side_png.py -v
"""

import struct
import shutil
import sys
import unittest
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pacsgw_harness as h  # noqa: E402

numpy = h.numpy
SCRIPT = h.REPO_ROOT / "scripts" / "side-by-side-png.sh"
GAP = 16


def decode_png(path: Path) -> "numpy.ndarray":
    """An 8-bit RGB, non-interlaced PNG with filter type 0 on every row (what the script writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        crc = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0]
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc, f"bad CRC in {kind}"
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert (depth, colour, interlace) == (8, 2, 0), header
    raw = numpy.frombuffer(zlib.decompress(idat), dtype=numpy.uint8).reshape(height, 1 + width * 3)
    assert (raw[:, 0] == 0).all(), "unexpected row filter"
    return raw[:, 1:].reshape(height, width, 3)


def dcm2pnm_grey(path: Path, target: Path) -> "numpy.ndarray":
    h.run_tool(["dcm2pnm", "--quiet", "+Wm", "+op", path, target], timeout=60)
    data = target.read_bytes()
    magic, width, height, maxval, pixels = data.split(maxsplit=4)
    assert magic == b"P5" and maxval == b"255"
    return numpy.frombuffer(pixels[:int(width) * int(height)], dtype=numpy.uint8).reshape(int(height), int(width))


class SideBySidePng(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.workdir = h.make_workdir(cls.__name__)
        cls.gateway = h.Gateway(cls.workdir / "gateway", upstream_port=h.free_port())
        cls.gateway.write_config()
        cls.original = h.test_file("ct_le.dcm")
        cls.encrypted = cls.workdir / "pacs-copy.dcm"
        cls.restored = cls.workdir / "restored.dcm"
        cls.gateway.encrypt(cls.original, cls.encrypted)
        cls.gateway.decrypt(cls.encrypted, cls.restored)
        assert cls.restored.is_file(), "pacsgw decrypt wrote nothing"

    @classmethod
    def tearDownClass(cls):
        if not h.keep_temp_dirs():
            shutil.rmtree(cls.workdir, ignore_errors=True)

    def test_left_is_noise_right_is_the_original_rendering(self):
        out = self.workdir / "side-by-side.png"
        result = h.run_tool([SCRIPT, self.encrypted, self.restored, out], timeout=120)
        self.assertIn("PACS copy on the left", result.output)
        picture = decode_png(out)
        original = dcm2pnm_grey(self.original, self.workdir / "original.pgm")
        rows, cols = original.shape
        self.assertEqual(picture.shape, (rows, 2 * cols + GAP, 3))
        left, gap, right = picture[:, :cols], picture[:, cols:cols + GAP], picture[:, cols + GAP:]
        self.assertTrue((gap == 255).all())
        # Grey rendered as RGB: the three channels agree.
        self.assertTrue((right[..., 0] == right[..., 1]).all() and (right[..., 0] == right[..., 2]).all())
        numpy.testing.assert_array_equal(right[..., 0], original)
        # The PACS copy has nothing of the image in it: no correlation with the original rendering.
        correlation = numpy.corrcoef(left[..., 0].ravel().astype(float), original.ravel().astype(float))[0, 1]
        self.assertLess(abs(correlation), 0.05)
        self.assertGreater(left[..., 0].std(), 50)  # noise over the whole grey range

    def test_a_file_dcm2pnm_cannot_render_is_an_error(self):
        junk = self.workdir / "not-dicom.dcm"
        junk.write_bytes(b"not a DICOM file")
        out = self.workdir / "never.png"
        result = h.run_tool([SCRIPT, junk, self.restored, out], timeout=60)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("could not render", result.output)
        self.assertFalse(out.exists())


if __name__ == "__main__":
    h.main()
