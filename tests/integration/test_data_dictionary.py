#!/usr/bin/env python3
"""dicom/pacsgw.dic, the DCMTK data dictionary for the key-reference block: with it on DCMDICTPATH,
dcmdump names every element of a file `pacsgw encrypt` wrote (and gives implicit-VR files the right
VRs); without it they are "Unknown Tag & Data". The dictionary must agree with the codec's own table.

Run alone:  PACSGW_BIN=build/pacsgw python3 tests/integration/test_data_dictionary.py -v
"""

import re
import shutil
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pacsgw_harness as h  # noqa: E402

DICTIONARY = h.REPO_ROOT / "dicom" / "pacsgw.dic"
KEYREF_SOURCE = h.REPO_ROOT / "codecs" / "key_reference.cpp"
DUMP_LINE = re.compile(r"^\(0077,10([0-9a-f]{2})\) (\w\w|\?\?) .*#\s*\d+, [\d-]+ (\S.*)$")


def dcmtk_default_dictionaries() -> list:
    """The dictionaries DCMTK loads by default (Debian: dicom.dic and private.dic)."""
    found = sorted(Path("/usr/share").glob("libdcmtk*/dicom.dic"))
    if not found:
        raise FileNotFoundError("DCMTK's dicom.dic not found under /usr/share/libdcmtk*/ (package libdcmtk17)")
    return [str(found[-1]), str(found[-1].with_name("private.dic"))]


def dump_block(path: Path, with_dictionary: bool) -> dict:
    """{element offset: (VR, name)} of the key-reference block as dcmdump prints it."""
    env = None
    if with_dictionary:
        env = h.tool_env({"DCMDICTPATH": ":".join(dcmtk_default_dictionaries() + [str(DICTIONARY)])})
    result = h.run_tool(["dcmdump", "-q", path], env=env, timeout=60)
    block = {}
    for line in result.output.splitlines():
        m = DUMP_LINE.match(line.strip())
        if m:
            block[int(m.group(1), 16)] = (m.group(2), m.group(3).strip())
    return block


class DataDictionary(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.workdir = h.make_workdir(cls.__name__)
        cls.gateway = h.Gateway(cls.workdir / "gateway", upstream_port=h.free_port())
        cls.gateway.write_config()
        cls.encrypted = cls.workdir / "encrypted.dcm"
        result = cls.gateway.encrypt(h.test_file("ct_le.dcm"), cls.encrypted)
        if not cls.encrypted.is_file():
            raise AssertionError(f"pacsgw encrypt wrote nothing:\n{result.describe()}")
        cls.implicit = cls.workdir / "encrypted-implicit.dcm"
        h.run_tool(["dcmconv", "+ti", cls.encrypted, cls.implicit], timeout=60)

    def codec_table(self) -> dict:
        """{offset: (VR, keyword)} from the codec's dictionary table."""
        names = dict(re.findall(r"(kKeyRef\w+) = (0x[0-9A-Fa-f]+)", (h.REPO_ROOT / "codecs" / "key_reference.h")
                                .read_text()))
        rows = re.findall(r'\{(kKeyRef\w+), EVR_(\w\w), "[^"]*", "(\w+)"', KEYREF_SOURCE.read_text())
        return {int(names[const], 16): (vr, keyword) for const, vr, keyword in rows}

    def aes_gcm_elements(self) -> dict:
        """The codec table's rows an aes-256-gcm object carries: bb01-bb0D (a lossless backend writes neither
        the backend payload bb0E nor the exact-retrieval envelope bb0F)."""
        return {offset: row for offset, row in self.codec_table().items() if offset <= 0x0D}

    def dictionary_file(self) -> dict:
        entries = {}
        for line in DICTIONARY.read_text().splitlines():
            if line.startswith("#") or not line.strip():
                continue
            tag, vr, keyword, vm, version = line.split("\t")
            m = re.fullmatch(r'\(0077,"PACSGW KEYREF 1",([0-9a-f]{2})\)', tag)
            self.assertIsNotNone(m, line)
            self.assertEqual(version, "PrivateTag")
            entries[int(m.group(1), 16)] = (vr, keyword)
        return entries

    @classmethod
    def tearDownClass(cls):
        if not h.keep_temp_dirs():
            shutil.rmtree(cls.workdir, ignore_errors=True)

    def test_dictionary_matches_the_codec_table(self):
        table = self.codec_table()
        self.assertEqual(len(table), 15)  # format 3: bb01-bb0F
        self.assertEqual(self.dictionary_file(), table)

    def test_without_the_dictionary_the_elements_are_unknown(self):
        block = dump_block(self.encrypted, with_dictionary=False)
        self.assertEqual(len(block), 13, block)
        self.assertTrue(all(name == "Unknown Tag & Data" for _, name in block.values()), block)

    def test_dcmdump_names_every_element_with_the_dictionary(self):
        block = dump_block(self.encrypted, with_dictionary=True)
        self.assertEqual(block, self.aes_gcm_elements())

    def test_implicit_vr_files_get_their_vrs_from_the_dictionary(self):
        without = dump_block(self.implicit, with_dictionary=False)
        self.assertEqual({vr for vr, _ in without.values()}, {"??"})  # dcmdump: VR unknown
        self.assertEqual(dump_block(self.implicit, with_dictionary=True), self.aes_gcm_elements())


if __name__ == "__main__":
    h.main()
