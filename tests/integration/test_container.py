#!/usr/bin/env python3
"""The container image, run the way docker/docker-compose.yml runs it: the gateway image next to an
Orthanc image on a private network where they find each other by service name (no fixed addresses),
with the shipped configuration files. A study is sent from the host through the published port (the
shipped modality line), the PACS container must hold ciphertext, a decrypt workstation with its own
address on the network (the documented way to add one) gets it back bit-exact, a caller on the host
claiming that workstation's AE title is refused (the relayed address has no decrypt grant), and a new
gateway container on the same keystore volume still decrypts the study. Then docker/docker-compose.yml
itself, run by podman-compose under its own project name and ports: up, a study stored from the host
is ciphertext in the PACS, a host caller claiming a workstation gets nothing, the PACS copy decrypts
bit-exact inside the gateway container, and (LibTorch builds) `cipher.backend: ae-aes` alone encrypts and
decrypts bit-exact there with the image's shipped model and `pacsgw eval` runs in it, down.

Images: by default the gateway image is built for this run from the executable under test
(PACSGW_BIN, docker/prebuilt.Dockerfile via scripts/build-image.sh prebuilt: no compile inside the
image; it installs the runtime packages from the Debian mirror, about a minute) and removed
afterwards; set PACSGW_IMAGE to test an existing image instead (e.g. localhost/pacsgw:aes-only built
from docker/Dockerfile). The Orthanc image localhost/pacsgw-orthanc:latest is built if missing.
The test is skipped only when podman cannot run containers here (not installed, not root, or
`podman info` fails); with PACSGW_REQUIRE_CONTAINER_TESTS=1 (set by .ci/run) that is a failure.
"""

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pacsgw_harness as h  # noqa: E402
import retrieve_helpers as rh  # noqa: E402
from backend_case import backend_available  # noqa: E402

DOCKER = h.REPO_ROOT / "docker"
ORTHANC_IMAGE = "localhost/pacsgw-orthanc:latest"
BASE_IMAGE = "docker.io/library/debian:bookworm-slim"
RUNTIME = ["--runtime", "runc"]
# The decrypt workstation added for this test, as docs/operator-guide.md shows it: its own address
# (here the network alias ws1 of its container), never the address the runtime relays host traffic from.
WORKSTATION_LINE = "workstations:\n  - { ae_title: WS1, host: ws1, port: 11112, access: decrypt, move_destinations: [] }\n"
IMAGE_BUILD_TIMEOUT = 900  # the first build on a host downloads the runtime packages


# A host without its own containers.conf gets the repository's (docker/podman-containers.conf says why);
# every podman, podman-compose and build-image.sh run below inherits it.
if not os.environ.get("CONTAINERS_CONF") and not Path("/etc/containers/containers.conf").exists():
    os.environ["CONTAINERS_CONF"] = str(DOCKER / "podman-containers.conf")


def podman(*args, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["podman", *map(str, args)], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(map(str, args))} failed ({result.returncode}):\n"
                             f"{result.stdout}{result.stderr}")
    return result


def podman_unavailable():
    """Why podman cannot run containers here, or None."""
    if shutil.which("podman") is None:
        return "podman not installed (Debian packages podman runc); the container image is not tested"
    if os.getuid() != 0:
        return ("the container test needs rootful podman (run as root): the mounted master key must belong "
                "to the image's uid 10001")
    info = subprocess.run(["podman", "info"], capture_output=True, text=True, timeout=120)
    if info.returncode != 0:
        return f"podman cannot run here (`podman info` failed): {info.stderr.strip()[-500:]}"
    return None


def build_image(tag: str, *args):
    start = time.monotonic()
    build = subprocess.run([h.REPO_ROOT / "scripts" / "build-image.sh", *map(str, args)], capture_output=True,
                           text=True, timeout=IMAGE_BUILD_TIMEOUT, env={**os.environ, "PACSGW_IMAGE_TAG": tag})
    if build.returncode != 0:
        raise AssertionError(f"scripts/build-image.sh {' '.join(map(str, args))} failed:\n"
                             f"{build.stdout[-4000:]}{build.stderr[-4000:]}")
    print(f"[container] {tag} built in {time.monotonic() - start:.0f} s", file=sys.stderr)


