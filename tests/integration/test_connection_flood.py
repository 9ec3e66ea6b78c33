#!/usr/bin/env python3
"""Connection exhaustion: silent sockets, even from a modality's own address, must not keep that
modality out, connections from addresses in no allow-list are refused at accept time, and the flood
must not flood the log. Real gateway, real Orthanc, real storescu.

Run alone:  PACSGW_BIN=build/pacsgw python3 tests/integration/test_connection_flood.py -v
"""

import select
import socket
import sys
import threading
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pacsgw_harness as h  # noqa: E402

FLOOD_SIZE = 300


class SilentFlood:
    """Holds FLOOD_SIZE silent TCP connections to the gateway from loopback and reopens each one the
    gateway closes, as an attacker (or a broken health checker) would."""

    def __init__(self, port: int):
        self.port = port
        self.stop = threading.Event()
        self.opened = 0
        self.closed_by_gateway = 0
        self.refused = 0
        self.filled = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _open(self):
        try:
            s = socket.create_connection((h.LOOPBACK, self.port), timeout=5)
        except OSError:
            self.refused += 1
            return None
        self.opened += 1
        return s

    def _run(self):
        held = []
        try:
            while not self.stop.is_set():
                while len(held) < FLOOD_SIZE and not self.stop.is_set():
                    s = self._open()
                    if s is not None:
                        held.append(s)
                self.filled.set()
                readable, _, _ = select.select(held, [], [], 0.05)
                for s in readable:
                    try:
                        data = s.recv(1, socket.MSG_DONTWAIT)
                    except OSError:
                        data = b""
                    if not data:
                        self.closed_by_gateway += 1
                        held.remove(s)
                        s.close()
        finally:
            for s in held:
                s.close()

    def __enter__(self):
        self.thread.start()
        if not self.filled.wait(60):
            raise AssertionError(f"could not open {FLOOD_SIZE} connections (opened {self.opened})")
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(30)


class LimitedGateway(h.Gateway):
    """The harness gateway with a short association-request timeout and the default caps."""

    def config_yaml(self) -> str:
        return super().config_yaml() + "limits:\n  association_request_timeout_s: 5\n"


class ConnectionFlood(h.PacsAndGatewayTestCase):
    gateway_class = LimitedGateway
    gateway_options = {"log_level": "info"}

    def store_and_check_ciphertext(self, name):
        original = h.test_file("ct_le.dcm")
        copy = h.fresh_copy(original, self.workdir, name)
        started = time.monotonic()
        result = h.storescu(self.gateway.port, [copy], timeout=30)
        elapsed = time.monotonic() - started
        self.assertTrue(result.all_succeeded(1), result.describe())
        uid = h.sop_instance_uid(copy)
        stored = h.read(self.pacs.download_by_uid(uid, self.workdir / f"{name}.pacs.dcm"))
        self.assertTrue(h.key_reference(stored), "the PACS holds an object without key reference")
        self.assertNotEqual(h.pixel_element_bytes(stored), h.pixel_element_bytes(h.read(original)),
                            "the PACS holds plaintext pixels")
        return elapsed

    def test_flood_from_the_modality_address_does_not_lock_it_out(self):
        log_lines_before = len(self.gateway.log().splitlines())
        timings = []
        with SilentFlood(self.gateway.port) as flood:
            for i in range(5):
                timings.append(self.store_and_check_ciphertext(f"flood-{i}.dcm"))
            self.assertTrue(self.gateway.alive())
            opened, closed = flood.opened, flood.closed_by_gateway
        log = self.gateway.log().splitlines()[log_lines_before:]
        suppressed = [line for line in log if "suppressed" in line]
        print(f"\nflood: {opened} connections opened, {closed} closed by the gateway to make room; "
              f"5 stores during the flood took {', '.join(f'{t:.2f}' for t in timings)} s; "
              f"{len(log)} log lines ({len(suppressed)} 'suppressed N similar' summaries)")
        self.assertGreaterEqual(opened, FLOOD_SIZE)
        self.assertGreater(closed, 0, "the gateway never closed a silent connection")
        # Every store got through while 300 sockets were held; the log stayed short (rate limited).
        self.assertLess(len(log), 200, "\n".join(log[-40:]))

    def test_silent_connection_is_closed_after_the_request_timeout(self):
        s = socket.create_connection((h.LOOPBACK, self.gateway.port), timeout=5)
        s.settimeout(20)
        try:
            data = s.recv(1)
        except ConnectionResetError:
            data = b""
        finally:
            s.close()
        self.assertEqual(data, b"", "a silent connection was not closed by the gateway")

    def test_address_in_no_allow_list_is_refused_at_accept(self):
        # 127.0.0.2 is loopback too, but no modality, workstation or PACS is configured there.
        refused = 0
        for _ in range(50):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.2", 0))
            s.settimeout(10)
            s.connect((h.LOOPBACK, self.gateway.port))
            try:
                data = s.recv(1)
            except ConnectionResetError:
                data = b""
            except socket.timeout:
                data = None
            s.close()
            if data == b"":
                refused += 1
        self.assertEqual(refused, 50, "connections from an unknown address were held open")
        log = self.gateway.log()
        lines = [line for line in log.splitlines() if "127.0.0.2" in line]
        self.assertTrue(any("refused" in line for line in lines), log[-3000:])
        self.assertLessEqual(len(lines), 10, "every refused connection was logged")
        self.store_and_check_ciphertext("after-unknown.dcm")


if __name__ == "__main__":
    unittest.main(verbosity=2)
