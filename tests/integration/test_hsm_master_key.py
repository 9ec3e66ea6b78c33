#!/usr/bin/env python3
"""The master key in a PKCS#11 token (SoftHSM2, in a private token directory): the gateway stores into a
real Orthanc and a decrypt workstation retrieves bit-exact, the token's key is sensitive and never
extractable, no master key bytes reach the keystore, the data directory or the logs, start errors are
clear, and `keys rotate-kek` moves an existing keystore from a key file into the token and back without
touching the PACS.

Run alone:  PACSGW_BIN=build/pacsgw python3 tests/integration/test_hsm_master_key.py -v
"""

import os
import shutil
import sqlite3
import subprocess
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pacsgw_harness as h  # noqa: E402
import custody_helpers as ch  # noqa: E402
import pg_helpers  # noqa: E402
import retrieve_helpers as rh  # noqa: E402

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
TOKEN = "pacsgw-it"
PIN = "4711-it-pin"


def pkcs11_tool(*args, pin: str = PIN) -> h.ToolResult:
    return h.run_tool(["pkcs11-tool", "--module", MODULE, "--token-label", TOKEN, "--login", "--pin", pin, *args],
                      timeout=60)


class HsmGateway(h.Gateway):
    """A gateway whose keystore.master_key is the PKCS#11 key `key_label` (None: the harness's key file)."""

    def __init__(self, workdir: Path, key_label: str = "pacsgw-kek", pin_file: Path = None, **kwargs):
        super().__init__(workdir, **kwargs)
        self.key_label = key_label
        self.pin_file = Path(pin_file) if pin_file else self.workdir / "token.pin"

    def config_yaml(self) -> str:
        text = super().config_yaml()
        if self.key_label is None:
            return text
        q = h._yaml_scalar
        block = ("  master_key:\n    provider: pkcs11\n"
                 f"    module: {q(MODULE)}\n    token_label: {q(TOKEN)}\n    key_label: {q(self.key_label)}\n"
                 f"    pin_file: {q(self.pin_file)}\n")
        line = f"  master_key_file: {q(self.master_key_path)}\n"
        assert line in text
        return text.replace(line, block)

    def write_config(self) -> Path:
        if self.key_label is None:
            return super().write_config()
        # No key file at all: nothing to create beside the configuration.
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.pin_file.exists():
            fd = os.open(self.pin_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(PIN + "\n")
        self.config_path.write_text(self.config_yaml())
        return self.config_path


class HsmPostgresGateway(pg_helpers.PostgresGateway, HsmGateway):
    """The token master key with the shared PostgreSQL keystore."""


class HsmMasterKey(ch.CustodyTestCase):
    @classmethod
    def start_class_peers(cls):
        if not Path(MODULE).is_file():
            raise AssertionError(f"{MODULE} is missing: install softhsm2 (scripts/setup.sh)")
        tokens = cls.workdir / "tokens"
        tokens.mkdir(mode=0o700)
        conf = cls.workdir / "softhsm2.conf"
        conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
        os.environ["SOFTHSM2_CONF"] = str(conf)  # inherited by the gateway, its CLI and pkcs11-tool
        init = h.run_tool(["softhsm2-util", "--init-token", "--free", "--label", TOKEN, "--pin", PIN,
                           "--so-pin", "so-" + PIN], timeout=60)
        if init.returncode != 0:
            raise AssertionError(init.describe())
        # One gateway runs at a time, always on this port, which Orthanc knows as the retrieve destination.
        cls.gateway_port = h.free_port()

    @classmethod
    def orthanc_options(cls) -> dict:
        return {"gateway_port": cls.gateway_port}

    # helpers ------------------------------------------------------------------------------------
    def new_gateway(self, name: str, **kwargs) -> HsmGateway:
        gateway = HsmGateway(self.work_dir() / name, upstream_port=self.pacs.dicom_port, port=self.gateway_port,
                             workstations=[("WS1", h.LOOPBACK, h.free_port(), "decrypt")], **kwargs)
        return self.adopt(gateway, name)

    def hsm_init(self, gateway: HsmGateway):
        gateway.write_config()
        result = gateway.cli("keys", "hsm-init", "--config", gateway.config_path)
        self.assertEqual(result.returncode, 0, result.describe())
        self.assertIn("never extractable", result.output)

    def assert_retrieves_bit_exact(self, gateway: h.Gateway, original: Path):
        """C-GET through the gateway by a decrypt workstation."""
        study_uid = str(h.read(original).StudyInstanceUID)
        directory = gateway.workdir / "received" / study_uid
        result = rh.getscu(gateway.port, directory, {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": study_uid},
                           calling="WS1")
        files = [p for p in directory.iterdir() if p.is_file()] if directory.is_dir() else []
        self.assertEqual(len(files), 1, result.output if hasattr(result, "output") else str(result))
        received = h.read(files[0])
        self.assertEqual(h.pixel_element_bytes(received), h.pixel_element_bytes(h.read(original)),
                         "retrieved pixels differ from the original")
        self.assertFalse(h.key_reference(received), "the retrieved copy still carries the key reference")

    def serve_output(self, gateway: HsmGateway) -> subprocess.CompletedProcess:
        gateway.write_config()
        return subprocess.run([str(h.pacsgw_bin()), "serve", "--config", str(gateway.config_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60,
                              env=h.tool_env())

    def wrap_formats(self, gateway: h.Gateway) -> set:
        with sqlite3.connect(gateway.keystore_path) as db:
            return {row[0] for row in db.execute("SELECT wrap_format FROM data_keys")}

    # tests --------------------------------------------------------------------------------------
    def test_store_and_retrieve_with_the_master_key_in_the_token(self):
        gateway = self.new_gateway("gw")
        self.hsm_init(gateway)
        listing = pkcs11_tool("--list-objects", "--type", "secrkey")
        self.assertEqual(listing.returncode, 0, listing.describe())
        entry = listing.output.split("label:      pacsgw-kek", 1)
        self.assertEqual(len(entry), 2, listing.output)
        access = entry[1].split("Access:", 1)[1].splitlines()[0]
        self.assertIn("sensitive", access)
        self.assertIn("never extractable", access)
        self.assertNotIn("  VALUE:", listing.output, "the token revealed a key's value")

        gateway.start()
        self.assertNotIn(PIN, gateway.log())
        studies = [self.store_study(gateway, name) for name in ("ct_le.dcm", "mf_mr.dcm")]
        for original, _ in studies:
            self.assert_retrieves_bit_exact(gateway, original)
        self.assertEqual(gateway.stop(), 0)
        for original, stored in studies:
            self.assert_decrypts(gateway, original, stored)
        self.assertEqual(self.wrap_formats(gateway), {3}, "data keys must be wrapped inside the token")
        verify = gateway.cli("keys", "verify", "--config", gateway.config_path)
        self.assertEqual(verify.returncode, 0, verify.describe())
        self.assertIn("2 of 2 data keys unwrap", verify.output)
        self.assertFalse(gateway.master_key_path.exists())

        # Start errors: wrong PIN (never echoed), missing key.
        wrong = gateway.workdir / "wrong.pin"
        wrong.write_text("9999-wrong\n")
        wrong.chmod(0o600)
        gateway.pin_file = wrong
        out = self.serve_output(gateway)
        self.assertNotEqual(out.returncode, 0, out.stdout)
        self.assertIn("wrong PIN", out.stdout)
        self.assertNotIn("9999-wrong", out.stdout)
        gateway.pin_file = gateway.workdir / "token.pin"
        gateway.key_label = "no-such-key"
        out = self.serve_output(gateway)
        self.assertNotEqual(out.returncode, 0, out.stdout)
        self.assertIn("no secret key labelled 'no-such-key'", out.stdout)
        self.assertNotIn("listening on", out.stdout)

    def test_no_master_key_bytes_outside_the_token(self):
        """A key of known value, imported into the token as sensitive and non-extractable, so that the
        test can search every file the gateway wrote for it."""
        gateway = self.new_gateway("gw", key_label="imported-kek")
        gateway.write_config()
        secret = os.urandom(32)
        key_file = self.workdir / "import.key"  # outside the gateway's directories, deleted below
        key_file.write_bytes(secret)
        imported = pkcs11_tool("--write-object", key_file, "--type", "secrkey", "--key-type", "AES:32",
                               "--label", "imported-kek", "--sensitive", "--usage-decrypt")
        key_file.unlink()
        self.assertEqual(imported.returncode, 0, imported.describe())
        gateway.start()
        original, stored = self.store_study(gateway)
        self.assert_retrieves_bit_exact(gateway, original)
        self.assertEqual(gateway.stop(), 0)
        self.assert_decrypts(gateway, original, stored)
        needles = [secret, secret.hex().encode(), secret.hex().upper().encode()]
        scanned = 0
        for path in gateway.workdir.rglob("*"):
            if path.is_file():
                content = path.read_bytes()
                scanned += 1
                for needle in needles:
                    self.assertNotIn(needle, content, f"master key bytes found in {path}")
        self.assertGreaterEqual(scanned, 3)  # at least the keystore, its anchor and the log

    def test_rotate_kek_from_key_file_into_the_token_and_back(self):
        gateway = self.new_gateway("gw", key_label=None)  # starts with a master key file
        gateway.start()
        before = [self.store_study(gateway, name) for name in ("ct_le.dcm", "mf_mr.dcm")]
        self.assertEqual(gateway.stop(), 0)
        self.assertEqual(self.wrap_formats(gateway), {2})
        file_config = gateway.workdir / "file.yaml"
        shutil.copyfile(gateway.config_path, file_config)

        # The token configuration: same keystore and data directory, key in the token.
        gateway.key_label = "rotated-kek"
        self.hsm_init(gateway)
        hsm_config = gateway.workdir / "hsm.yaml"
        shutil.copyfile(gateway.config_path, hsm_config)
        rotate = gateway.cli("keys", "rotate-kek", "--config", file_config, "--new-config", hsm_config)
        self.assertEqual(rotate.returncode, 0, rotate.describe())
        self.assertIn("re-wrapped 2 data keys", rotate.output)
        self.assertEqual(self.wrap_formats(gateway), {3})

        # The old key file no longer opens the keystore; the token does, and the PACS was not touched.
        refused = gateway.cli("keys", "verify", "--config", file_config)
        self.assertNotEqual(refused.returncode, 0, refused.describe())
        self.assertIn("master key does not match", refused.output)
        pacs_before = self.pacs.instance_count()
        gateway.start()
        for original, stored in before:
            self.assert_retrieves_bit_exact(gateway, original)
        after = self.store_study(gateway)  # a new study under the token key
        self.assertEqual(gateway.stop(), 0)
        self.assertEqual(self.pacs.instance_count(), pacs_before + 1)

        # And back out of the token into a new key file.
        new_file = gateway.workdir / "master-2.key"
        back = gateway.cli("keys", "rotate-kek", "--config", hsm_config, "--new-master-key-file", new_file)
        self.assertEqual(back.returncode, 0, back.describe())
        self.assertEqual(self.wrap_formats(gateway), {2})
        gateway.key_label = None
        gateway.master_key_path = new_file
        gateway.start()
        for original, stored in before + [after]:
            self.assert_retrieves_bit_exact(gateway, original)
        self.assertEqual(gateway.stop(), 0)

    def test_postgres_keystore_with_the_master_key_in_the_token(self):
        postgres = pg_helpers.PostgresServer(self.workdir / "postgres")
        postgres.start()
        try:
            workdir = self.workdir / "pg" / "gw"
            gateway = HsmPostgresGateway(workdir, postgres.conninfo, key_label="pg-kek",
                                         upstream_port=self.pacs.dicom_port, port=self.gateway_port,
                                         workstations=[("WS1", h.LOOPBACK, h.free_port(), "decrypt")])
            type(self).logs["pacsgw pg"] = gateway.log_path
            self.gateways.append(gateway)
            self.hsm_init(gateway)
            gateway.start()
            original, stored = self.store_study(gateway)
            self.assert_retrieves_bit_exact(gateway, original)
            self.assertEqual(gateway.stop(), 0)
            self.assertEqual(postgres.query("SELECT string_agg(DISTINCT wrap_format::text, ',') FROM pacsgw_data_keys"),
                             "3")
            verify = gateway.cli("keys", "verify", "--config", gateway.config_path)
            self.assertEqual(verify.returncode, 0, verify.describe())
            self.assertIn("1 of 1 data keys unwrap", verify.output)
        finally:
            postgres.stop()


if __name__ == "__main__":
    unittest.main()
