"""An outgoing connection to a peer that accepts TCP and then says nothing (never completes the TLS
handshake, never answers the association request) is given up within the configured timeouts, with a
precise status and log line, and the gateway serves other requests meanwhile.

The stalling peer is a Python socket server that accepts every connection, reads what arrives and
never writes. It plays:
- the PACS, reached over DICOM TLS: a modality's C-STORE (synchronous forwarding) fails with 0xA700
  (Refused: Out of Resources, the PACS is unavailable) within connect_timeout_s + acse_timeout_s, and
  the log says e.g. "TLS handshake timed out after 6 s (acse_timeout_s 6 s)";
- a TLS move destination (a workstation whose listener hangs): its C-MOVE ends with 0xA702 (Refused:
  Out of Resources, unable to perform sub-operations) within the same bound, every instance failed;
- the PACS over plain DICOM (a hanging association request without TLS), as the control.
While each stall lasts, a C-ECHO and a C-MOVE to a working destination are answered.

Run alone:  PACSGW_BIN=build/pacsgw python3 tests/integration/test_stalling_peer.py -v
"""

import shutil
import socket
import sys
import threading
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pacsgw_harness as h  # noqa: E402
import retrieve_helpers as rh  # noqa: E402
from tls_certificates import TestCA, TlsClientProxy  # noqa: E402

CONNECT_TIMEOUT_S = 2
ACSE_TIMEOUT_S = 6
# The bound asserted: both timeouts plus room for a loaded test machine, far below what a hang is.
BOUND_S = CONNECT_TIMEOUT_S + ACSE_TIMEOUT_S + 10


