"""The audit trail reaches a real syslog receiver (rsyslogd, imtcp over TLS with mutual authentication)
as RFC 5424 messages in RFC 5425 frames; an outage of the receiver loses no record (they are sent, in
order, when it is back) and /metrics counts the records waiting for it; a receiver whose certificate
is not signed by the configured CA gets nothing.
The local log is written where `audit.path` says.
"""

import re
import sys
import time
import urllib.request
import unittest
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pacsgw_harness as h  # noqa: E402
import syslog_receiver as sr  # noqa: E402

MISSING = sr.available()


class SyslogGateway(h.Gateway):
    """A gateway whose audit section names its own log path and the receiver."""

    audit_yaml = ""

    def config_yaml(self) -> str:
        return super().config_yaml() + self.audit_yaml


def event(record: str) -> tuple:
    """(EventID, outcome, event type codes, participant UserIDs) of an audit record."""
    m = ET.fromstring(record)
    ident = m.find("EventIdentification")
    return (ident.find("EventID").get("csd-code"), int(ident.get("EventOutcomeIndicator")),
            tuple(t.get("csd-code") for t in ident.findall("EventTypeCode")),
            tuple(p.get("UserID") for p in m.findall("ActiveParticipant")))


@unittest.skipIf(MISSING, MISSING)
class AuditSyslogTest(h.PacsAndGatewayTestCase):
    gateway_class = SyslogGateway

    @classmethod
    def setUpClass(cls):
        if MISSING:
            raise unittest.SkipTest(MISSING)
        cls.tls_dir = h.make_workdir("audit-syslog-tls")
        cls.ca = sr.CertificateAuthority(cls.tls_dir, "hospital")
        cls.impostor_ca = sr.CertificateAuthority(cls.tls_dir, "impostor")
        cls.syslog_port = h.free_port()
        cls.metrics_port = h.free_port()
        client = cls.ca.issue("pacsgw")
        cls.audit_path = cls.tls_dir / "trail" / "gateway-audit.log"
        cls.audit_path.parent.mkdir()
        q = h._yaml_scalar
        SyslogGateway.audit_yaml = "\n".join([
            "audit:",
            f"  path: {q(cls.audit_path)}",
            "  syslog:",
            "    host: 127.0.0.1",
            f"    port: {cls.syslog_port}",
            f"    ca_bundle: {q(cls.ca.certificate)}",
            f"    certificate: {q(client.certificate)}",
            f"    private_key: {q(client.key)}",
            "    app_name: pacsgw-test",
            "    retry_max_s: 2",
            "metrics:",
            "  bind: 127.0.0.1",
            f"  port: {cls.metrics_port}",
        ]) + "\n"
        cls.receiver = sr.RsyslogReceiver(cls.tls_dir / "receiver", cls.syslog_port, cls.ca.issue("localhost"),
                                          cls.ca.certificate, client_ca=cls.ca.certificate)
        cls.receiver.start()
        try:
            super().setUpClass()
        except Exception:
            cls.receiver.stop()
            raise
        cls.logs = dict(cls.logs, rsyslogd=cls.receiver.log_path)

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.receiver.stop()

    # ---- helpers ---------------------------------------------------------------------------------

    def local_records(self) -> list:
        return self.audit_path.read_text().splitlines()

    def store_study(self, name: str, count: int = 2) -> list:
        first = h.fresh_copy(h.test_file("ct_le.dcm"), self.workdir / name, "0.dcm")
        files = [first] + [h.fresh_copy(first, self.workdir / name, f"{i}.dcm", new_study=False)
                           for i in range(1, count)]  # one study
        result = h.storescu(self.gateway.port, files)
        self.assertTrue(result.all_succeeded(count), result.describe())
        return files

    def wait_local(self, count: int, timeout: float = 15) -> list:
        deadline = time.monotonic() + timeout
        while len(self.local_records()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.local_records()

    def backlog(self) -> int:
        """pacsgw_audit_syslog_backlog_records from the gateway's /metrics."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as response:
            body = response.read().decode()
        values = re.findall(r"^pacsgw_audit_syslog_backlog_records (\S+)$", body, re.M)
        self.assertEqual(len(values), 1, body)
        return int(float(values[0]))

    def wait_backlog(self, expected: int, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while (value := self.backlog()) != expected and time.monotonic() < deadline:
            time.sleep(0.1)
        return value

    def assert_receiver_has_everything(self, timeout: float = 30):
        """Every local record arrived, in order, with the RFC 5424 header; duplicates (at-least-once
        after a broken connection) are the only extra messages allowed."""
        local = self.local_records()
        received = self.receiver.wait_for(len(local), timeout)
        deadline = time.monotonic() + timeout
        while True:
            records = [m.record for m in received]
            position = 0
            missing = []
            for line in local:
                try:
                    position = records.index(line, position) + 1
                except ValueError:
                    missing.append(line)
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.2)
            received = self.receiver.messages()
        self.assertEqual(missing, [], f"{len(missing)} of {len(local)} records did not arrive in order")
        self.assertTrue(set(records) <= set(local), "the receiver got a record that is not in the local log")
        for m in received:
            self.assertEqual((m.facility, m.severity, m.app_name, m.msgid, m.structured_data),
                             ("10", "5", "pacsgw-test", "IHE+RFC-3881", "-"), m.raw)
            header = m.raw.split(sr.BOM, 1)[0]
            self.assertRegex(header, r"^<85>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \S+ pacsgw-test \d+ "
                                     r"IHE\+RFC-3881 - $")
            # The syslog timestamp is the record's own EventDateTime (resent records keep their time).
            self.assertIn(f'EventDateTime="{header.split(" ")[1]}"', m.record)
        return received

    # ---- the tests (run in name order: one receiver and gateway for the class) ------------------

    def test_1_local_log_at_the_configured_path_and_store_arrives_at_the_receiver(self):
        self.assertFalse((self.gateway.data_dir / "audit.log").exists(), "audit.path was not used")
        before = len(self.wait_local(1))
        self.store_study("first")
        local = self.wait_local(before + 3)
        self.assertEqual([event(r) for r in local[before:]], [
            ("110114", 0, ("110122",), ("CT1", "GATEWAY")),                 # association accepted
            ("110113", 0, ("110129", "KEY-created"), ("GATEWAY",)),         # the study's data key
            ("110104", 0, (), ("CT1", "GATEWAY")),                          # instances stored
        ])
        received = self.assert_receiver_has_everything()
        self.assertEqual(event(received[0].record)[:3], ("110100", 0, ("110120",)))  # application start

    def test_2_outage_of_the_receiver_loses_no_record(self):
        self.assert_receiver_has_everything()
        self.assertEqual(self.wait_backlog(0), 0, "records left unacknowledged with the receiver up")
        self.assertEqual(self.receiver.stop(), 0)
        arrived = len(self.receiver.messages())
        before = len(self.local_records())
        for name in ("outage-a", "outage-b", "outage-c"):
            self.store_study(name)
        local = self.wait_local(before + 9)
        self.assertGreaterEqual(len(local), before + 9)
        self.assertEqual(len(self.receiver.messages()), arrived, "messages arrived while the receiver was down")
        log = self.gateway.log()
        self.assertIn("audit syslog: 127.0.0.1:", log)
        self.assertIn("kept in", log)
        # /metrics counts exactly the records waiting in the local log for the receiver.
        waiting = len(self.local_records()) - before
        self.assertGreaterEqual(waiting, 9)
        self.assertEqual(self.backlog(), waiting)
        self.receiver.start()
        received = self.assert_receiver_has_everything()
        self.assertEqual(self.wait_backlog(0), 0, "the backlog did not drain once the receiver was back")
        new = [event(m.record) for m in received[arrived:]]
        self.assertEqual(sum(1 for e in new if e[0] == "110104"), 3, new)   # the three stores
        self.assertEqual(sum(1 for e in new if "KEY-created" in e[2]), 3, new)

    def test_3_receiver_with_a_certificate_of_another_ca_gets_nothing(self):
        self.assert_receiver_has_everything()
        self.assertEqual(self.receiver.stop(), 0)
        impostor = sr.RsyslogReceiver(self.tls_dir / "impostor", self.syslog_port,
                                      self.impostor_ca.issue("localhost"), self.impostor_ca.certificate)
        log_before = self.gateway.log_path.stat().st_size
        impostor.start()
        try:
            before = len(self.local_records())
            self.store_study("impostor")
            self.wait_local(before + 3)
            deadline = time.monotonic() + 20
            refused = ""
            while time.monotonic() < deadline:
                refused = self.gateway.log_path.read_bytes()[log_before:].decode(errors="replace")
                if refused.count("certificate verify failed") >= 2:
                    break
                time.sleep(0.1)
            self.assertGreaterEqual(refused.count("certificate verify failed"), 2, refused)
            self.assertEqual(impostor.messages(), [], "a receiver with a foreign certificate got audit records")
        finally:
            impostor.stop()
        self.receiver.start()
        self.assert_receiver_has_everything()


if __name__ == "__main__":
    h.main()
