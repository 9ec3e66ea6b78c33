"""DICOM TLS with mutual authentication, against DCMTK's TLS tools and certificates made at test time.

The gateway listens for TLS (gateway.tls) and, for one legacy modality, plain DICOM. Asserted:
- a client with a valid certificate of the configured identity stores over TLS (the PACS holds it);
- no certificate, a certificate of another CA, an expired one, one of another identity, and a TLS
  peer on the plain listener are refused, nothing reaches the PACS, and each refusal is audited;
- C-MOVE and C-GET over TLS deliver bit-exact decrypted pixels to a TLS workstation (storescp +tls);
  DCMTK 3.6.7's movescu and getscu have no TLS options, so their requests go through a TLS client relay
  holding the workstation's certificate (tls_certificates.TlsClientProxy);
- a loopback capture of that C-MOVE holds no run of 64 original pixel bytes, while the same capture
  for a plain workstation does (the control that shows the search can find them).
"""

import shutil
import signal
import subprocess
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pacsgw_harness as h  # noqa: E402
import retrieve_helpers as rh  # noqa: E402
from tls_certificates import TestCA, TlsClientProxy  # noqa: E402

LOOPBACK = h.LOOPBACK
RUN = 64  # bytes of original pixel data that must never cross the wire in clear


class TlsGateway(rh.RetrieveGateway):
    """The harness gateway plus a TLS listener and per-peer transport settings."""

    def __init__(self, workdir, tls: dict, peers_yaml: str, **kwargs):
        super().__init__(workdir, **kwargs)
        self.tls = tls
        self.peers_yaml = peers_yaml

    def config_yaml(self) -> str:
        q = h._yaml_scalar
        lines = super().config_yaml().splitlines()
        at = lines.index("upstream:")
        tls = ["  tls:"] + [f"    {key}: {q(value)}" for key, value in self.tls.items()]
        lines[at:at] = tls
        lines.insert(lines.index("upstream:") + 4, "  tls: false")  # Orthanc speaks plain DICOM here
        cut = lines.index("modalities:")
        return "\n".join(lines[:cut]) + "\n" + self.peers_yaml


def tls_args(leaf, ca) -> list:
    return ["+tls", leaf.key, leaf.cert, "+cf", ca.cert]