class SilentPeer:
    """Accepts TCP connections on a loopback port, reads and discards what arrives, never writes."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind((h.LOOPBACK, 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self.connections = []
        self._stop = False

    def __enter__(self):
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._stop = True
        self.listener.close()
        for c in self.connections:
            c.close()

    def _accept(self):
        while not self._stop:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            self.connections.append(conn)
            threading.Thread(target=self._drain, args=(conn,), daemon=True).start()

    @staticmethod
    def _drain(conn):
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass


class StallGateway(rh.RetrieveGateway):
    """A gateway with a TLS listener and a plain one, short outgoing timeouts, and its peers as given."""

    def __init__(self, workdir, tls: dict, upstream: str, peers: str, **kwargs):
        super().__init__(workdir, **kwargs)
        self.tls = tls
        self.upstream_yaml = upstream
        self.peers_yaml = peers

    def config_yaml(self) -> str:
        q = h._yaml_scalar
        lines = super().config_yaml().splitlines()
        at = lines.index("upstream:")
        head = lines[:at] + ["  tls:"] + [f"    {key}: {q(value)}" for key, value in self.tls.items()] + [
            f"  connect_timeout_s: {CONNECT_TIMEOUT_S}", f"  acse_timeout_s: {ACSE_TIMEOUT_S}"]
        rest = lines[at:]
        # The harness's upstream section (4 lines) replaced by this test's.
        rest = rest[4:]
        cut = rest.index("modalities:")
        return "\n".join(head) + "\n" + self.upstream_yaml + "\n".join(rest[:cut]) + "\n" + self.peers_yaml


class StallingPeerTest(h.LogDumpingTestCase):

    @classmethod
    def setUpClass(cls):
        cls.failed = False
        cls.workdir = h.make_workdir(cls.__name__)
        cls.ca = TestCA(cls.workdir / "pki", "hospital-ca")
        cls.gateway_leaf = cls.ca.issue("gateway", "pacsgw", ["DNS:localhost", "IP:127.0.0.1"], server=True)
        cls.ws1 = cls.ca.issue("ws1", "ws1", ["DNS:ws1.example"])
        cls.silent = SilentPeer().__enter__()
        cls.gateways = []
        cls.logs = {}
        cls.pacs = None
        try:
            cls.start_gateways()
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def new_gateway(cls, name: str, upstream: str, peers: str, **kwargs) -> StallGateway:
        plain_port, tls_port = h.free_port(), h.free_port()
        gateway = StallGateway(cls.workdir / name, port=plain_port, upstream_port=0,
                               tls={"port": tls_port, "certificate": cls.gateway_leaf.cert,
                                    "private_key": cls.gateway_leaf.key, "ca_bundle": cls.ca.cert},
                               upstream=upstream, peers=peers, **kwargs)
        gateway.tls_port = tls_port
        cls.gateways.append(gateway)
        cls.logs[f"pacsgw {name}"] = gateway.log_path
        return gateway

    @classmethod
    def start_gateways(cls):
        modality = "modalities:\n  - { ae_title: CT1, host: 127.0.0.1, tls: false }\n"
        # 1. The PACS stalls (TLS, and plain for the control).
        for name, tls in (("stalled-pacs-tls", "true"), ("stalled-pacs-plain", "false")):
            gateway = cls.new_gateway(
                name, f"upstream:\n  ae_title: PACS\n  host: 127.0.0.1\n  port: {cls.silent.port}\n  tls: {tls}\n",
                modality)
            gateway.start()
        # 2. A TLS move destination stalls; the PACS (Orthanc, plain) and a second destination work.
        cls.ws2_port = h.free_port()
        cls.pacs = rh.RetrieveOrthanc(cls.workdir / "pacs", gateway_port=0)
        cls.logs["Orthanc"] = cls.pacs.log_path
        gateway = cls.new_gateway(
            "stalled-destination", "",
            modality + "workstations:\n"
            f'  - {{ ae_title: WS1, host: 127.0.0.1, port: {cls.silent.port}, access: decrypt, '
            'certificate_identity: "DNS:ws1.example" }\n'
            f"  - {{ ae_title: WS2, host: 127.0.0.1, port: {cls.ws2_port}, access: decrypt, tls: false }}\n")
        cls.pacs.gateway_port = gateway.port
        cls.pacs.start()
        gateway.upstream_yaml = (f"upstream:\n  ae_title: {cls.pacs.aet}\n  host: 127.0.0.1\n"
                                 f"  port: {cls.pacs.dicom_port}\n  tls: false\n")
        gateway.start()
        cls.destination_gateway = gateway

    @classmethod
    def tearDownClass(cls):
        died = [g for g in cls.gateways if g.proc is not None and not g.alive()]
        for gateway in cls.gateways:
            gateway.stop()
        if cls.pacs is not None:
            cls.pacs.stop()
        cls.silent.__exit__()
        if cls.failed or died or h.keep_temp_dirs():
            sys.stderr.write(f"\nlogs and files kept in {cls.workdir}\n")
        else:
            shutil.rmtree(cls.workdir, ignore_errors=True)
        if died:
            raise AssertionError(f"pacsgw serve died during {cls.__name__}:\n{h.tail(died[0].log_path)}")

    # -- helpers ------------------------------------------------------------------------------

    def gateway(self, name: str) -> StallGateway:
        return next(g for g in self.gateways if g.workdir.name == name)

    def in_background(self, operation):
        """Starts `operation` on a thread; returns (thread, outcome: result, ended, seconds)."""
        outcome = {}

        def run():
            started = time.monotonic()
            outcome["result"] = operation()
            outcome["ended"] = time.monotonic()
            outcome["seconds"] = outcome["ended"] - started

        worker = threading.Thread(target=run)
        worker.start()
        return worker, outcome

    def wait_for_stall(self, worker, accepted_before: int):
        """Until the gateway's connection to the silent peer is open (bounded)."""
        deadline = time.monotonic() + BOUND_S
        while self.silent.accepted == accepted_before and time.monotonic() < deadline and worker.is_alive():
            time.sleep(0.05)
        self.assertGreater(self.silent.accepted, accepted_before, "the gateway never connected to the silent peer")

    def assert_answered_before(self, outcome: dict, answered_at: float, what: str):
        """`what` was answered while the stalled operation was still waiting (it ended later)."""
        self.assertLess(answered_at, outcome["ended"], f"{what} was only answered after the stall ended")

    def assert_served_meanwhile(self, gateway, worker) -> float:
        """A C-ECHO during the stall is answered; returns when."""
        echo = rh.echoscu(gateway.port, calling="CT1")
        answered_at = time.monotonic()
        self.assertTrue(rh.echo_succeeded(echo), echo.describe())
        return answered_at

    # -- tests --------------------------------------------------------------------------------

    def check_stalled_pacs(self, name: str, expected_log: str):
        gateway = self.gateway(name)
        source = h.fresh_copy(h.test_file("ct_le.dcm"), self.workdir / name / "study")
        before = gateway.log_size()
        accepted = self.silent.accepted
        worker, outcome = self.in_background(lambda: h.storescu(gateway.port, [source], calling="CT1"))
        self.wait_for_stall(worker, accepted)
        echoed = self.assert_served_meanwhile(gateway, worker)
        worker.join(timeout=BOUND_S + 60)
        self.assertFalse(worker.is_alive(), "the C-STORE never returned")
        self.assert_answered_before(outcome, echoed, "the C-ECHO")
        result = outcome["result"]
        self.assertLess(outcome["seconds"], BOUND_S, result.describe())
        self.assertEqual(result.statuses, ["Refused: OutOfResources"], result.describe())  # 0xA700
        log = gateway.log_since(before)
        self.assertIn(f"PACS@127.0.0.1:{self.silent.port}", log)
        self.assertRegex(log, expected_log)
        echo = rh.echoscu(gateway.port, calling="CT1")
        self.assertTrue(rh.echo_succeeded(echo), echo.describe())

    def test_pacs_that_never_completes_the_tls_handshake(self):
        self.check_stalled_pacs("stalled-pacs-tls", r"TLS handshake timed out after \d+ s \(acse_timeout_s 6 s\)")

    def test_pacs_that_never_answers_the_association_request(self):
        self.check_stalled_pacs("stalled-pacs-plain", r"association request timed out after \d+ s \(acse_timeout_s 6 s\)")

    def test_move_destination_that_never_completes_the_tls_handshake(self):
        gateway = self.destination_gateway
        first = h.fresh_copy(h.test_file("ct_le.dcm"), self.workdir / "move" / "study")
        files = [first, h.fresh_copy(first, self.workdir / "move" / "study", new_study=False)]
        stored = h.storescu(gateway.port, files, calling="CT1")
        self.assertTrue(stored.all_succeeded(2), stored.describe())
        study_uid = str(h.read(first).StudyInstanceUID)
        keys = {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": study_uid}
        before = gateway.log_size()
        with TlsClientProxy(gateway.tls_port, self.ws1, self.ca.cert) as proxy, \
                rh.StoreSCP("WS2", self.ws2_port, self.workdir / "ws2") as scp:
            accepted = self.silent.accepted
            worker, outcome = self.in_background(lambda: rh.movescu(proxy.port, "WS1", keys, calling="WS1"))
            self.wait_for_stall(worker, accepted)
            echoed = self.assert_served_meanwhile(gateway, worker)
            # Another workstation's C-MOVE of the same study is served while WS1's hangs.
            other = rh.movescu(gateway.port, "WS2", keys, calling="WS2")
            moved = time.monotonic()
            self.assertEqual(other.final.status, rh.STATUS_SUCCESS, other.describe())
            self.assertEqual(len(scp.files()), 2, other.describe())
            worker.join(timeout=BOUND_S + 60)
        self.assertFalse(worker.is_alive(), "the C-MOVE never returned")
        self.assert_answered_before(outcome, echoed, "the C-ECHO")
        self.assert_answered_before(outcome, moved, "the other workstation's C-MOVE")
        result = outcome["result"]
        self.assertLess(outcome["seconds"], BOUND_S, result.describe())
        self.assertEqual(result.final.status, 0xA702, result.describe())
        self.assertEqual((result.final.completed, result.final.failed), (0, 2), result.describe())
        log = gateway.log_since(before)
        self.assertRegex(log, rf"cannot associate with WS1@127\.0\.0\.1:{self.silent.port}: "
                              rf"TLS handshake timed out after \d+ s \(acse_timeout_s {ACSE_TIMEOUT_S} s\)")


if __name__ == "__main__":
    h.main()
