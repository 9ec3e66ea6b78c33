#!/usr/bin/env python3
"""Long command-line work shows progress on a terminal and stays quiet elsewhere: `pacsgw encrypt` and
`decrypt` of a folder (every file under IN to the same path under OUT, bit-exact round trip, one bad
file reported without stopping the others) and `pacsgw eval`. Output read through pipes must hold no
control characters; output on a pseudo-terminal (python's pty module) must hold the progress line
with items, MB/s and ETA.

Run alone:  PACSGW_BIN=build/pacsgw python3 tests/integration/test_cli_progress.py -v
"""

import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pacsgw_harness as h  # noqa: E402
import retrieve_helpers as rh  # noqa: E402

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # anything but tab and newline


def piped(*args, timeout: float = 300) -> h.ToolResult:
    return h.run_tool([h.pacsgw_bin(), *args], timeout=timeout)


def on_terminal(*args, timeout: float = 300):
    """Runs pacsgw with stdin, stdout and stderr on a pseudo-terminal; (exit status, output)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([str(h.pacsgw_bin()), *map(str, args)], stdin=slave, stdout=slave, stderr=slave,
                            env=h.tool_env(None), close_fds=True)
    os.close(slave)
    output = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
            raise AssertionError(f"timed out after {timeout} s: pacsgw {' '.join(map(str, args))}\n{output.decode()}")
        return proc.wait(timeout=30), output.decode(errors="replace")
    finally:
        os.close(master)


class ProgressTest(unittest.TestCase):
    def setUp(self):
        self.workdir = h.make_workdir("cli-progress")
        data_dir = self.workdir / "data"
        data_dir.mkdir(mode=0o700)
        self.config = self.workdir / "pacsgw.yaml"
        self.config.write_text(piped("config", "defaults", "--data-dir", data_dir).output)
        created = piped("keys", "init-master", "--config", self.config)
        self.assertEqual(created.returncode, 0, created.describe())
        # A study of three slices, two of them in a sub-folder.
        self.source = self.workdir / "study"
        study, series = rh.new_uid(), rh.new_uid()
        self.originals = [rh.derive(h.test_file("ct_le.dcm"), self.source / name, study, series, i + 1,
                                    "PROGRESS-1", "Progress^Test")
                          for i, name in enumerate(["1.dcm", "series/2.dcm", "series/3.dcm"])]

    def tearDown(self):
        if not h.keep_temp_dirs():
            shutil.rmtree(self.workdir, ignore_errors=True)

    def assert_no_control_characters(self, text: str):
        found = CONTROL.search(text)
        self.assertIsNone(found, f"control character {found.group()!r} in output not on a terminal:\n{text!r}"
                          if found else "")

    def test_folder_round_trip_piped_is_plain_text(self):
        encrypted, restored = self.workdir / "encrypted", self.workdir / "restored"
        result = piped("encrypt", "--config", self.config, self.source, encrypted)
        self.assertEqual(result.returncode, 0, result.describe())
        self.assert_no_control_characters(result.output)
        self.assertIn("encrypted 3 files", result.output)
        for original in self.originals:
            copy = encrypted / original.relative_to(self.source)
            self.assertTrue(h.key_reference(h.read(copy)), f"{copy}: no key-reference block")
            self.assertNotEqual(h.pixel_element_bytes(h.read(copy)), h.pixel_element_bytes(h.read(original)))

        result = piped("decrypt", "--config", self.config, encrypted, restored)
        self.assertEqual(result.returncode, 0, result.describe())
        self.assert_no_control_characters(result.output)
        self.assertIn("decrypted 3 files", result.output)
        for original in self.originals:
            back = restored / original.relative_to(self.source)
            self.assertEqual(h.pixel_element_bytes(h.read(back)), h.pixel_element_bytes(h.read(original)))

    def test_a_bad_file_is_reported_and_the_others_are_done(self):
        (self.source / "series" / "notes.txt").write_text("not DICOM\n")
        out = self.workdir / "encrypted"
        result = piped("encrypt", "--config", self.config, self.source, out)
        self.assertEqual(result.returncode, 1, result.describe())
        self.assertIn("failed", result.output)
        self.assertIn("notes.txt", result.output)
        self.assertIn("encrypted 3 files", result.output)
        self.assertFalse((out / "series" / "notes.txt").exists())
        self.assertEqual(len(list(out.rglob("*.dcm"))), 3)
        self.assertEqual([p for p in out.rglob("*") if ".tmp-" in p.name], [])

    def test_folder_encrypt_on_a_terminal_shows_progress(self):
        status, output = on_terminal("encrypt", "--config", self.config, self.source, self.workdir / "encrypted")
        self.assertEqual(status, 0, output)
        self.assertRegex(output, r"\rencrypt: \d/3 files, [0-9.]+ MB/s, ETA [0-9:-]+")
        self.assertIn("\rencrypt: 3/3 files", output)
        self.assertIn("encrypted 3 files", output)

    def test_eval_piped_is_plain_text_and_on_a_terminal_shows_progress(self):
        args = ["eval", "--backend", "aes-256-gcm", "--pairs", "1000", "--timing-seconds", "0.05", "--no-nist",
                "--differential-runs", "1"]
        result = piped(*args, "--json", self.workdir / "piped.json", self.source)
        self.assertEqual(result.returncode, 0, result.describe())
        self.assert_no_control_characters(result.output)
        self.assertTrue((self.workdir / "piped.json").is_file())

        status, output = on_terminal(*args, "--json", self.workdir / "tty.json", self.source)
        self.assertEqual(status, 0, output)
        self.assertRegex(output, r"\reval: \d/3 evaluations, [0-9.]+ MB/s, ETA [0-9:-]+")
        self.assertIn("\reval: 3/3 evaluations", output)


if __name__ == "__main__":
    h.main()