def wait_for(what: str, condition, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


SKIP_REASON = podman_unavailable()
REQUIRED = os.environ.get("PACSGW_REQUIRE_CONTAINER_TESTS") == "1"
RUN_ID = secrets.token_hex(4)
GATEWAY_IMAGE = os.environ.get("PACSGW_IMAGE") or f"localhost/pacsgw:test-{RUN_ID}"
BUILT_IMAGE = not os.environ.get("PACSGW_IMAGE")


def setUpModule():
    if SKIP_REASON and not REQUIRED:
        return
    if SKIP_REASON:
        raise AssertionError(f"PACSGW_REQUIRE_CONTAINER_TESTS=1 but {SKIP_REASON}")
    if BUILT_IMAGE:
        build_image(GATEWAY_IMAGE, "prebuilt", h.pacsgw_bin())
    if podman("image", "exists", ORTHANC_IMAGE, check=False).returncode != 0:
        build_image(ORTHANC_IMAGE, "orthanc")


def tearDownModule():
    if BUILT_IMAGE and not SKIP_REASON:
        podman("rmi", "-f", GATEWAY_IMAGE, check=False)


def master_key_file(directory: Path) -> Path:
    """The compose secret: 64 hex characters, mode 0600, owned by the image's uid 10001."""
    key = directory / "master.key"
    key.write_text(secrets.token_hex(32) + "\n")
    os.chmod(key, 0o600)
    os.chown(key, 10001, 10001)
    return key


def pacs_copy(http_port: int, sop_uid: str, target: Path) -> Path:
    """The PACS's stored file of one instance, through Orthanc's REST API."""
    request = urllib.request.Request(f"http://127.0.0.1:{http_port}/tools/lookup", data=sop_uid.encode())
    with urllib.request.urlopen(request, timeout=30) as r:
        ids = [x["ID"] for x in json.loads(r.read()) if x["Type"] == "Instance"]
    if len(ids) != 1:
        raise AssertionError(f"{sop_uid} not in the PACS (found {ids})")
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/instances/{ids[0]}/file", timeout=30) as r:
        target.write_bytes(r.read())
    return target


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@unittest.skipIf(SKIP_REASON is not None and not REQUIRED, SKIP_REASON or "")
class ContainerTopology(h.LogDumpingTestCase):
    @classmethod
    def setUpClass(cls):
        suffix = secrets.token_hex(4)
        cls.gateway_image = GATEWAY_IMAGE
        cls.workdir = h.make_workdir(cls.__name__)
        cls.net, cls.volume = f"pacsgw-test-net-{suffix}", f"pacsgw-test-data-{suffix}"
        cls.gateway_name, cls.pacs_name = f"pacsgw-test-gateway-{suffix}", f"pacsgw-test-pacs-{suffix}"
        cls.ws_name = f"pacsgw-test-ws-{suffix}"
        cls.dicom_port, cls.metrics_port, cls.http_port = h.free_port(), h.free_port(), h.free_port()
        cls.logs = {}
        try:
            cls.master_key = master_key_file(cls.workdir)
            cls.config = cls.workdir / "pacsgw.yaml"
            cls.config.write_text((DOCKER / "pacsgw.yaml").read_text() + WORKSTATION_LINE)
            cls.received = cls.workdir / "ws"
            cls.received.mkdir()
            # A network the runtime addresses itself, as compose creates it: no subnet, no fixed address.
            podman("network", "create", cls.net)
            network = json.loads(podman("network", "inspect", cls.net).stdout)[0]
            if not network.get("dns_enabled", True):
                raise AssertionError("podman networks here have no name resolution, which the compose file needs "
                                     "(install golang-github-containernetworking-plugin-dnsname for podman's CNI "
                                     "networks, or netavark and aardvark-dns)")
            podman("volume", "create", cls.volume)
            podman("run", "-d", *RUNTIME, "--name", cls.pacs_name, "--network", cls.net, "--network-alias", "pacs",
                   "-v", f"{DOCKER / 'orthanc.json'}:/etc/orthanc/orthanc.json:ro",
                   "-p", f"127.0.0.1:{cls.http_port}:8042", ORTHANC_IMAGE)
            # The decrypt workstation: DCMTK's getscu from the gateway image, in its own container.
            podman("run", "-d", *RUNTIME, "--name", cls.ws_name, "--network", cls.net, "--network-alias", "ws1",
                   "--user", "root", "--entrypoint", "sleep", "-v", f"{cls.received}:/received",
                   cls.gateway_image, "infinity")
            wait_for("Orthanc's REST API", cls.pacs_answers, 60)
            cls.start_gateway()
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def start_gateway(cls):
        # As in the compose file: configuration and secret mounted read-only, keystore on the volume,
        # root file system read-only.
        podman("run", "-d", *RUNTIME, "--name", cls.gateway_name, "--network", cls.net, "--network-alias", "gateway",
               "--read-only",
               "-v", f"{cls.config}:/etc/pacsgw/pacsgw.yaml:ro",
               "-v", f"{cls.master_key}:/run/secrets/pacsgw_master_key:ro",
               "-v", f"{cls.volume}:/var/lib/pacsgw",
               "-p", f"127.0.0.1:{cls.dicom_port}:11112", "-p", f"127.0.0.1:{cls.metrics_port}:9090",
               cls.gateway_image)
        wait_for("the gateway to be ready (/health/ready)", cls.gateway_ready, 90)

    @classmethod
    def remove_gateway(cls):
        podman("stop", "-t", "30", cls.gateway_name, check=False, timeout=60)
        podman("rm", "-f", "-v", cls.gateway_name, check=False)

    @classmethod
    def tearDownClass(cls):
        for name in (cls.gateway_name, cls.pacs_name, cls.ws_name):
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

    def retrieve_in_workstation(self, study: str, name: str) -> dict:
        """C-GET as WS1 from the workstation container; {SOP Instance UID: file}."""
        podman("exec", self.ws_name, "mkdir", f"/received/{name}")
        result = podman("exec", self.ws_name, "getscu", "-S", "-ta", "30", "-td", "120", "-aet", "WS1",
                        "-aec", "GATEWAY", "-od", f"/received/{name}", "-k", "QueryRetrieveLevel=STUDY",
                        "-k", f"StudyInstanceUID={study}", "gateway", "11112", check=False, timeout=300)
        files = sorted((self.received / name).glob("*")) if (self.received / name).exists() else []
        self.assertTrue(files, f"C-GET through the gateway container delivered nothing:\n{result.stdout}"
                               f"{result.stderr}\n{self.gateway_log()}")
        return {h.sop_instance_uid(p): p for p in files}

    def test_study_round_trip_and_keystore_survives_a_new_container(self):
        # 1. The image itself: unprivileged user, no compiler, health check present and passing, and
        #    the shipped configuration checks clean with the secret mounted as compose mounts it.
        self.assertEqual(podman("exec", self.gateway_name, "id", "-u").stdout.strip(), "10001")
        compilers = podman("run", "--rm", *RUNTIME, "--entrypoint", "bash", self.gateway_image, "-c",
                           "command -v gcc cc g++ c++ clang cmake || true").stdout.strip()
        self.assertEqual(compilers, "")

        def healthchecks(node):  # wherever this podman version puts it in the inspect output
            if isinstance(node, dict):
                for key, value in node.items():
                    yield from ([value] if key.lower() == "healthcheck" else healthchecks(value))
            elif isinstance(node, list):
                for item in node:
                    yield from healthchecks(item)

        inspected = json.loads(podman("image", "inspect", self.gateway_image).stdout)
        self.assertIn("/health/ready", json.dumps(list(healthchecks(inspected))))
        self.assertEqual(podman("healthcheck", "run", self.gateway_name, check=False).returncode, 0,
                         "the image's HEALTHCHECK fails on a ready gateway")
        check = podman("run", "--rm", *RUNTIME, "--network", self.net,
                       "-v", f"{DOCKER / 'pacsgw.yaml'}:/etc/pacsgw/pacsgw.yaml:ro",
                       "-v", f"{self.master_key}:/run/secrets/pacsgw_master_key:ro", "-v", f"{self.volume}:/var/lib/pacsgw",
                       self.gateway_image, "config", "check", "--config", "/etc/pacsgw/pacsgw.yaml", check=False)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        self.assertNotIn("warning", (check.stdout + check.stderr).lower(), check.stdout + check.stderr)

        # 2. A study from the host, through the published port (the shipped modality line
        #    CT1 at host.containers.internal), into the PACS container.
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

        # 4. A caller on the host claiming the decrypt workstation's AE title arrives from the relayed
        #    address and gets nothing.
        claimed = rh.getscu(self.dicom_port, self.workdir / "claimed",
                            {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": study}, calling="WS1")
        self.assertEqual(sorted((self.workdir / "claimed").glob("*")), [],
                         f"a host caller claiming WS1 received data:\n{claimed}")

        # 5. The decrypt workstation, from its own address, gets the original pixels back bit for bit.
        def check_bit_exact(name: str):
            received = self.retrieve_in_workstation(study, name)
            self.assertEqual(set(received), {h.sop_instance_uid(p) for p in originals})
            for original in originals:
                self.assertEqual(h.pixel_element_bytes(h.read(received[h.sop_instance_uid(original)])),
                                 h.pixel_element_bytes(h.read(original)))

        check_bit_exact("retrieved-1")
        keys_before = podman("exec", self.gateway_name, "pacsgw", "keys", "list", "--config",
                             "/etc/pacsgw/pacsgw.yaml").stdout

        # 6. A new gateway container on the same volume: the study key is still there.
        self.remove_gateway()
        self.start_gateway()
        keys_after = podman("exec", self.gateway_name, "pacsgw", "keys", "list", "--config",
                            "/etc/pacsgw/pacsgw.yaml").stdout
        self.assertIn(study, keys_before)
        self.assertEqual(keys_after, keys_before)
        check_bit_exact("retrieved-2")


@unittest.skipIf(SKIP_REASON is not None and not REQUIRED, SKIP_REASON or "")
class ComposeFile(unittest.TestCase):
    """docker/docker-compose.yml itself, run by podman-compose under its own project name and ports."""

    def test_up_store_ciphertext_in_the_pacs_decrypt_back_down(self):
        if shutil.which("podman-compose") is None:
            self.fail("podman-compose not installed (Debian package podman-compose; scripts/setup.sh installs it)")
        workdir = h.make_workdir("compose")
        self.addCleanup(shutil.rmtree, workdir, ignore_errors=True)
        project = f"pacsgwtest{RUN_ID}"
        dicom_port, metrics_port, http_port = h.free_port(), h.free_port(), h.free_port()
        env = {**os.environ, "PACSGW_DICOM_PORT": str(dicom_port), "PACSGW_METRICS_PORT": str(metrics_port),
               "PACSGW_PACS_HTTP_PORT": str(http_port), "PACSGW_IMAGE": GATEWAY_IMAGE,
               "PACSGW_MASTER_KEY_FILE": str(master_key_file(workdir))}
        compose = ["podman-compose", "-p", project, "-f", str(DOCKER / "docker-compose.yml")]

        def run(*args, timeout=300):
            return subprocess.run([*compose, *args], capture_output=True, text=True, env=env, timeout=timeout)

        def down():
            run("down", timeout=180)
            podman("volume", "rm", "-f", f"{project}_pacs-db", f"{project}_pacsgw-data", check=False)
            podman("network", "rm", "-f", f"{project}_default", check=False)

        self.addCleanup(down)
        up = run("up", "-d")
        self.assertEqual(up.returncode, 0, up.stdout[-3000:] + up.stderr[-3000:])
        gateway = f"{project}_gateway_1"
        logs = lambda: podman("logs", gateway, check=False).stderr[-3000:]  # noqa: E731
        wait_for("the compose gateway to be ready", lambda: http_ok(f"http://127.0.0.1:{metrics_port}/health/ready"), 120)

        original = h.fresh_copy(h.test_file("ct_le.dcm"), workdir / "in")
        sent = h.storescu(dicom_port, [original], calling="CT1")
        self.assertTrue(sent.all_succeeded(1), f"{sent.describe()}\n{logs()}")
        stored = pacs_copy(http_port, h.sop_instance_uid(original), workdir / "pacs.dcm")
        self.assertEqual(h.element_text(h.key_reference(h.read(stored))[0x01]), "aes-256-gcm")
        self.assertNotEqual(h.pixel_element_bytes(h.read(stored)), h.pixel_element_bytes(h.read(original)))

        # Ciphertext only by default: a host caller claiming a workstation gets nothing.
        claimed = rh.getscu(dicom_port, workdir / "claimed",
                            {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": str(h.read(original).StudyInstanceUID)},
                            calling="WS1")
        self.assertEqual(list((workdir / "claimed").glob("*")), [], str(claimed))

        # The key custodian decrypts the PACS copy inside the gateway container: bit-exact.
        copy_in = subprocess.run(["podman", "exec", "-i", gateway, "bash", "-c", "cat > /tmp/pacs.dcm"],
                                 input=stored.read_bytes(), capture_output=True, timeout=60)
        self.assertEqual(copy_in.returncode, 0, copy_in.stderr)
        decrypted = podman("exec", gateway, "pacsgw", "decrypt", "--config", "/etc/pacsgw/pacsgw.yaml",
                           "/tmp/pacs.dcm", "/tmp/restored.dcm")
        self.assertIn("decrypted", decrypted.stdout)
        restored = subprocess.run(["podman", "exec", gateway, "cat", "/tmp/restored.dcm"], capture_output=True,
                                  timeout=60)
        (workdir / "restored.dcm").write_bytes(restored.stdout)
        self.assertEqual(h.pixel_element_bytes(h.read(workdir / "restored.dcm")),
                         h.pixel_element_bytes(h.read(original)))
        if BUILT_IMAGE and backend_available("ae-aes"):
            self.check_learned_backend_by_name(gateway, original)

        stopped = run("down", timeout=180)
        self.assertEqual(stopped.returncode, 0, stopped.stdout[-2000:] + stopped.stderr[-2000:])
        self.assertNotIn(gateway, podman("ps", "-a", "--format", "{{.Names}}").stdout)

    def check_learned_backend_by_name(self, gateway: str, original: Path):
        """The image carries the shipped models and pacsgw-eval: `cipher.backend: ae-aes` alone encrypts
        and decrypts bit-exact in the container, and `pacsgw eval` runs there with that model."""
        script = ("sed 's/backend: aes-256-gcm/backend: ae-aes/' /etc/pacsgw/pacsgw.yaml > /tmp/ae.yaml"
                  " && pacsgw encrypt --config /tmp/ae.yaml /tmp/restored.dcm /tmp/ae.dcm"
                  " && pacsgw decrypt --config /tmp/ae.yaml /tmp/ae.dcm /tmp/ae-restored.dcm"
                  " && pacsgw eval --backend ae-aes --json /tmp/ae.json --no-nist --differential-runs 1 --pairs 1000"
                  " --timing-seconds 0.01 --figures 0 --quiet /tmp/restored.dcm > /dev/null")
        podman("exec", gateway, "bash", "-c", script, timeout=300)
        fetched = {name: subprocess.run(["podman", "exec", gateway, "cat", f"/tmp/{name}"], capture_output=True,
                                        timeout=60).stdout for name in ("ae.dcm", "ae-restored.dcm", "ae.json")}
        workdir = h.make_workdir("container-ae")
        self.addCleanup(shutil.rmtree, workdir, ignore_errors=True)
        for name in ("ae.dcm", "ae-restored.dcm"):
            (workdir / name).write_bytes(fetched[name])
        self.assertEqual(h.element_text(h.key_reference(h.read(workdir / "ae.dcm"))[0x01]), "ae-aes")
        self.assertEqual(h.pixel_element_bytes(h.read(workdir / "ae-restored.dcm")),
                         h.pixel_element_bytes(h.read(original)))
        report = json.loads(fetched["ae.json"])["backends"][0]
        self.assertTrue(report["bit_exact"])
        self.assertEqual(report["model_size_bytes"], (h.REPO_ROOT / "models" / "ae-aes.pt").stat().st_size)
        print(f"[container] cipher.backend: ae-aes by name: bit-exact; pacsgw eval in the image: decrypt PSNR "
              f"{report['decrypt_psnr']:.2f} dB, model {report['model_size_bytes']} bytes", file=sys.stderr)


if __name__ == "__main__":
    h.main()
