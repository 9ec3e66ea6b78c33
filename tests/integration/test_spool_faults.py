#!/usr/bin/env python3
"""Store-and-forward (`upstream.forward: queued`) under faults, with a real Orthanc and real DCMTK
tools. Every test prints sent / acknowledged / delivered / lost, where acknowledged means the
modality got Success, delivered means Orthanc holds the instance, and lost = acknowledged but
not delivered (must be 0).

  1. PACS down while 100 instances are sent; start it: all arrive and decrypt bit-exact.
  2. SIGKILL of the gateway in the middle of a 200-instance send; restart: nothing acknowledged lost.
  3. Spool quota reached: A700 for the excess, nothing acknowledged dropped.
  4. The PACS refuses an instance for good: quarantined with the reason, not retried, not delivered.
  5. Disk full during spool writes (a small tmpfs): A700, nothing acknowledged lost.
  6. Re-delivering an instance the PACS already holds is success (idempotent delivery).
  7. SIGTERM during a send: the association in progress finishes, the gateway exits 0, the spool holds
     exactly the acknowledged instances (no partial file), and they are delivered after a restart.

Run alone:  PACSGW_BIN=build/pacsgw python3 tests/integration/test_spool_faults.py -v
"""

import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import unittest
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pacsgw_harness as h  # noqa: E402


FAST_RETRY = {"retry_initial_s": 1, "retry_max_s": 2}
IMPLICIT_LE, EXPLICIT_LE, RLE = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.5"


def bench_files(count: int) -> list:
    files = sorted((h.cache_dir() / "bench").glob("ct_*.dcm"))[:count]
    if len(files) < count:
        raise FileNotFoundError(f"need {count} files in {h.cache_dir() / 'bench'}: run scripts/fetch-test-data.sh")
    return files


def uid_of(path: Path) -> str:
    return h.sop_instance_uid(path)


def acknowledged_files(output: str) -> list:
    """Files storescu -v got Success for: each response belongs to the last 'Sending file' line."""
    current, acked = None, []
    for line in output.splitlines():
        if "Sending file: " in line:
            current = line.split("Sending file: ", 1)[1].strip()
        elif "Received Store Response (Success" in line and current:
            acked.append(Path(current))
            current = None
    return acked


def segment_records(path: Path) -> list:
    """The records of a spool segment not yet marked delivered (gateway/spool/segment.h): after the
    32-byte header, complete frames of the header's generation with valid checksums, minus the
    entries of the segment's delivery log."""
    done = set()
    log = path.with_suffix(".done")
    raw = log.read_bytes() if log.exists() else b""
    for at in range(0, len(raw) - 15, 16):
        if zlib.crc32(raw[at:at + 12]) == struct.unpack_from("<I", raw, at + 12)[0]:
            done.add(struct.unpack_from("<QI", raw, at))
    data, records = path.read_bytes(), []
    if len(data) < 32 or data[:8] != b"PGWSEG01" or zlib.crc32(data[:28]) != struct.unpack_from("<I", data, 28)[0]:
        return records
    generation, offset = data[8:16], 32
    while offset + 12 <= len(data) and data[offset:offset + 8] == b"PGWSPL01":
        header = struct.unpack_from("<I", data, offset + 8)[0]
        if offset + 24 + header > len(data):
            break
        length = 12 + header + 8 + struct.unpack_from("<Q", data, offset + 12 + header)[0] + 4
        end = offset + length
        if end + 12 > len(data) or zlib.crc32(data[offset:end - 4]) != struct.unpack_from("<I", data, end - 4)[0]:
            break
        frame_crc = zlib.crc32(data[end - 4:end], zlib.crc32(generation))
        if data[end:end + 8] != generation or struct.unpack_from("<I", data, end + 8)[0] != frame_crc:
            break
        if (offset, length) not in done:
            records.append(data[offset:end])
        offset = end + 12
    return records


def record_uid(record) -> str:
    """SOP Instance UID from a spool record's header (see gateway/spool/spool_record.h)."""
    data = record.read_bytes() if isinstance(record, Path) else record
    path = record if isinstance(record, Path) else "a segment record"
    if data[:8] != b"PGWSPL01":
        raise AssertionError(f"{path} is not a spool record")
    pos = 8 + 4 + 8
    for _ in range(2):  # SOP Class UID, then SOP Instance UID
        length = struct.unpack_from("<H", data, pos)[0]
        value, pos = data[pos + 2:pos + 2 + length], pos + 2 + length
    return value.decode("ascii")


