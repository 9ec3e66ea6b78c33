#!/usr/bin/env python3
"""The container image, run the way docker/docker-compose.yml runs it: the gateway image next to an
Orthanc image on a private network (the compose file's addresses and configuration files), a study
sent from the host through the gateway container, ciphertext checked in the PACS container, a
bit-exact decrypted copy retrieved by a workstation on the host (C-GET), then the gateway container
removed and started again on the same keystore volume, which must still decrypt the study.

Building the images takes minutes (docs/operator-guide.md, "As a container"), so this test is opt-in:

  PACSGW_CONTAINER_TESTS=1 ctest --test-dir build -R test_container      # builds missing images first

It is skipped with a message when podman is not installed or the variable is not set. Images used:
localhost/pacsgw:${PACSGW_IMAGE_VARIANT:-aes-only} and localhost/pacsgw-orthanc:latest
(scripts/build-image.sh builds both).
"""

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import unittest
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pacsgw_harness as h  # noqa: E402
import retrieve_helpers as rh  # noqa: E402

DOCKER = h.REPO_ROOT / "docker"
VARIANT = os.environ.get("PACSGW_IMAGE_VARIANT", "aes-only")
GATEWAY_IMAGE = f"localhost/pacsgw:{VARIANT}"
ORTHANC_IMAGE = "localhost/pacsgw-orthanc:latest"
# docker/docker-compose.yml: network pacsnet 172.30.0.0/24, gateway .10, PACS .20, host side .1
SUBNET, BRIDGE, GATEWAY_IP, PACS_IP = "172.30.0.0/24", "172.30.0.1", "172.30.0.10", "172.30.0.20"
RUNTIME = ["--runtime", "runc"]


def podman(*args, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["podman", *map(str, args)], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(map(str, args))} failed ({result.returncode}):\n"
                             f"{result.stdout}{result.stderr}")
    return result


def skip_reason():
    if shutil.which("podman") is None:
        return "podman not installed (Debian packages podman runc); the container image is not tested"
    if os.environ.get("PACSGW_CONTAINER_TESTS") != "1":
        return ("container test is opt-in (building the images takes minutes): "
                "set PACSGW_CONTAINER_TESTS=1 to build missing images and run it")
    return None


def ensure_image(image: str, variant: str):
    if podman("image", "exists", image, check=False).returncode == 0:
        return
    build = subprocess.run([h.REPO_ROOT / "scripts" / "build-image.sh", variant], capture_output=True, text=True,
                           timeout=3600)
    if build.returncode != 0:
        raise AssertionError(f"scripts/build-image.sh {variant} failed:\n{build.stdout[-4000:]}{build.stderr[-4000:]}")


