#!/usr/bin/env python3
"""Hostile or broken clients must not stop the gateway from serving real modalities: a client that
stalls half-way through its association request, one that sends garbage, and a crowd of idle
connections. Every assertion is on what a real modality (storescu) achieves and what Orthanc holds.

Run alone:  PACSGW_BIN=build/pacsgw python3 tests/integration/test_robustness.py -v
"""

import socket
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pacsgw_harness as h  # noqa: E402


class HostileClients(h.PacsAndGatewayTestCase):
    def store_one(self, name, within: float = 60):
        """A real modality stores one instance; storescu is killed (and the test fails) if that takes
        longer than `within` seconds."""
        copy = h.fresh_copy(h.test_file("ct_le.dcm"), self.workdir, name)
        before = self.pacs.instance_count()
        result = h.storescu(self.gateway.port, [copy], timeout=within)
        self.assertTrue(result.all_succeeded(1), result.describe())
        self.assertEqual(self.pacs.instance_count(), before + 1)
        self.assertIsNotNone(self.pacs.find_instance(h.sop_instance_uid(copy)))

    def assert_closed_by_gateway(self, s, within: float):
        """Reads until the gateway closes the connection (EOF or reset); fails if it is still open
        after `within` seconds. Whatever the gateway sends before (an A-ABORT) is ignored."""
        deadline = time.monotonic() + within
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.fail(f"the gateway kept the connection open for {within} s")
            s.settimeout(remaining)
            try:
                if not s.recv(4096):
                    return
            except ConnectionResetError:
                return
            except socket.timeout:
                self.fail(f"the gateway kept the connection open for {within} s")

    def connect(self):
        return socket.create_connection((h.LOOPBACK, self.gateway.port), timeout=5)

    def test_stalled_association_request_does_not_block_others(self):
        # An A-ASSOCIATE-RQ header announcing 200 bytes, then 10 of them, then silence.
        stalled = self.connect()
        stalled.sendall(bytes([0x01, 0x00, 0x00, 0x00, 0x00, 0xC8]) + b"\x00" * 10)
        try:
            self.store_one("after-stall.dcm", within=15)  # a stalled client must not delay a real modality
        finally:
            stalled.close()

    def test_garbage_and_oversized_requests_are_dropped(self):
        for payload in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                        bytes([0x01, 0x00, 0x7F, 0xFF, 0xFF, 0xFF]),  # absurd PDU length
                        bytes([0x04, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00])):  # P-DATA before association
            s = self.connect()
            try:
                s.sendall(payload)
                # The gateway closes (or aborts) instead of hanging: at the latest when the
                # association request timeout (acse_timeout_s) expires.
                self.assert_closed_by_gateway(s, within=45)
            finally:
                s.close()
        self.store_one("after-garbage.dcm")
        self.assertTrue(self.gateway.alive())

    def test_crowd_of_idle_connections_does_not_lock_out_modalities(self):
        idle = [self.connect() for _ in range(30)]
        try:
            self.store_one("after-crowd.dcm", within=15)
        finally:
            for s in idle:
                s.close()


if __name__ == "__main__":
    h.main()
