#!/usr/bin/env python3
"""Large objects through the durable spool (`upstream.forward: queued`) in bounded memory. Native Pixel
Data above limits.stream_above_mb is encrypted while it arrives (as in sync mode), the encrypted object is
written into a spool record file of its own in pieces (temporary file, fsync, rename, directory fsync)
before the modality hears Success, and the forwarder sends it to the PACS from that file in pieces. The
gateway's RSS is sampled throughout and printed.

  1. One large object while the PACS is down: acknowledged, the spool holds one valid record file of
     ciphertext (no plaintext sample in it), it survives a SIGKILL of the gateway, and is delivered once
     the PACS is up and retrieved bit-exact.
  2. Two large objects at once on two associations: both delivered bit-exact, RSS bounded.
  3. SIGKILL while a large object's record is being written: after the restart the half-written file is
     gone and nothing reaches the PACS.
  4. The spool's disk fills up during a large object's write: A700, nothing half-written left in the
     spool or sent to the PACS, and the gateway keeps serving.

Run alone:  PACSGW_BIN=build/pacsgw python3 tests/integration/test_large_objects_queued.py -v
"""

import mmap
import shutil
import struct
import subprocess
import sys
import threading
import time
import unittest
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pacsgw_harness as h  # noqa: E402
from large_object_helpers import (STREAM_ABOVE_MB, LargeObjectAssertions, RssSampler, pixel_data_span,  # noqa: E402
                                  rss_kib, store_at_once, with_large_object_limits, write_multiframe)

LARGE_FRAMES = 1024            # 512 x 512 x 16 bit: 512 KiB per frame, 512 MiB in all
CONCURRENT_FRAMES = 512        # 256 MiB each
RSS_GROWTH_LIMIT_MIB = 128     # what the gateway may add over its own RSS before the object (a LibTorch
                               # build starts at about 160 MiB); holding a 512 MiB object would add 512
OUT_OF_RESOURCES = "Refused: OutOfResources"


