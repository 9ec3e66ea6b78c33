#!/usr/bin/env python3
"""The operator-facing command line, run as an operator would: built-in defaults, configuration
checks, master key creation, offline encrypt / decrypt, and `pacsgw serve` on its built-in defaults
(what scripts/quickstart.sh runs).

Run alone:  PACSGW_BIN=build/pacsgw python3 tests/integration/test_cli.py -v
"""

import shutil
import signal
import stat
import subprocess
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pacsgw_harness as h  # noqa: E402


def pacsgw(*args, env=None, timeout=120) -> h.ToolResult:
    return h.run_tool([h.pacsgw_bin(), *args], timeout=timeout, env=env)


class CliTest(unittest.TestCase):

    def setUp(self):
        self.workdir = h.make_workdir("cli")
        self.data_dir = self.workdir / "data"
        self.config = self.workdir / "pacsgw.yaml"

    def tearDown(self):
        if not h.keep_temp_dirs():
            shutil.rmtree(self.workdir, ignore_errors=True)

    def write_defaults(self):
        self.data_dir.mkdir(mode=0o700)  # as deploy/install.sh does; init-master does not create it
        result = pacsgw("config", "defaults", "--data-dir", self.data_dir)
        self.assertEqual(result.returncode, 0, result.describe())
        self.config.write_text(result.output)
        return result.output

    def test_defaults_describe_the_quick_start_setup(self):
        text = self.write_defaults()
        for expected in ("ae_title: GATEWAY", "port: 11112", "ae_title: ORTHANC", "port: 4242",
                         f"data_dir: {self.data_dir}", "backend: aes-256-gcm", "ae_title: CT1",
                         "ae_title: STORESCU", "ae_title: WS1"):
            self.assertIn(expected, text, f"`pacsgw config defaults` lacks '{expected}':\n{text}")

    def test_config_check_guides_to_a_master_key_then_says_ok(self):
        self.write_defaults()
        missing = pacsgw("config", "check", "--config", self.config)
        self.assertEqual(missing.returncode, 1, missing.describe())
        self.assertIn("init-master", missing.output, "the problem report should say how to create the key")

        created = pacsgw("keys", "init-master", "--config", self.config)
        self.assertEqual(created.returncode, 0, created.describe())
        key_file = self.data_dir / "master.key"
        self.assertTrue(key_file.is_file(), created.describe())
        self.assertEqual(stat.S_IMODE(key_file.stat().st_mode), 0o600, "master key file must be mode 0600")
        before = key_file.read_bytes()
        again = pacsgw("keys", "init-master", "--config", self.config)
        self.assertEqual(again.returncode, 0, again.describe())
        self.assertEqual(key_file.read_bytes(), before, "init-master must never replace an existing key")

        ok = pacsgw("config", "check", "--config", self.config)
        self.assertEqual(ok.returncode, 0, ok.describe())
        self.assertIn("OK", ok.output)

        key_file.chmod(0o644)
        loose = pacsgw("config", "check", "--config", self.config)
        self.assertEqual(loose.returncode, 1, "a group/world-readable master key must be reported")
        self.assertIn("master_key_file", loose.output, loose.describe())

    def test_config_check_lists_every_problem(self):
        self.config.write_text('gateway: { ae_title: "THIS AE TITLE IS TOO LONG", port: 70000 }\nsurprise: 1\n')
        result = pacsgw("config", "check", "--config", self.config)
        self.assertEqual(result.returncode, 1, result.describe())
        for key in ("gateway.ae_title", "gateway.port", "surprise", "upstream", "keystore"):
            self.assertIn(key, result.output, f"no line about {key}:\n{result.output}")

    def test_offline_encrypt_decrypt_round_trip(self):
        self.write_defaults()
        self.assertEqual(pacsgw("keys", "init-master", "--config", self.config).returncode, 0)
        original = h.fresh_copy(h.test_file("ct_le.dcm"), self.workdir / "in")
        encrypted = self.workdir / "encrypted.dcm"
        restored = self.workdir / "restored.dcm"
        result = pacsgw("encrypt", "--config", self.config, original, encrypted)
        self.assertEqual(result.returncode, 0, result.describe())
        ds = h.read(encrypted)
        self.assertTrue(h.key_reference(ds), "encrypt wrote no key-reference block")
        self.assertNotEqual(h.pixel_element_bytes(ds), h.pixel_element_bytes(h.read(original)))

        listed = pacsgw("keys", "list", "--config", self.config)
        self.assertEqual(listed.returncode, 0, listed.describe())
        self.assertIn(str(h.read(original).StudyInstanceUID), listed.output, "the study's key is not listed")

        result = pacsgw("decrypt", "--config", self.config, encrypted, restored)
        self.assertEqual(result.returncode, 0, result.describe())
        self.assertEqual(h.pixel_element_bytes(h.read(restored)), h.pixel_element_bytes(h.read(original)))

        # A plaintext object is not silently "decrypted".
        plain = pacsgw("decrypt", "--config", self.config, original, self.workdir / "nothing.dcm")
        self.assertNotEqual(plain.returncode, 0, plain.describe())
        self.assertFalse((self.workdir / "nothing.dcm").exists())

        # Another master key cannot open this keystore, and says so.
        other = self.workdir / "other.yaml"
        other.write_text(self.config.read_text().replace(str(self.data_dir / "master.key"),
                                                         str(self.workdir / "other.key")))
        self.assertEqual(pacsgw("keys", "init-master", "--config", other).returncode, 0)
        wrong = pacsgw("decrypt", "--config", other, encrypted, self.workdir / "wrong.dcm")
        self.assertNotEqual(wrong.returncode, 0, wrong.describe())
        self.assertFalse((self.workdir / "wrong.dcm").exists())

    def test_serve_on_built_in_defaults(self):
        # What scripts/quickstart.sh runs: no --config, PACSGW_DATA_DIR decides where keys live.
        if h.port_open(11112):
            self.skipTest("127.0.0.1:11112 is in use (a quick-start gateway running?)")
        env = h.tool_env({"PACSGW_DATA_DIR": str(self.data_dir)})
        log_path = self.workdir / "serve.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([str(h.pacsgw_bin()), "serve"], stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 60
            while "listening on" not in h.tail(log_path, 10**6):
                self.assertIsNone(proc.poll(), f"serve exited early:\n{h.tail(log_path)}")
                self.assertLess(time.monotonic(), deadline, f"serve never listened:\n{h.tail(log_path)}")
                time.sleep(0.05)
            text = h.tail(log_path, 10**6)
            self.assertIn("127.0.0.1:11112", text)
            key_file = self.data_dir / "master.key"
            self.assertTrue(key_file.is_file(), "serve on defaults generated no master key")
            self.assertEqual(stat.S_IMODE(key_file.stat().st_mode), 0o600)
            self.assertIn("WARNING", text, "a generated master key must be announced loudly")
            echo = h.run_tool(["echoscu", "-v", "-aec", "GATEWAY", "-aet", "CT1", h.LOOPBACK, "11112"])
            self.assertIn("Received Echo Response (Success)", echo.output, echo.describe())
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = "killed after 30 s"
        self.assertEqual(code, 0, f"serve did not stop cleanly on SIGTERM:\n{h.tail(log_path)}")


if __name__ == "__main__":
    h.main()
