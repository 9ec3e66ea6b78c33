#!/usr/bin/env python3
"""Objects already in a PACS must stay readable: every build must decrypt the committed fixtures
(tests/data/fixtures/encrypted-*/, made by scripts/make-compat-fixture.sh with an earlier build) to
the original pixel data, with the master key and keystore committed next to them.

Also: a thumbnail (Icon Image Sequence) never reaches the PACS in the clear, wherever it is nested.

Run alone:  PACSGW_BIN=build/pacsgw python3 tests/integration/test_compat_fixture.py -v
"""

import shutil
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pacsgw_harness as h  # noqa: E402

FIXTURES = h.REPO_ROOT / "tests" / "data" / "fixtures"
ICON_IMAGE_SEQUENCE = 0x00880200


def pacsgw(*args) -> h.ToolResult:
    return h.run_tool([h.pacsgw_bin(), *args], timeout=120)


class Workdir(unittest.TestCase):
    def setUp(self):
        self.workdir = h.make_workdir(self._testMethodName)

    def tearDown(self):
        if not h.keep_temp_dirs():
            shutil.rmtree(self.workdir, ignore_errors=True)

    def config_for(self, master_key: Path, keystore: Path) -> Path:
        """The default configuration with the given master key and keystore (copied, private)."""
        data = self.workdir / "data"
        data.mkdir(mode=0o700)
        shutil.copyfile(master_key, data / "master.key")
        (data / "master.key").chmod(0o600)
        if keystore is not None:
            shutil.copyfile(keystore, data / "keystore.db")
            (data / "keystore.db").chmod(0o600)
        config = self.workdir / "pacsgw.yaml"
        result = pacsgw("config", "defaults", "--data-dir", data)
        self.assertEqual(result.returncode, 0, result.describe())
        config.write_text(result.output)
        return config


class CompatFixtureTest(Workdir):

    def fixtures(self):
        found = sorted(p for p in FIXTURES.glob("encrypted-*") if p.is_dir())
        self.assertTrue(found, f"no fixtures in {FIXTURES}")
        return found

    def test_every_committed_fixture_still_decrypts(self):
        original = h.read(h.cache_dir() / "src" / "pydicom" / "test_files" / "CT_small.dcm")
        for fixture in self.fixtures():
            with self.subTest(fixture=fixture.name):
                encrypted = fixture / "ct_small_encrypted.dcm"
                stored = h.read(encrypted)
                self.assertTrue(h.key_reference(stored), f"{fixture.name}: fixture has no key-reference block")
                self.assertNotEqual(h.pixel_element_bytes(stored), h.pixel_element_bytes(original),
                                    f"{fixture.name}: fixture pixel data is plaintext")
                config = self.config_for(fixture / "test-master.key", fixture / "keystore.db")
                verify = pacsgw("keys", "verify", "--config", config)
                self.assertEqual(verify.returncode, 0, verify.describe())
                restored = self.workdir / "restored.dcm"
                result = pacsgw("decrypt", "--config", config, encrypted, restored)
                self.assertEqual(result.returncode, 0, result.describe())
                got = h.read(restored)
                self.assertEqual(str(got.SOPInstanceUID), str(original.SOPInstanceUID))
                self.assertEqual([e.tag for e in got if e.tag.group == h.KEYREF_GROUP], [])
                self.assertTrue(h.native_pixel_values(got).tobytes() == h.native_pixel_values(original).tobytes(),
                                f"{fixture.name}: decrypted pixel values differ from CT_small.dcm")
                shutil.rmtree(self.workdir)
                self.workdir.mkdir()

    def test_wrong_master_key_does_not_decrypt_the_fixture(self):
        fixture = self.fixtures()[0]
        other = self.workdir / "other.key"
        other.write_text("11" * 32 + "\n")
        config = self.config_for(other, fixture / "keystore.db")
        restored = self.workdir / "restored.dcm"
        result = pacsgw("decrypt", "--config", config, fixture / "ct_small_encrypted.dcm", restored)
        self.assertNotEqual(result.returncode, 0, result.describe())
        self.assertFalse(restored.exists() and h.PIXEL_DATA_TAG in h.read(restored)
                         and h.pixel_element_bytes(h.read(restored)) ==
                         h.pixel_element_bytes(h.read(h.cache_dir() / "src/pydicom/test_files/CT_small.dcm")))


class IconImageTest(Workdir):

    def test_icon_image_sequences_are_removed_wherever_nested(self):
        source = h.read(h.test_file("ct_le.dcm"))
        icon = h.pydicom.Dataset()
        icon.Rows, icon.Columns, icon.SamplesPerPixel = 8, 8, 1
        icon.PhotometricInterpretation, icon.BitsAllocated, icon.BitsStored, icon.HighBit = "MONOCHROME2", 8, 8, 7
        icon.PixelRepresentation = 0
        icon.PixelData = bytes(range(64))
        source.IconImageSequence = h.pydicom.Sequence([icon])
        item = h.pydicom.Dataset()
        item.ReferencedSOPInstanceUID = "1.2.3"
        item.IconImageSequence = h.pydicom.Sequence([icon])
        source.ReferencedImageSequence = h.pydicom.Sequence([item])
        with_icons = self.workdir / "with-icons.dcm"
        source.save_as(str(with_icons), write_like_original=False)
        self.assertIn(ICON_IMAGE_SEQUENCE, h.read(with_icons))

        config = self.config_for(h.REPO_ROOT / "tests" / "data" / "fixtures" / "encrypted-v1" / "test-master.key", None)
        encrypted = self.workdir / "encrypted.dcm"
        result = pacsgw("encrypt", "--config", config, with_icons, encrypted)
        self.assertEqual(result.returncode, 0, result.describe())
        out = h.read(encrypted)
        self.assertTrue(h.key_reference(out), "not encrypted")
        self.assertNotIn(ICON_IMAGE_SEQUENCE, out, "top-level Icon Image Sequence reached the output")
        self.assertNotIn(ICON_IMAGE_SEQUENCE, out.ReferencedImageSequence[0], "nested Icon Image Sequence kept")
        self.assertNotIn(bytes(range(64)), encrypted.read_bytes(), "thumbnail pixels still in the file")


if __name__ == "__main__":
    h.main()
