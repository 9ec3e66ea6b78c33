"""The running gateway keeps its master key out of core dumps and out of /proc/<pid>/environ.

A gateway reads its master key from an environment variable (keystore.master_key_env); once it
listens, the variable's value must be gone from its environment block and its core size limit must
be 0 (it also marks itself non-dumpable, checked in the unit tests).
"""

import os
import resource
import secrets
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pacsgw_harness as h  # noqa: E402

VARIABLE = "PACSGW_HYGIENE_TEST_MASTER_KEY"


class EnvKeyGateway(h.Gateway):
    def config_yaml(self) -> str:
        return h.Gateway.config_yaml(self).replace(
            f"  master_key_file: {h._yaml_scalar(self.master_key_path)}", f"  master_key_env: {VARIABLE}")


class ProcessHygieneTest(h.LogDumpingTestCase):
    def setUp(self):
        self.workdir = h.make_workdir("hygiene")
        self.key = secrets.token_hex(32)
        os.environ[VARIABLE] = self.key
        # Start the gateway with core dumps allowed, so a limit of 0 is the gateway's own doing.
        self.core_limit = resource.getrlimit(resource.RLIMIT_CORE)
        resource.setrlimit(resource.RLIMIT_CORE, (1 << 30, max(1 << 30, self.core_limit[1])
                                                  if self.core_limit[1] != resource.RLIM_INFINITY
                                                  else resource.RLIM_INFINITY))
        self.addCleanup(resource.setrlimit, resource.RLIMIT_CORE, self.core_limit)
        self.gateway = EnvKeyGateway(self.workdir / "gateway", upstream_port=h.free_port())
        self.logs = {"pacsgw serve": self.gateway.log_path}
        self.gateway.start()

    def tearDown(self):
        os.environ.pop(VARIABLE, None)
        self.gateway.stop()
        if not h.keep_temp_dirs():
            import shutil
            shutil.rmtree(self.workdir, ignore_errors=True)

    def test_master_key_not_in_environment_and_no_core_dumps(self):
        self.assertIn(f"master_key_env: {VARIABLE}", self.gateway.config_path.read_text())
        pid = self.gateway.proc.pid
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except PermissionError:
            # Not root: a non-dumpable process's environ belongs to root, so nobody else can read it.
            self.assertNotEqual(os.geteuid(), 0)
            environ = b""
        self.assertFalse(self.key.encode() in environ, "the master key is still in /proc/<pid>/environ")
        self.assertFalse(VARIABLE.encode() + b"=" + self.key[:8].encode() in environ)
        limits = Path(f"/proc/{pid}/limits").read_text()
        core = next(line for line in limits.splitlines() if line.startswith("Max core file size"))
        self.assertEqual(core.split()[4:6], ["0", "0"], core)
        self.assertTrue(self.gateway.alive())


if __name__ == "__main__":
    unittest.main()
