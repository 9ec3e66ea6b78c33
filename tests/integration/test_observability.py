#!/usr/bin/env python3
"""Metrics and health endpoints of a running gateway: scraped over HTTP while real stores and
retrievals go through it, parsed and checked by Prometheus's own `promtool`, and readiness that
follows the PACS going away.

Run alone:  PACSGW_BIN=build/pacsgw python3 tests/integration/test_observability.py -v
"""

import json
import re
import shutil
import subprocess
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pacsgw_harness as h  # noqa: E402
import retrieve_helpers as rh  # noqa: E402

SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> dict:
    """{(name, frozenset(labels)): value} for every sample line of the exposition text."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        if not m:
            raise AssertionError(f"not a sample line: {line!r}")
        labels = frozenset(LABEL_RE.findall(m.group(3) or ""))
        samples[(m.group(1), labels)] = float(m.group(4))
    return samples


def sample(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def http_get(port: int, path: str, timeout: float = 10):
    """(status, body) of GET http://127.0.0.1:port/path."""
    try:
        with urllib.request.urlopen(f"http://{h.LOOPBACK}:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class MetricsGateway(rh.RetrieveGateway):
    """The harness gateway with a `metrics:` section on a free loopback port, logging JSON lines."""

    def __init__(self, workdir, **kwargs):
        super().__init__(workdir, **kwargs)
        self.metrics_port = h.free_port()

    def config_yaml(self) -> str:
        lines = super().config_yaml().splitlines()
        at = next(i for i, line in enumerate(lines) if line.startswith("  log_level:"))
        lines.insert(at + 1, "  log_format: json")
        lines += ["metrics:", f"  bind: {h.LOOPBACK}", f"  port: {self.metrics_port}"]
        return "\n".join(lines) + "\n"


class ObservabilityTest(h.PacsAndGatewayTestCase):
    gateway_class = MetricsGateway

    @classmethod
    def setUpClass(cls):
        cls.workstation_port = h.free_port()
        cls.gateway_options = {"workstations": [("WS1", h.LOOPBACK, cls.workstation_port, "decrypt")]}
        super().setUpClass()

    def scrape(self) -> dict:
        status, body = http_get(self.gateway.metrics_port, "/metrics")
        self.assertEqual(status, 200, body)
        return parse_metrics(body)

    def wait_ready(self, want_ready: bool, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            status, body = http_get(self.gateway.metrics_port, "/health/ready")
            if (status == 200) == want_ready:
                return body
            if time.monotonic() > deadline:
                self.fail(f"/health/ready still {status} after {timeout} s:\n{body}")
            time.sleep(0.2)

    def scratch(self, name: str) -> Path:
        path = self.workdir / "files" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    # 1: runs first (tests run in name order); the last one stops the PACS.
    def test_1_live_and_ready_with_the_pacs_answering(self):
        self.assertEqual(http_get(self.gateway.metrics_port, "/health/live")[0], 200)
        body = self.wait_ready(True, timeout=30)
        self.assertIn("keystore: ok", body)
        self.assertIn("upstream: ok (C-ECHO answered", body)
        self.assertEqual(sample(self.scrape(), "pacsgw_ready"), 1)
        self.assertEqual(http_get(self.gateway.metrics_port, "/nope")[0], 404)

    def test_2_counters_follow_a_store_scraped_while_it_runs(self):
        directory = self.scratch("store")
        study, series = rh.new_uid(), rh.new_uid()
        files = [rh.derive(h.test_file("ct_le.dcm"), directory / f"{i}.dcm", study, series, i + 1,
                           "OBS-1", "Observability^Test")
                 for i in range(4)]
        before = self.scrape()

        # Scrape continuously while the store runs: every scrape must answer and parse.
        scrapes, errors, stop = [], [], threading.Event()

        def scraper():
            while not stop.is_set():
                try:
                    scrapes.append(self.scrape())
                except Exception as e:  # noqa: BLE001 - reported below
                    errors.append(repr(e))
                time.sleep(0.02)

        thread = threading.Thread(target=scraper)
        thread.start()
        try:
            result = h.storescu(self.gateway.port, files, calling="CT1")
        finally:
            stop.set()
            thread.join(timeout=30)
        self.assertTrue(result.all_succeeded(len(files)), result.describe())
        self.assertEqual(errors, [])
        self.assertGreater(len(scrapes), 1)
        # An unknown caller: its association is refused and counted as such.
        h.storescu(self.gateway.port, files[:1], calling="INTRUDER")
        after = self.scrape()

        def delta(name, **labels):
            return sample(after, name, **labels) - sample(before, name, **labels)

        self.assertEqual(delta("pacsgw_associations_total", role="modality", result="accepted"), 1)
        self.assertEqual(delta("pacsgw_associations_total", role="unknown", result="rejected"), 1)
        self.assertEqual(delta("pacsgw_instances_total", path="store", outcome="stored", status="0000"), 4)
        self.assertEqual(delta("pacsgw_instances_total", path="store", outcome="forwarded", status="0000"), 4)
        self.assertEqual(delta("pacsgw_encrypt_seconds_count", backend="aes-256-gcm"), 4)
        self.assertGreater(delta("pacsgw_encrypt_seconds_sum", backend="aes-256-gcm"), 0)
        stored_bytes = sum(h.pixel_data_span(f)[1] for f in files)
        self.assertGreaterEqual(delta("pacsgw_bytes_total", direction="to_pacs"), stored_bytes)
        # One study key: created once (miss), then served from memory.
        self.assertEqual(delta("pacsgw_key_cache_lookups_total", result="miss"), 1)
        self.assertEqual(delta("pacsgw_key_cache_lookups_total", result="hit"), 3)
        self.assertEqual(delta("pacsgw_upstream_errors_total", kind="store"), 0)
        self.assertEqual(sample(after, "pacsgw_associations_active"), 0)
        # The PACS really holds the four (ciphertext) instances the counters claim.
        for f in files:
            self.assertIsNotNone(self.pacs.find_instance(h.sop_instance_uid(f)))
        type(self).stored_study = study

    def test_2b_retrieve_counts_decryptions_and_deliveries(self):
        before = self.scrape()
        directory = self.scratch("get")
        result = rh.getscu(self.gateway.port, directory,
                           {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": self.stored_study})
        received = list(directory.glob("*"))
        self.assertEqual(len(received), 4, result.describe() if hasattr(result, "describe") else result)
        after = self.scrape()

        def delta(name, **labels):
            return sample(after, name, **labels) - sample(before, name, **labels)

        self.assertEqual(delta("pacsgw_associations_total", role="workstation", result="accepted"), 1)
        self.assertEqual(delta("pacsgw_decrypt_seconds_count", backend="aes-256-gcm"), 4)
        self.assertEqual(delta("pacsgw_instances_total", path="retrieve", outcome="forwarded", status="0000"), 4)
        self.assertGreater(delta("pacsgw_bytes_total", direction="to_workstation"), 0)

    def test_3_json_log_has_one_object_per_line_with_the_text_log_fields(self):
        lines = [line for line in self.gateway.log_path.read_text(errors="strict").splitlines() if line]
        self.assertGreater(len(lines), 5)
        records = []
        for line in lines:
            record = json.loads(line)  # every single line is one JSON object
            self.assertEqual(set(record), {"time", "level", "thread", "message"}, line)
            self.assertRegex(record["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")
            self.assertIn(record["level"], ("trace", "debug", "info", "warning", "error", "critical"))
            self.assertIsInstance(record["thread"], int)
            records.append(record)
        messages = [r["message"] for r in records]
        self.assertTrue(any(m.startswith("listening on") for m in messages), messages[:5])
        self.assertTrue(any("INTRUDER" in m and "rejected" in m and m.startswith("audit:") for m in messages))

    def test_4_promtool_accepts_the_exposition_format(self):
        promtool = shutil.which("promtool")
        if promtool is None:
            self.skipTest("promtool not installed (Debian package 'prometheus'; scripts/setup.sh installs it)")
        status, body = http_get(self.gateway.metrics_port, "/metrics")
        self.assertEqual(status, 200)
        self.assertIn("pacsgw_encrypt_seconds_bucket{", body)  # histograms are part of what is checked
        check = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=60)
        self.assertEqual(check.returncode, 0, f"promtool:\n{check.stdout}{check.stderr}")
        self.assertEqual((check.stdout + check.stderr).strip(), "")

    def test_5_not_ready_once_the_pacs_stops_answering(self):
        self.pacs.stop()
        body = self.wait_ready(False, timeout=60)
        self.assertIn("upstream: FAIL", body)
        self.assertIn("keystore: ok", body)
        self.assertEqual(http_get(self.gateway.metrics_port, "/health/live")[0], 200)
        self.assertGreaterEqual(sample(self.scrape(), "pacsgw_upstream_errors_total", kind="echo"), 1)


class QueuedGateway(MetricsGateway):
    """Store-and-forward with a spool quota of 2 instances: 95 % of it is reached by 2 waiting instances."""

    def config_yaml(self) -> str:
        lines = super().config_yaml().splitlines()
        at = next(i for i, line in enumerate(lines) if line.startswith("upstream:"))
        lines.insert(at + 1, "  forward: queued")
        lines += ["spool:", "  max_instances: 2", "  retry_initial_s: 1", "  retry_max_s: 1"]
        return "\n".join(lines) + "\n"


class SpoolReadinessTest(h.PacsAndGatewayTestCase):
    gateway_class = QueuedGateway

    def ready_body(self):
        return http_get(self.gateway.metrics_port, "/health/ready")

    def wait_for(self, what, condition, timeout=60):
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                self.fail(f"timed out waiting for {what}; /health/ready: {self.ready_body()}")
            time.sleep(0.2)

    def test_not_ready_while_the_spool_is_at_its_quota_and_ready_again_once_drained(self):
        self.wait_for("readiness", lambda: self.ready_body()[0] == 200)
        self.assertIn("spool: ok", self.ready_body()[1])
        files = [rh.derive(h.test_file("ct_le.dcm"), self.workdir / f"q{i}.dcm", rh.new_uid(), rh.new_uid(), 1,
                           "SPOOL-1", "Spool^Test") for i in range(2)]
        self.pacs.stop()  # the PACS is down: accepted instances wait in the spool
        sent = h.storescu(self.gateway.port, files)
        self.assertTrue(sent.all_succeeded(2), sent.describe())
        status, body = self.ready_body()
        self.assertEqual(status, 503, body)
        self.assertIn("spool: FAIL (spool holds 2 of 2 instances)", body)
        self.assertEqual(sample(parse_metrics(http_get(self.gateway.metrics_port, "/metrics")[1]),
                                "pacsgw_spool_depth"), 2)
        self.pacs.start()  # back: the forwarder drains the spool, readiness returns
        self.wait_for("the spool to drain and readiness to return", lambda: self.ready_body()[0] == 200, 90)
        self.assertIn("spool: ok", self.ready_body()[1])
        for f in files:
            self.assertIsNotNone(self.pacs.find_instance(h.sop_instance_uid(f)))


if __name__ == "__main__":
    h.main()