def wait_until(predicate, timeout: float, what: str, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


class RefusingOrthanc(h.Orthanc):
    """Orthanc configured to refuse RLE Lossless: a permanent refusal (the PACS will not take that
    transfer syntax however often it is offered). Orthanc 1.10 answers Success even for instances its
    Lua filters discard, so a configuration refusal is the non-transient error it can really give."""

    def config(self) -> dict:
        config = super().config()
        config["AcceptedTransferSyntaxes"] = [IMPLICIT_LE, EXPLICIT_LE]
        return config


class SpoolFaultTest(h.LogDumpingTestCase):
    """Each test gets its own Orthanc and gateway (started and stopped by the test itself)."""

    def setUp(self):
        type(self).failed = False
        self.workdir = h.make_workdir(self.id().rsplit(".", 1)[-1])
        self.gateway_port = h.free_port()
        self.pacs = None
        self.gateway = None
        self.cleanups = []

    def tearDown(self):
        if self.gateway:
            self.gateway.stop()
        if self.pacs:
            self.pacs.stop()
        for cleanup in reversed(self.cleanups):
            cleanup()

    def run(self, result=None):
        outcome = super().run(result)  # prints the logs of a failed test first
        workdir = getattr(self, "workdir", None)
        if workdir is not None:
            if type(self).failed or h.keep_temp_dirs():
                sys.stderr.write(f"\nlogs and files kept in {workdir}\n")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
        return outcome

    def make(self, orthanc_class=h.Orthanc, start_pacs=True, **spool):
        self.pacs = orthanc_class(self.workdir / "pacs", gateway_port=self.gateway_port)
        options = dict(FAST_RETRY)
        options.update(spool)
        self.gateway = h.Gateway(self.workdir / "gateway", upstream_port=self.pacs.dicom_port,
                                 port=self.gateway_port, forward="queued", spool=options, log_level="debug")
        type(self).logs = {"pacsgw serve": self.gateway.log_path, "Orthanc": self.pacs.log_path}
        if start_pacs:
            self.pacs.start()
        self.gateway.start()

    # what the PACS holds --------------------------------------------------------------------------
    def pacs_uids(self) -> set:
        if not self.pacs.alive():
            return set()
        instances = self.pacs.get_json("/instances?expand")
        return {i["MainDicomTags"].get("SOPInstanceUID") for i in instances}

    def spool_records(self, sub: str = "queue", suffix: str = ".rec") -> list:
        """Files with that suffix; for queued records (.rec in queue/) also those in segments."""
        found = sorted((self.gateway.spool_dir / sub).glob(f"*{suffix}"))
        if sub == "queue" and suffix == ".rec":
            for segment in sorted((self.gateway.spool_dir / sub).glob("*.seg")):
                found.extend(segment_records(segment))
        return found

    def spool_status(self) -> str:
        result = self.gateway.cli("spool", "status", "--config", self.gateway.config_path)
        self.assertEqual(result.returncode, 0, result.describe())
        return result.output

    def status_number(self, output: str, label: str) -> int:
        match = re.search(rf"^{label}:\s+(\d+)", output, re.M)
        self.assertIsNotNone(match, f"no '{label}' in spool status:\n{output}")
        return int(match.group(1))

    def report(self, name: str, sent: int, acked: set, extra: str = "") -> int:
        delivered = acked & self.pacs_uids()
        lost = len(acked) - len(delivered)
        print(f"\n[{name}] sent={sent} acknowledged={len(acked)} delivered={len(delivered)} lost={lost} {extra}",
              flush=True)
        return lost

    def wait_delivered(self, uids: set, timeout: float):
        wait_until(lambda: uids <= self.pacs_uids(), timeout,
                   f"{len(uids - self.pacs_uids())} of {len(uids)} acknowledged instances still not in the PACS")

    def assert_bit_exact(self, files: list):
        out = self.workdir / "check"
        out.mkdir(exist_ok=True)
        for sent in files:
            copy = self.pacs.download_by_uid(uid_of(sent), out / f"pacs-{sent.name}")
            stored = h.read(copy)
            self.assertTrue(h.key_reference(stored), f"{sent.name}: the PACS copy carries no key reference")
            self.assertNotEqual(h.pixel_element_bytes(stored), h.pixel_element_bytes(h.read(sent)),
                                f"{sent.name}: the PACS holds plaintext pixels")
            target = out / f"decrypted-{sent.name}"
            result = self.gateway.decrypt(copy, target)
            self.assertEqual(result.returncode, 0, result.describe())
            self.assertEqual(h.pixel_element_bytes(h.read(target)), h.pixel_element_bytes(h.read(sent)),
                             f"{sent.name}: decrypted pixels differ from the original")

    # 1 ----------------------------------------------------------------------------------------------
    def test_1_pacs_down_then_up_delivers_everything_bit_exact(self):
        files = bench_files(100)
        self.make(start_pacs=False)
        result = h.storescu(self.gateway.port, files, timeout=300)
        acked = {uid_of(f) for f in acknowledged_files(result.output)}
        self.assertEqual(len(acked), 100, f"not every instance acknowledged while the PACS is down:\n"
                                          f"{result.describe()[-3000:]}")
        status = self.spool_status()
        self.assertEqual(self.status_number(status, "queued") + self.status_number(status, "in flight"), 100, status)
        self.assertEqual(len(self.spool_records()), 100)
        self.pacs.start()
        started = time.monotonic()
        self.wait_delivered(acked, timeout=180)
        seconds = time.monotonic() - started
        lost = self.report("pacs down", len(files), acked, f"(drained {seconds:.1f} s after the PACS came up)")
        self.assertEqual(lost, 0)
        self.assertEqual(self.pacs.instance_count(), 100)
        self.assert_bit_exact(files)
        wait_until(lambda: not self.spool_records(), 30, "the spool did not empty after delivery")
        self.assertEqual(self.gateway.stop(), 0, "SIGTERM did not stop the gateway cleanly")

    # 2 ----------------------------------------------------------------------------------------------
    def test_2_sigkill_mid_send_loses_nothing_acknowledged(self):
        files = bench_files(200)
        self.make(associations=1)
        log = self.workdir / "storescu.log"
        args = ["storescu", "-v", "-ta", "30", "-td", "30", "-aec", "GATEWAY", "-aet", "CT1", h.LOOPBACK,
                str(self.gateway.port)] + [str(f) for f in files]
        with open(log, "wb") as out:
            modality = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=h.tool_env())
        try:
            acked_so_far = lambda: len(acknowledged_files(log.read_text(errors="replace")))  # noqa: E731
            wait_until(lambda: acked_so_far() >= 20, 120, "20 acknowledgements")
            # A stalled PACS: deliveries hang while the modality keeps sending, so a backlog builds up.
            self.pacs.proc.send_signal(signal.SIGSTOP)
            wait_until(lambda: acked_so_far() >= 100, 120, "100 acknowledgements")
            self.gateway.kill()
            queued_at_kill = len(self.spool_records())
            in_segments_at_kill = sum(len(segment_records(s)) for s in self.spool_records(suffix=".seg"))
            partial_at_kill = len(self.spool_records(suffix=".part"))
            self.pacs.proc.send_signal(signal.SIGCONT)
            modality.wait(timeout=120)
        finally:
            if modality.poll() is None:
                modality.kill()
            if self.pacs.alive():
                self.pacs.proc.send_signal(signal.SIGCONT)
        acked = {uid_of(f) for f in acknowledged_files(log.read_text(errors="replace"))}
        self.assertGreaterEqual(len(acked), 100)
        self.assertLess(len(acked), 200, "the gateway was killed after the send had finished")
        self.assertGreater(queued_at_kill, 0, "nothing was waiting in the spool at the kill")
        self.assertGreater(in_segments_at_kill, 0, "the restart had no segment records to recover")
        self.gateway.start()
        self.wait_delivered(acked, timeout=180)
        lost = self.report("sigkill", len(files), acked,
                           f"(in spool at kill: {queued_at_kill} records, {in_segments_at_kill} of them in segments, "
                           f"{partial_at_kill} incomplete writes)")
        self.assertEqual(lost, 0)
        wait_until(lambda: not self.spool_records(), 60, "the spool did not empty after restart")
        self.assertFalse(self.spool_records(suffix=".part"), "an incomplete write survived the restart")
        self.assertEqual(self.pacs.instance_count(), len(self.pacs_uids()))
        self.assert_bit_exact([f for f in files if uid_of(f) in acked][:20])

    # 3 ----------------------------------------------------------------------------------------------
    def test_3_quota_refuses_the_excess_and_keeps_the_rest(self):
        files = bench_files(10)
        self.make(start_pacs=False, max_instances=6)
        result = h.storescu(self.gateway.port, files, timeout=180, extra=["--no-halt"])
        acked_files = acknowledged_files(result.output)
        acked = {uid_of(f) for f in acked_files}
        refused = [s for s in result.statuses if s.startswith("Refused: OutOfResources")]
        self.assertEqual(len(acked), 6, result.describe()[-3000:])
        self.assertEqual(len(refused), 4, f"the excess was not answered A700:\n{result.describe()[-3000:]}")
        self.assertEqual(len(self.spool_records()), 6)
        self.assertIn("spool full", self.gateway.log())
        self.pacs.start()
        self.wait_delivered(acked, timeout=120)
        lost = self.report("quota", len(files), acked, f"(refused A700: {len(refused)})")
        self.assertEqual(lost, 0)
        self.assertEqual(self.pacs_uids(), acked, "the PACS holds something the modality was refused for")
        # Room again once delivered: the modality's retry of the refused ones now succeeds.
        wait_until(lambda: not self.spool_records(), 30, "the spool did not empty")
        retry = h.storescu(self.gateway.port, [f for f in files if f not in acked_files])
        self.assertTrue(retry.all_succeeded(4), retry.describe())
        self.wait_delivered({uid_of(f) for f in files}, timeout=60)

    # 4 ----------------------------------------------------------------------------------------------
    def test_4_permanent_refusal_is_quarantined_not_retried(self):
        self.make(orthanc_class=RefusingOrthanc)
        work = self.workdir / "files"
        good = [h.fresh_copy(h.test_file("ct_le.dcm"), work) for _ in range(2)]
        bad = h.fresh_copy(h.test_file("ct_rle.dcm"), work)
        result = h.storescu(self.gateway.port, good)
        self.assertTrue(result.all_succeeded(2), result.describe())
        result = h.dcmsend(self.gateway.port, [bad])  # stays RLE on the wire and in the spool
        self.assertTrue(result.all_succeeded(1), result.describe())
        bad_uid = uid_of(bad)
        acked = {uid_of(f) for f in good + [bad]}
        wait_until(lambda: len(self.spool_records("quarantine")) == 1, 60, "the refused instance was not quarantined")
        self.wait_delivered({uid_of(f) for f in good}, timeout=60)
        time.sleep(3 * FAST_RETRY["retry_max_s"])  # long enough for several retries, were there any
        attempts = [line for line in self.gateway.log().splitlines() if "quarantined SOP Instance " + bad_uid in line]
        self.assertEqual(len(attempts), 1, "the refused instance was retried:\n" + "\n".join(attempts))
        self.assertNotIn(bad_uid, self.pacs_uids())
        status = self.spool_status()
        self.assertEqual(self.status_number(status, "quarantined"), 1, status)
        self.assertEqual(self.status_number(status, "queued"), 0, status)
        self.assertIn(bad_uid, status)
        self.assertIn(f"transfer syntax {RLE}", status, f"the reason does not say what was refused:\n{status}")
        self.assertEqual(self.status_number(status, "delivered"), 2, f"counted as delivered:\n{status}")
        lost = self.report("quarantine", 3, acked - {bad_uid}, "(1 quarantined with its reason)")
        self.assertEqual(lost, 0)
        # `spool retry` sends it again; the PACS still refuses, so it is back in quarantine, once.
        retry = self.gateway.cli("spool", "retry", "--config", self.gateway.config_path)
        self.assertIn("returned 1", retry.output, retry.describe())
        wait_until(lambda: self.gateway.log().count("quarantined SOP Instance " + bad_uid) == 2, 30,
                   "the retried instance was not quarantined again")
        self.assertEqual(len(self.spool_records("quarantine")), 1)
        self.assertNotIn(bad_uid, self.pacs_uids())

    # 5 ----------------------------------------------------------------------------------------------
    def test_5_disk_full_during_spool_write(self):
        spool_dir = self.workdir / "small-spool"
        spool_dir.mkdir(parents=True)
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", str(spool_dir)],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if mounted.returncode != 0:
            self.skipTest(f"cannot mount a small tmpfs here (needs root): {mounted.stdout.strip()}")
        self.cleanups.append(lambda: subprocess.run(["umount", "-l", str(spool_dir)]))
        files = bench_files(10)  # 530 KB each: about five fit into 3 MB
        self.make(start_pacs=False, dir=str(spool_dir))
        result = h.storescu(self.gateway.port, files, timeout=180, extra=["--no-halt"])
        acked_files = acknowledged_files(result.output)
        acked = {uid_of(f) for f in acked_files}
        refused = [s for s in result.statuses if s.startswith("Refused: OutOfResources")]
        self.assertGreater(len(acked), 0, result.describe()[-3000:])
        self.assertGreater(len(refused), 0, f"no A700 when the disk filled up:\n{result.describe()[-3000:]}")
        self.assertEqual(len(acked) + len(refused), len(files), result.describe()[-3000:])
        self.assertIn("No space left on device", self.gateway.log())
        self.assertFalse(self.spool_records(suffix=".part"), "a failed write left a partial file behind")
        self.assertEqual(len(self.spool_records()), len(acked))
        self.assertTrue(self.gateway.alive())
        self.pacs.start()
        self.wait_delivered(acked, timeout=120)
        lost = self.report("disk full", len(files), acked, f"(refused A700: {len(refused)})")
        self.assertEqual(lost, 0)
        self.assertEqual(self.pacs_uids(), acked)
        wait_until(lambda: not self.spool_records(), 30, "the spool did not empty")
        retry = h.storescu(self.gateway.port, [f for f in files if f not in acked_files][:3])
        self.assertTrue(retry.all_succeeded(min(3, len(refused))), retry.describe())

    # 6 ----------------------------------------------------------------------------------------------
    def test_6_redelivery_of_an_instance_the_pacs_has_is_success(self):
        self.make()
        sent = h.fresh_copy(h.test_file("ct_le.dcm"), self.workdir / "files")
        for _ in range(2):  # the modality's retry after a lost response: the same SOP instance again
            result = h.storescu(self.gateway.port, [sent])
            self.assertTrue(result.all_succeeded(1), result.describe())
        wait_until(lambda: "\"delivered\": 2" in (self.gateway.spool_dir / "status.json").read_text()
                   if (self.gateway.spool_dir / "status.json").exists() else False, 30,
                   "both deliveries counted as delivered")
        self.assertEqual(self.pacs.instance_count(), 1)
        self.assertEqual(self.spool_records("quarantine"), [])
        self.report("re-delivery", 2, {uid_of(sent)}, "(one SOP instance sent and acknowledged twice, delivered twice)")
        self.assert_bit_exact([sent])

    # 7 ----------------------------------------------------------------------------------------------
    def test_7_sigterm_mid_send_drains_and_keeps_the_spool_consistent(self):
        files = bench_files(60)
        self.make(start_pacs=False)
        log = self.workdir / "storescu.log"
        args = ["storescu", "-v", "-ta", "30", "-td", "30", "-aec", "GATEWAY", "-aet", "CT1", h.LOOPBACK,
                str(self.gateway.port)] + [str(f) for f in files]
        with open(log, "wb") as out:
            modality = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=h.tool_env())
        try:
            wait_until(lambda: len(acknowledged_files(log.read_text(errors="replace"))) >= 10, 120,
                       "10 acknowledgements")
            self.gateway.proc.send_signal(signal.SIGTERM)
            self.assertEqual(self.gateway.proc.wait(timeout=60), 0, "the gateway did not exit cleanly on SIGTERM")
            modality.wait(timeout=60)
        finally:
            if modality.poll() is None:
                modality.kill()
        acked = {uid_of(f) for f in acknowledged_files(log.read_text(errors="replace"))}
        self.assertFalse(self.spool_records(suffix=".part"), "SIGTERM left a partial write in the spool")
        self.assertEqual({record_uid(r) for r in self.spool_records()}, acked,
                         "the spool does not hold exactly the acknowledged instances")
        self.pacs.start()
        self.gateway.start()
        self.wait_delivered(acked, timeout=120)
        lost = self.report("sigterm", len(files), acked, "(drained on restart)")
        self.assertEqual(lost, 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
