"""What the key-custody tests share: a gateway with an escrow journal, one Orthanc per test class with
gateways started per test, storing a fresh study and checking that the PACS copy decrypts bit-exact."""

import shutil
import sys
from pathlib import Path

import pacsgw_harness as h


def with_escrow(yaml: str, master_key_path: Path, escrow_dir: Path) -> str:
    """The gateway configuration `yaml` with keystore.escrow_dir set."""
    line = f"  master_key_file: {h._yaml_scalar(master_key_path)}\n"
    assert line in yaml, "the configuration has no master_key_file line to extend"
    return yaml.replace(line, line + f"  escrow_dir: {h._yaml_scalar(escrow_dir)}\n")


class EscrowMixin:
    """For a Gateway class: its keys are escrowed in `escrow_dir`, outside its workdir (as another disk
    would be). Pass escrow_dir as a keyword argument."""

    def __init__(self, *args, escrow_dir: Path, **kwargs):
        super().__init__(*args, **kwargs)
        self.escrow_dir = Path(escrow_dir)

    def config_yaml(self) -> str:
        return with_escrow(super().config_yaml(), self.master_key_path, self.escrow_dir)

    def write_config(self) -> Path:
        self.escrow_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return super().write_config()


class EscrowGateway(EscrowMixin, h.Gateway):
    """A gateway on its SQLite keystore that escrows its keys."""


class CustodyTestCase(h.LogDumpingTestCase):
    """One Orthanc for the class (plus whatever `start_class_peers` adds); every test starts its own
    gateways, registered with `adopt` so their logs are dumped on failure and they stop at teardown."""

    @classmethod
    def start_class_peers(cls):
        """Hook for subclasses: start more class-wide peers (after cls.workdir exists, before Orthanc)."""

    @classmethod
    def orthanc_options(cls) -> dict:
        """Hook for subclasses: extra keyword arguments for h.Orthanc (called after start_class_peers)."""
        return {}

    @classmethod
    def setUpClass(cls):
        cls.failed = False
        cls.workdir = h.make_workdir(cls.__name__)
        cls.logs = {}
        cls.pacs = None
        try:
            cls.start_class_peers()
            cls.pacs = h.Orthanc(cls.workdir / "pacs", **cls.orthanc_options())
            cls.logs["Orthanc"] = cls.pacs.log_path
            cls.pacs.start()
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def stop_class_peers(cls):
        """Hook for subclasses: stop what start_class_peers started."""

    @classmethod
    def tearDownClass(cls):
        if cls.pacs:
            cls.pacs.stop()
        cls.stop_class_peers()
        if cls.failed or h.keep_temp_dirs():
            sys.stderr.write(f"\nlogs and files kept in {cls.workdir}\n")
        else:
            shutil.rmtree(cls.workdir, ignore_errors=True)

    def setUp(self):
        self.gateways = []

    def tearDown(self):
        for gateway in self.gateways:
            gateway.stop()

    def work_dir(self) -> Path:
        """This test's own directory inside the class's."""
        return self.workdir / self.id().rsplit(".", 1)[-1]

    def adopt(self, gateway, name: str):
        type(self).logs[f"pacsgw {name}"] = gateway.log_path
        self.gateways.append(gateway)
        return gateway

    def store_study(self, gateway, name: str = "ct_le.dcm"):
        """Sends a fresh copy through the gateway; returns (original, the PACS's encrypted copy)."""
        work = gateway.workdir / "files"
        sent = h.fresh_copy(h.test_file(name), work)
        result = h.storescu(gateway.port, [sent])
        self.assertTrue(result.all_succeeded(1), result.describe())
        stored = self.pacs.download_by_uid(h.sop_instance_uid(sent), work / f"pacs-{sent.name}")
        self.assertTrue(h.key_reference(h.read(stored)), "the PACS copy carries no key reference")
        self.assertNotEqual(h.pixel_element_bytes(h.read(stored)), h.pixel_element_bytes(h.read(sent)))
        return sent, stored

    def assert_decrypts(self, gateway, original: Path, stored: Path):
        """`pacsgw decrypt` of the PACS copy with this gateway's keystore gives the original pixels."""
        restored = stored.parent / f"restored-{gateway.workdir.name}-{stored.name}"
        result = gateway.decrypt(stored, restored)
        self.assertEqual(result.returncode, 0, result.describe())
        self.assertEqual(h.pixel_element_bytes(h.read(restored)), h.pixel_element_bytes(h.read(original)),
                         "decrypted pixels differ from the original")
        restored.unlink()

    def key_id(self, path: Path) -> str:
        return h.element_text(h.key_reference(h.read(path))[0x03])