def wait_for(what: str, condition, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@unittest.skipIf(skip_reason() is not None, skip_reason() or "")
class ContainerTopology(h.LogDumpingTestCase):
    @classmethod
    def setUpClass(cls):
        ensure_image(GATEWAY_IMAGE, VARIANT)
        ensure_image(ORTHANC_IMAGE, "orthanc")
        cls.workdir = h.make_workdir(cls.__name__)
        suffix = secrets.token_hex(4)
        cls.net, cls.volume = f"pacsgw-test-net-{suffix}", f"pacsgw-test-data-{suffix}"
        cls.gateway_name, cls.pacs_name = f"pacsgw-test-gateway-{suffix}", f"pacsgw-test-pacs-{suffix}"
        cls.dicom_port, cls.metrics_port, cls.http_port = h.free_port(), h.free_port(), h.free_port()
        # The compose secret: 64 hex characters, mode 0600, owned by the image's uid 10001.
        cls.master_key = cls.workdir / "master.key"
        cls.master_key.write_text(secrets.token_hex(32) + "\n")
        os.chmod(cls.master_key, 0o600)
        os.chown(cls.master_key, 10001, 10001)
        cls.logs = {}
        try:
            podman("network", "create", "--subnet", SUBNET, "--gateway", BRIDGE, cls.net)
            podman("volume", "create", cls.volume)
            podman("run", "-d", *RUNTIME, "--name", cls.pacs_name, "--network", cls.net, "--ip", PACS_IP,
                   "-v", f"{DOCKER / 'orthanc.json'}:/etc/orthanc/orthanc.json:ro",
                   "-p", f"127.0.0.1:{cls.http_port}:8042", ORTHANC_IMAGE)
            wait_for("Orthanc's REST API", cls.pacs_answers, 60)
            cls.start_gateway()
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def start_gateway(cls):
        # As in the compose file: configuration and secret mounted read-only, keystore on the volume,
        # root file system read-only (as the Kubernetes manifests run it).
        podman("run", "-d", *RUNTIME, "--name", cls.gateway_name, "--network", cls.net, "--ip", GATEWAY_IP,
               "--add-host", f"pacs:{PACS_IP}", "--read-only",
               "-v", f"{DOCKER / 'pacsgw.yaml'}:/etc/pacsgw/pacsgw.yaml:ro",
               "-v", f"{cls.master_key}:/run/secrets/pacsgw_master_key:ro",
               "-v", f"{cls.volume}:/var/lib/pacsgw",
               "-p", f"127.0.0.1:{cls.dicom_port}:11112", "-p", f"127.0.0.1:{cls.metrics_port}:9090",
               GATEWAY_IMAGE)
        wait_for("the gateway to be ready (/health/ready)", cls.gateway_ready, 90)

    @classmethod
    def remove_gateway(cls):
        podman("stop", "-t", "30", cls.gateway_name, check=False, timeout=60)
        cls.last_gateway_log = podman("logs", cls.gateway_name, check=False).stderr
        podman("rm", "-f", "-v", cls.gateway_name, check=False)

    @classmethod
    def tearDownClass(cls):
        for name in (cls.gateway_name, cls.pacs_name):
            podman("rm", "-f", "-v", "-t", "5", name, check=False, timeout=60)  # -v: anonymous volumes too
        podman("volume", "rm", "-f", cls.volume, check=False)
        podman("network", "rm", "-f", cls.net, check=False)
        shutil.rmtree(cls.workdir, ignore_errors=True)

    @classmethod
    def pacs_answers(cls) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{cls.http_port}/system", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    @classmethod
    def gateway_ready(cls) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{cls.metrics_port}/health/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def pacs_json(self, path: str, body: bytes = None):
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=body)
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read())

    def gateway_log(self) -> str:
        result = podman("logs", self.gateway_name, check=False)
        return result.stdout + result.stderr

    def retrieve(self, study: str, directory: Path) -> list:
        # A decrypt workstation on the host (WS1 at the bridge address in docker/pacsgw.yaml).
        result = rh.getscu(self.dicom_port, directory, {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": study})
        files = sorted(directory.glob("*"))
        self.assertTrue(files, f"C-GET through the gateway container delivered nothing:\n{result}\n{self.gateway_log()}")
        return files

    def test_study_round_trip_and_keystore_survives_a_new_container(self):
        # 1. The image itself: unprivileged user, no compiler, health check present.
        self.assertEqual(podman("exec", self.gateway_name, "id", "-u").stdout.strip(), "10001")
        compilers = podman("run", "--rm", *RUNTIME, "--entrypoint", "bash", GATEWAY_IMAGE, "-c",
                           "command -v gcc cc g++ c++ clang cmake || true").stdout.strip()
        self.assertEqual(compilers, "")
        def healthchecks(node):  # wherever this podman version puts it in the inspect output
            if isinstance(node, dict):
                for key, value in node.items():
                    yield from ([value] if key.lower() == "healthcheck" else healthchecks(value))
            elif isinstance(node, list):
                for item in node:
                    yield from healthchecks(item)

        inspected = json.loads(podman("image", "inspect", GATEWAY_IMAGE).stdout)
        self.assertIn("/health/ready", json.dumps(list(healthchecks(inspected))))
        self.assertEqual(podman("healthcheck", "run", self.gateway_name, check=False).returncode, 0,
                         "the image's HEALTHCHECK fails on a ready gateway")

        # 2. A study from the host through the gateway container into the PACS container.
        source = self.workdir / "study"
        study, series = rh.new_uid(), rh.new_uid()
        originals = [rh.derive(h.test_file("ct_le.dcm"), source / f"{i}.dcm", study, series, i + 1,
                               "CONTAINER-1", "Container^Test") for i in range(3)]
        sent = h.storescu(self.dicom_port, originals, calling="CT1")
        self.assertTrue(sent.all_succeeded(3), f"{sent.describe()}\n{self.gateway_log()}")

        # 3. The PACS holds ciphertext with the key-reference block.
        pacs_copies = self.workdir / "pacs"
        pacs_copies.mkdir()
        for original in originals:
            uid = h.sop_instance_uid(original)
            found = self.pacs_json("/tools/lookup", uid.encode())
            ids = [r["ID"] for r in found if r["Type"] == "Instance"]
            self.assertEqual(len(ids), 1, f"{uid} not in the PACS")
            copy = pacs_copies / f"{uid}.dcm"
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/instances/{ids[0]}/file",
                                        timeout=30) as r:
                copy.write_bytes(r.read())
            stored = h.read(copy)
            block = h.key_reference(stored)
            self.assertIn(0x01, block, f"{uid}: no key-reference block in the PACS copy")
            self.assertEqual(h.element_text(block[0x01]), "aes-256-gcm")
            self.assertFalse((h.native_pixel_values(stored) == h.native_pixel_values(h.read(original))).all())

        # 4. A decrypt workstation gets the original pixels back, bit for bit.
        def check_bit_exact(directory: Path):
            received = {h.sop_instance_uid(p): p for p in self.retrieve(study, directory)}
            self.assertEqual(set(received), {h.sop_instance_uid(p) for p in originals})
            for original in originals:
                self.assertEqual(h.pixel_element_bytes(h.read(received[h.sop_instance_uid(original)])),
                                 h.pixel_element_bytes(h.read(original)))

        check_bit_exact(self.workdir / "retrieved-1")
        keys_before = podman("exec", self.gateway_name, "pacsgw", "keys", "list", "--config",
                             "/etc/pacsgw/pacsgw.yaml").stdout

        # 5. A new gateway container on the same volume: the study key is still there.
        self.remove_gateway()
        self.start_gateway()
        keys_after = podman("exec", self.gateway_name, "pacsgw", "keys", "list", "--config",
                            "/etc/pacsgw/pacsgw.yaml").stdout
        self.assertIn(study, keys_before)
        self.assertEqual(keys_after, keys_before)
        check_bit_exact(self.workdir / "retrieved-2")


if __name__ == "__main__":
    h.main()