def wait_until(predicate, timeout: float, what: str, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


def check_record_file(path: Path) -> dict:
    """Parses a spool record file (gateway/spool/spool_record.h) without loading it whole: the payload
    length must account for every byte and the CRC-32 of everything before the trailer must match."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4096)
        assert head[:8] == b"PGWSPL01", f"{path} is not a spool record"
        header_length = struct.unpack_from("<I", head, 8)[0]
        fields, pos = [], 12 + 8
        for _ in range(4):
            length = struct.unpack_from("<H", head, pos)[0]
            fields.append(head[pos + 2:pos + 2 + length].decode("ascii"))
            pos += 2 + length
        payload_length = struct.unpack_from("<Q", head, 12 + header_length)[0]
        payload_offset = 12 + header_length + 8
        assert payload_offset + payload_length + 4 == size, f"{path}: payload length does not match the file"
        f.seek(0)
        crc, left = 0, size - 4
        while left:
            chunk = f.read(min(left, 16 << 20))
            crc = zlib.crc32(chunk, crc)
            left -= len(chunk)
        assert struct.unpack("<I", f.read(4))[0] == crc, f"{path}: checksum mismatch"
    return {"sop_class": fields[0], "sop_instance": fields[1], "transfer_syntax": fields[2],
            "payload_offset": payload_offset, "payload_length": payload_length}


def plaintext_sample(source: Path, at_fraction: float = 0.5, length: int = 64) -> bytes:
    offset, pixel_length = pixel_data_span(source)
    with open(source, "rb") as f:
        f.seek(offset + int(pixel_length * at_fraction))
        return f.read(length)


def file_contains(path: Path, needle: bytes) -> bool:
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return data.find(needle) >= 0


class QueuedLargeGateway(h.Gateway):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("forward", "queued")
        kwargs.setdefault("spool", {"retry_initial_s": 1, "retry_max_s": 2})
        super().__init__(*args, **kwargs)

    def config_yaml(self) -> str:
        return with_large_object_limits(super().config_yaml(), max_in_flight_mb=4096)


class QueuedLargeObjectsBase(LargeObjectAssertions):
    """Assertions shared by the test classes below (they need self.gateway and self.pacs)."""

    def spool_files(self, pattern: str) -> list:
        queue = self.gateway.spool_dir / "queue"
        return sorted(queue.glob(pattern)) if queue.exists() else []

    def large_records(self) -> list:
        return [p for p in self.spool_files("*.rec") if p.stat().st_size > STREAM_ABOVE_MB << 20]


class QueuedLargeObjects(QueuedLargeObjectsBase, h.PacsAndGatewayTestCase):
    gateway_class = QueuedLargeGateway
    gateway_options = {"log_level": "info"}

    def test_1_large_object_spooled_while_the_pacs_is_down_then_delivered_bit_exact(self):
        self.require_disk(4)
        source = self.workdir / "large.dcm"
        plain_sha = write_multiframe(source, LARGE_FRAMES)
        sample = plaintext_sample(source)
        uid = h.sop_instance_uid(source)
        size_mib = source.stat().st_size / 2**20
        self.pacs.stop()
        pid = self.gateway.proc.pid
        before = rss_kib(pid)["VmRSS"] / 1024
        t0 = time.monotonic()
        with RssSampler(pid) as receiving:
            result = h.storescu(self.gateway.port, [source], timeout=300)
        stored_s = time.monotonic() - t0
        self.assertTrue(result.all_succeeded(1), result.describe())
        self.assertIn(uid, self.gateway.log())
        self.assertIn("spooled in pieces", self.gateway.log())
        # Acknowledged while the PACS was down: the spool holds exactly one complete record file.
        records = self.large_records()
        self.assertEqual(len(records), 1, f"queue holds {self.spool_files('*')}")
        self.assertEqual(self.spool_files("*.part"), [])
        meta = check_record_file(records[0])
        self.assertEqual(meta["sop_instance"], uid)
        self.assertFalse(file_contains(records[0], sample), "the spool record holds plaintext pixels")
        self.assert_no_plaintext_left_on_disk()
        source.unlink()
        # Durable: a SIGKILL now loses nothing; the restarted gateway finds the record and delivers it.
        self.gateway.kill()
        self.gateway.start()
        pid = self.gateway.proc.pid
        self.assertEqual(self.large_records(), records)
        self.pacs.start()
        t1 = time.monotonic()
        with RssSampler(pid) as forwarding:
            wait_until(lambda: self.pacs.find_instance(uid) is not None, 240, "the large object reached the PACS")
            wait_until(lambda: not self.large_records(), 60, "the delivered record left the spool")
        forwarded_s = time.monotonic() - t1
        print(f"\nqueued large object: {size_mib:.0f} MiB acknowledged in {stored_s:.1f} s, delivered in "
              f"{forwarded_s:.1f} s after the PACS came up; gateway RSS before {before:.0f} MiB, peak while "
              f"receiving and spooling {receiving.peak_mib:.0f} MiB, peak while forwarding "
              f"{forwarding.peak_mib:.0f} MiB (limit: before + {RSS_GROWTH_LIMIT_MIB} MiB)", flush=True)
        self.assertIn("Pixel Data read in pieces", self.gateway.log())
        self.assertGreater(len(receiving.samples), 5)
        self.assertLess(receiving.peak_mib - before, RSS_GROWTH_LIMIT_MIB, "the gateway held the large object in memory")
        self.assertLess(forwarding.peak_mib - before, RSS_GROWTH_LIMIT_MIB,
                        "the forwarder held the large object in memory")
        self.roundtrip_uid(uid, plain_sha, "large")

    def test_3_sigkill_during_a_large_spool_write_leaves_nothing_to_send(self):
        self.require_disk(2)
        source = self.workdir / "killed.dcm"
        write_multiframe(source, CONCURRENT_FRAMES)
        uid = h.sop_instance_uid(source)
        store = threading.Thread(target=lambda: h.storescu(self.gateway.port, [source], timeout=300))
        store.start()
        # Killed while the record is being written (its .part file exists), before any acknowledgement.
        wait_until(lambda: self.spool_files("*.part"), 120, "the spool write never started", interval=0.005)
        self.gateway.kill()
        store.join(60)
        self.gateway.start()
        self.assertIn("incomplete writes left by an interrupted gateway", self.gateway.log())
        self.assertEqual(self.spool_files("*.part"), [])
        self.assertEqual(self.large_records(), [])
        self.assert_no_plaintext_left_on_disk()
        time.sleep(2)  # the forwarder would have picked it up by now
        self.assertIsNone(self.pacs.find_instance(uid), "a half-written object reached the PACS")
        source.unlink()

    def test_2_two_large_objects_at_once_on_two_associations(self):
        self.require_disk(4)
        sources = [self.workdir / f"concurrent-{i}.dcm" for i in range(2)]
        shas = [write_multiframe(path, CONCURRENT_FRAMES) for path in sources]
        uids = [h.sop_instance_uid(path) for path in sources]
        pid = self.gateway.proc.pid
        before = rss_kib(pid)["VmRSS"] / 1024
        t0 = time.monotonic()
        with RssSampler(pid) as sampler:
            results = store_at_once(self.gateway.port, sources)
            for result in results:
                self.assertIsNotNone(result, "a store did not finish")
                self.assertTrue(result.all_succeeded(1), result.describe())
            wait_until(lambda: all(self.pacs.find_instance(uid) for uid in uids), 240,
                       "both large objects reached the PACS")
        seconds = time.monotonic() - t0
        print(f"\nqueued, two large objects at once: 2 x {sources[0].stat().st_size / 2**20:.0f} MiB acknowledged "
              f"and delivered in {seconds:.1f} s; gateway RSS before {before:.0f} MiB, sampled peak "
              f"{sampler.peak_mib:.0f} MiB (limit: before + {RSS_GROWTH_LIMIT_MIB} MiB)", flush=True)
        self.assertLess(sampler.peak_mib - before, RSS_GROWTH_LIMIT_MIB, "the gateway held the large objects in memory")
        for path in sources:
            path.unlink()
        for i, uid in enumerate(uids):
            self.roundtrip_uid(uid, shas[i], f"concurrent-{i}")
        wait_until(lambda: not self.large_records(), 60, "the delivered records left the spool")
        self.assert_no_plaintext_left_on_disk()


class QueuedLargeObjectDiskFull(QueuedLargeObjectsBase, h.LogDumpingTestCase):
    """A spool on a 96 MiB tmpfs: the pre-allocated 64 MiB segment leaves too little for a 128 MiB object."""

    def setUp(self):
        type(self).failed = False
        self.workdir = h.make_workdir("QueuedLargeObjectDiskFull")
        self.pacs = None
        self.gateway = None
        self.cleanups = []

    def tearDown(self):
        was_alive = self.gateway.alive() if self.gateway else True
        exit_code = self.gateway.stop() if self.gateway else 0
        if self.pacs:
            self.pacs.stop()
        for cleanup in reversed(self.cleanups):
            cleanup()
        if not type(self).failed and not h.keep_temp_dirs():
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            sys.stderr.write(f"\nlogs and files kept in {self.workdir}\n")
        self.assertTrue(was_alive, "the gateway died")
        self.assertEqual(exit_code, 0, "the gateway did not stop cleanly")

    def test_4_disk_full_during_a_large_spool_write(self):
        spool_dir = self.workdir / "small-spool"
        spool_dir.mkdir(parents=True)
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m,mode=0700", "tmpfs", str(spool_dir)],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if mounted.returncode != 0:
            self.skipTest(f"cannot mount a small tmpfs here (needs root): {mounted.stdout.strip()}")
        self.cleanups.append(lambda: subprocess.run(["umount", "-l", str(spool_dir)]))
        port = h.free_port()
        self.pacs = h.Orthanc(self.workdir / "pacs", gateway_port=port)
        self.gateway = QueuedLargeGateway(self.workdir / "gateway", upstream_port=self.pacs.dicom_port, port=port,
                                          log_level="info",
                                          spool={"dir": str(spool_dir), "retry_initial_s": 1, "retry_max_s": 2})
        type(self).logs = {"pacsgw serve": self.gateway.log_path, "Orthanc": self.pacs.log_path}
        self.pacs.start()
        self.gateway.start()
        source = self.workdir / "too-large.dcm"
        write_multiframe(source, 256)  # 128 MiB
        uid = h.sop_instance_uid(source)
        pid = self.gateway.proc.pid
        before = rss_kib(pid)["VmRSS"] / 1024
        with RssSampler(pid) as sampler:
            result = h.storescu(self.gateway.port, [source], timeout=300)
        print(f"\nqueued, disk full during a large spool write: statuses {result.statuses}; gateway RSS before "
              f"{before:.0f} MiB, peak {sampler.peak_mib:.0f} MiB", flush=True)
        self.assertEqual(len(result.statuses), 1, result.describe())
        self.assertTrue(result.statuses[0].startswith(OUT_OF_RESOURCES), result.describe())
        self.assertIn("No space left on device", self.gateway.log())
        self.assertEqual(self.spool_files("*.part"), [], "a failed write left a partial file behind")
        self.assertEqual(self.spool_files("*.rec"), [], "a refused object was left in the spool")
        self.assertLess(sampler.peak_mib - before, RSS_GROWTH_LIMIT_MIB)
        self.assert_no_plaintext_left_on_disk()
        # The gateway keeps serving: a small instance is acknowledged and delivered.
        small = h.fresh_copy(sorted((h.cache_dir() / "bench").glob("ct_*.dcm"))[0], self.workdir, "small.dcm")
        after = h.storescu(self.gateway.port, [small], timeout=120)
        self.assertTrue(after.all_succeeded(1), after.describe())
        small_uid = h.sop_instance_uid(small)
        wait_until(lambda: self.pacs.find_instance(small_uid) is not None, 60, "the small instance reached the PACS")
        time.sleep(2)  # the refused object must not arrive late either
        self.assertIsNone(self.pacs.find_instance(uid), "a refused large object reached the PACS")
        self.assertEqual(self.pacs.instance_count(), 1)


if __name__ == "__main__":
    h.main()