def audit_records(gateway, offset: int) -> str:
    with open(gateway.data_dir / "audit.log", "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def audit_size(gateway) -> int:
    path = gateway.data_dir / "audit.log"
    return path.stat().st_size if path.exists() else 0


class Capture:
    """tcpdump on the loopback interface for some TCP ports, written to a pcap file."""

    def __init__(self, path: Path, ports):
        self.path = path
        self.ports = list(ports)
        self.log_path = path.with_suffix(".log")
        self.proc = None

    def __enter__(self):
        expression = " or ".join(f"tcp port {p}" for p in self.ports)
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(["tcpdump", "-i", "lo", "-U", "-n", "-s", "0", "-w", str(self.path), expression],
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tcpdump exited with {self.proc.returncode}\n{h.tail(self.log_path)}")
            if "listening on" in self.log_path.read_text(errors="replace"):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"tcpdump did not start\n{h.tail(self.log_path)}")

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # flushes and closes the file
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def data(self) -> bytes:
        return self.path.read_bytes()


def pixel_windows(pixels: bytes) -> set:
    """Every RUN-byte window of the pixel data that is not trivially common (e.g. a run of background
    zeros would match anything): at least 16 distinct byte values."""
    return {pixels[i:i + RUN] for i in range(0, len(pixels) - RUN + 1) if len(set(pixels[i:i + RUN])) >= 16}


def clear_runs(capture: bytes, windows: set, stop_after: int = 10) -> int:
    found = 0
    for i in range(0, len(capture) - RUN + 1):
        if capture[i:i + RUN] in windows:
            found += 1
            if found >= stop_after:
                break
    return found


@unittest.skipUnless(shutil.which("tcpdump"), "tcpdump is not installed (scripts/setup.sh installs it)")
class DicomTlsTest(h.LogDumpingTestCase):

    @classmethod
    def setUpClass(cls):
        cls.failed = False
        cls.workdir = h.make_workdir(cls.__name__)
        pki = cls.workdir / "pki"
        cls.ca = TestCA(pki, "hospital-ca")
        other = TestCA(pki, "other-ca")
        cls.gateway_leaf = cls.ca.issue("gateway", "pacsgw", ["DNS:localhost", "IP:127.0.0.1"], server=True)
        cls.ct1 = cls.ca.issue("ct1", "ct1")
        cls.ws1 = cls.ca.issue("ws1", "ws1", ["DNS:ws1.example"])
        cls.intruder = cls.ca.issue("intruder", "intruder", ["DNS:intruder.example"])
        cls.foreign_ct1 = other.issue("ct1-other-ca", "ct1")
        cls.expired_ct1 = cls.ca.issue("ct1-expired", "ct1", start="20200101000000Z", end="20210101000000Z")

        cls.plain_port, cls.tls_port = h.free_port(), h.free_port()
        cls.ws1_port, cls.wsplain_port = h.free_port(), h.free_port()
        peers = (
            "modalities:\n"
            '  - { ae_title: "CT1", host: "127.0.0.1", certificate_identity: "CN=ct1" }\n'
            '  - { ae_title: "LEGACY", host: "127.0.0.1", tls: false }\n'
            "workstations:\n"
            f'  - {{ ae_title: "WS1", host: "127.0.0.1", port: {cls.ws1_port}, access: "decrypt", '
            'certificate_identity: "DNS:ws1.example" }\n'
            f'  - {{ ae_title: "WSPLAIN", host: "127.0.0.1", port: {cls.wsplain_port}, access: "decrypt", '
            "tls: false }\n")
        cls.pacs = rh.RetrieveOrthanc(cls.workdir / "pacs", gateway_port=cls.plain_port)
        cls.gateway = TlsGateway(
            cls.workdir / "gateway", upstream_port=cls.pacs.dicom_port, port=cls.plain_port,
            tls={"port": cls.tls_port, "certificate": cls.gateway_leaf.cert, "private_key": cls.gateway_leaf.key,
                 "ca_bundle": cls.ca.cert, "profile": "bcp195-nd"},
            peers_yaml=peers)
        cls.logs = {"pacsgw serve": cls.gateway.log_path, "Orthanc": cls.pacs.log_path}
        try:
            cls.pacs.start()
            cls.gateway.start()
        except Exception:
            cls.gateway.stop()
            cls.pacs.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        was_alive = cls.gateway.alive()
        exit_code = cls.gateway.stop()
        cls.pacs.stop()
        if cls.failed or not was_alive or exit_code != 0 or h.keep_temp_dirs():
            sys.stderr.write(f"\nlogs and files kept in {cls.workdir}\n")
        else:
            shutil.rmtree(cls.workdir, ignore_errors=True)
        if not was_alive:
            raise AssertionError(f"pacsgw serve died during {cls.__name__}:\n{h.tail(cls.gateway.log_path)}")

    # -- helpers ------------------------------------------------------------------------------

    def store_study(self, name: str, count: int) -> dict:
        """Sends `count` fresh CT slices of one new study over TLS as CT1; returns {SOP UID: original path}."""
        directory = self.workdir / "studies" / name
        first = h.fresh_copy(h.test_file("ct_le.dcm"), directory)
        files = [first] + [h.fresh_copy(first, directory, new_study=False) for _ in range(count - 1)]
        result = h.storescu(self.tls_port, files, calling="CT1", extra=tls_args(self.ct1, self.ca))
        self.assertTrue(result.all_succeeded(count), result.describe())
        return {h.sop_instance_uid(p): p for p in files}

    def assert_decrypted(self, received, originals: dict):
        self.assertEqual({h.sop_instance_uid(p) for p in received}, set(originals))
        for path in received:
            original = originals[h.sop_instance_uid(path)]
            self.assertEqual(h.pixel_element_bytes(h.read(path)), h.pixel_element_bytes(h.read(original)),
                             f"{path.name}: pixels are not the original ones")

    # -- tests --------------------------------------------------------------------------------

    def test_valid_client_stores_over_tls_and_legacy_peer_over_plain(self):
        originals = self.store_study("VALID", 2)
        for uid, original in originals.items():
            self.assertIsNotNone(self.pacs.find_instance(uid), f"{uid} not in the PACS")
            stored = self.pacs.download_by_uid(uid, self.workdir / f"pacs-{uid}.dcm")
            self.assertNotEqual(h.pixel_element_bytes(h.read(stored)), h.pixel_element_bytes(h.read(original)),
                                "the PACS holds clear pixels")
        # The plain listener serves the peer the configuration marks tls: false.
        legacy = h.fresh_copy(h.test_file("ct_le.dcm"), self.workdir / "legacy")
        result = h.storescu(self.plain_port, [legacy], calling="LEGACY")
        self.assertTrue(result.all_succeeded(1), result.describe())

    def test_refused_clients_store_nothing_and_are_audited(self):
        cases = [
            # (name, port, tool options, audit event type expected)
            ("no certificate", self.tls_port, ["+tla", "+cf", self.ca.cert], "TLS-AUTHENTICATION-FAILURE"),
            ("certificate of another CA", self.tls_port, tls_args(self.foreign_ct1, self.ca),
             "TLS-AUTHENTICATION-FAILURE"),
            ("expired certificate", self.tls_port, tls_args(self.expired_ct1, self.ca), "TLS-AUTHENTICATION-FAILURE"),
            ("certificate of another identity", self.tls_port, tls_args(self.intruder, self.ca),
             "PEER-IDENTITY-MISMATCH"),
            ("TLS peer over the plain listener", self.plain_port, [], "PEER-IDENTITY-MISMATCH"),
        ]
        for name, port, options, event in cases:
            with self.subTest(name):
                source = h.fresh_copy(h.test_file("ct_le.dcm"), self.workdir / "refused")
                uid = h.sop_instance_uid(source)
                before = audit_size(self.gateway)
                result = h.storescu(port, [source], calling="CT1", extra=options)
                self.assertEqual(result.statuses, [], result.describe())
                self.assertFalse(result.association_accepted, result.describe())
                self.assertTrue("Association Request Failed" in result.output or result.association_rejected,
                                result.describe())
                self.assertIsNone(self.pacs.find_instance(uid), f"{name}: the instance reached the PACS")
                records = ""
                deadline = time.monotonic() + 10  # the refusal is audited by the connection's thread
                while event not in records and time.monotonic() < deadline:
                    records = audit_records(self.gateway, before)
                    time.sleep(0.05)
                self.assertIn(f'csd-code="{event}"', records, f"{name}: no audit event\n{result.describe()}")

    def test_workstation_of_another_identity_gets_nothing(self):
        originals = self.store_study("INTRUDER", 1)
        with rh.StoreSCP("WS1", self.ws1_port, self.workdir / "intruder-ws1",
                         extra=tls_args(self.ws1, self.ca)) as scp, \
                TlsClientProxy(self.tls_port, self.intruder, self.ca.cert) as proxy:
            result = rh.movescu(proxy.port, "WS1", self.keys(originals), calling="WS1")
            files = scp.files()
        self.assertTrue(result.association_rejected, result.describe())
        self.assertEqual(files, [])

    def keys(self, originals: dict) -> dict:
        study = str(h.read(next(iter(originals.values()))).StudyInstanceUID)
        return {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": study}

    def test_move_to_tls_workstation_never_shows_pixels_in_clear(self):
        originals = self.store_study("WIRE", 2)
        windows = set()
        for path in originals.values():
            windows |= pixel_windows(h.pixel_element_bytes(h.read(path)))
        self.assertGreater(len(windows), 1000)

        with rh.StoreSCP("WS1", self.ws1_port, self.workdir / "wire-ws1", extra=tls_args(self.ws1, self.ca)) as scp, \
                TlsClientProxy(self.tls_port, self.ws1, self.ca.cert) as proxy, \
                Capture(self.workdir / "wire-tls.pcap", [self.ws1_port]) as capture:
            result = rh.movescu(proxy.port, "WS1", self.keys(originals), calling="WS1")
            files = scp.files()
        self.assertEqual(result.final.status, rh.STATUS_SUCCESS, result.describe())
        self.assert_decrypted(files, originals)
        tls_capture = capture.data()
        self.assertGreater(len(tls_capture), 2 * 512 * 512, "the capture missed the transfer")
        self.assertEqual(clear_runs(tls_capture, windows), 0, "original pixel bytes crossed the wire in clear")

        # Control: the same move to a plain workstation shows them, so the search above can fail.
        with rh.StoreSCP("WSPLAIN", self.wsplain_port, self.workdir / "wire-plain") as scp, \
                TlsClientProxy(self.tls_port, self.ws1, self.ca.cert) as proxy, \
                Capture(self.workdir / "wire-plain.pcap", [self.wsplain_port]) as capture:
            result = rh.movescu(proxy.port, "WSPLAIN", self.keys(originals), calling="WS1")
            files = scp.files()
        self.assertEqual(result.final.status, rh.STATUS_SUCCESS, result.describe())
        self.assert_decrypted(files, originals)
        self.assertGreater(clear_runs(capture.data(), windows), 0, "control: clear pixels not found in the capture")

    def test_get_over_tls_delivers_bit_exact_pixels(self):
        originals = self.store_study("GET", 2)
        target = self.workdir / "get-ws1"
        with TlsClientProxy(self.tls_port, self.ws1, self.ca.cert) as proxy:
            result = rh.getscu(proxy.port, target, self.keys(originals), calling="WS1")
        self.assertEqual(result.final.status, rh.STATUS_SUCCESS, result.describe())
        self.assert_decrypted(sorted(p for p in target.iterdir() if p.is_file()), originals)


class TlsOrthanc(rh.RetrieveOrthanc):
    """Orthanc (1.10.1 has DICOM TLS) with TLS on its DICOM port, requiring client certificates of the CA,
    and TLS towards the gateway for C-MOVE sub-operations."""

    def __init__(self, workdir, leaf, ca_cert, **kwargs):
        super().__init__(workdir, **kwargs)
        self.leaf, self.ca_cert = leaf, ca_cert

    def config(self) -> dict:
        config = super().config()
        config.update({"DicomTlsEnabled": True, "DicomTlsCertificate": str(self.leaf.cert),
                       "DicomTlsPrivateKey": str(self.leaf.key), "DicomTlsTrustedCertificates": str(self.ca_cert),
                       "DicomTlsRemoteCertificateRequired": True})
        config["DicomModalities"]["gateway"]["UseDicomTls"] = True
        return config


@unittest.skipUnless(shutil.which("tcpdump"), "tcpdump is not installed (scripts/setup.sh installs it)")
class GatewayToPacsOverTlsTest(h.LogDumpingTestCase):
    """The gateway's own outgoing TLS (PeerAssociation with the shared requestor layer) against a real
    TLS peer: stores go to Orthanc over TLS, and Orthanc's C-MOVE sub-operations come back over TLS."""

    @classmethod
    def setUpClass(cls):
        cls.failed = False
        cls.workdir = h.make_workdir(cls.__name__)
        cls.ca = TestCA(cls.workdir / "pki", "hospital-ca")
        gateway_leaf = cls.ca.issue("gateway", "pacsgw", ["DNS:localhost", "IP:127.0.0.1"], server=True)
        pacs_leaf = cls.ca.issue("pacs", "pacs", ["DNS:pacs.example"], server=True)
        cls.ct1 = cls.ca.issue("ct1", "ct1")
        cls.ws1 = cls.ca.issue("ws1", "ws1", ["DNS:ws1.example"])
        tls_port, cls.ws1_port = h.free_port(), h.free_port()
        cls.tls_port = tls_port
        peers = ("modalities:\n  - { ae_title: \"CT1\", host: \"127.0.0.1\" }\n"
                 "workstations:\n"
                 f"  - {{ ae_title: \"WS1\", host: \"127.0.0.1\", port: {cls.ws1_port}, access: \"decrypt\" }}\n")
        cls.pacs = TlsOrthanc(cls.workdir / "pacs", pacs_leaf, cls.ca.cert, gateway_port=tls_port)

        class Gateway(TlsGateway):
            def config_yaml(self):
                text = super().config_yaml()
                # Orthanc speaks TLS here: no plain port at all, and the PACS must prove its identity.
                text = "\n".join(line for line in text.splitlines() if not line.startswith("  port: ") or
                                  not line.endswith(str(self.port))) + "\n"
                return text.replace("  tls: false", '  certificate_identity: "DNS:pacs.example"')

        cls.gateway = Gateway(cls.workdir / "gateway", upstream_port=cls.pacs.dicom_port, port=h.free_port(),
                              tls={"port": tls_port, "certificate": gateway_leaf.cert,
                                   "private_key": gateway_leaf.key, "ca_bundle": cls.ca.cert},
                              peers_yaml=peers)
        cls.logs = {"pacsgw serve": cls.gateway.log_path, "Orthanc": cls.pacs.log_path}
        try:
            cls.pacs.start()
            cls.gateway.start()
        except Exception:
            cls.gateway.stop()
            cls.pacs.stop()
            raise

    tearDownClass = DicomTlsTest.__dict__["tearDownClass"]

    def test_store_and_move_through_a_tls_pacs(self):
        directory = self.workdir / "study"
        first = h.fresh_copy(h.test_file("ct_le.dcm"), directory)
        files = [first, h.fresh_copy(first, directory, new_study=False)]
        result = h.storescu(self.tls_port, files, calling="CT1", extra=tls_args(self.ct1, self.ca))
        self.assertTrue(result.all_succeeded(2), result.describe())
        originals = {h.sop_instance_uid(p): p for p in files}
        for uid in originals:
            self.assertIsNotNone(self.pacs.find_instance(uid), f"{uid} not in the PACS")
        self.assertIn("over TLS", self.gateway.log())
        keys = {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": str(h.read(first).StudyInstanceUID)}
        with rh.StoreSCP("WS1", self.ws1_port, self.workdir / "ws1", extra=tls_args(self.ws1, self.ca)) as scp, \
                TlsClientProxy(self.tls_port, self.ws1, self.ca.cert) as proxy:
            result = rh.movescu(proxy.port, "WS1", keys, calling="WS1")
            received = scp.files()
        self.assertEqual(result.final.status, rh.STATUS_SUCCESS, result.describe())
        DicomTlsTest.assert_decrypted(self, received, originals)


if __name__ == "__main__":
    h.main()
