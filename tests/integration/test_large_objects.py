#!/usr/bin/env python3
"""Large objects through the bounded-memory store path: native Pixel Data above limits.stream_above_mb
is encrypted while it arrives and only ciphertext is written to disk. A 1 GiB multi-frame object goes
from a real storescu through the gateway into a real Orthanc while the gateway's RSS is sampled: the
RSS stays far below the object size, the PACS holds ciphertext, and `pacsgw decrypt` on the PACS copy
gives back the original pixels bit for bit. Two large objects stored at once on two associations keep the
RSS bounded as well. Implicit VR, a truncated large object, and small objects on the same path are
covered too. Queued mode (the spool) has its own suite: test_large_objects_queued.py.

Run alone:  PACSGW_BIN=build/pacsgw python3 tests/integration/test_large_objects.py -v
"""

import os
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dicom_wire as wire  # noqa: E402
import pacsgw_harness as h  # noqa: E402
from large_object_helpers import (LargeObjectAssertions, RssSampler, new_uid, rss_kib, store_at_once,  # noqa: E402
                                  with_large_object_limits, write_multiframe)

import pydicom  # noqa: E402
from pydicom.uid import ImplicitVRLittleEndian  # noqa: E402

LARGE_FRAMES = 2048          # 512 x 512 x 16 bit: 512 KiB per frame, 1 GiB in all
CANNOT_UNDERSTAND = 0xC000


class StreamingGateway(h.Gateway):
    def config_yaml(self) -> str:
        return with_large_object_limits(super().config_yaml())


class LargeObjects(LargeObjectAssertions, h.PacsAndGatewayTestCase):
    gateway_class = StreamingGateway
    gateway_options = {"log_level": "info"}

    def roundtrip(self, source: Path, plain_sha: str, name: str):
        self.roundtrip_uid(h.sop_instance_uid(source), plain_sha, name)

    def test_1gib_multiframe_object_streams_with_bounded_memory(self):
        self.require_disk(6)
        source = self.workdir / "large.dcm"
        started = time.monotonic()
        plain_sha = write_multiframe(source, LARGE_FRAMES)
        size_mib = source.stat().st_size / 2**20
        pid = self.gateway.proc.pid
        before = rss_kib(pid)["VmRSS"] / 1024
        t0 = time.monotonic()
        with RssSampler(pid) as sampler:
            result = h.storescu(self.gateway.port, [source], timeout=600)
        seconds = time.monotonic() - t0
        print(f"\nlarge object: {size_mib:.0f} MiB stored through the gateway in {seconds:.1f} s "
              f"({size_mib / seconds:.0f} MiB/s); gateway RSS before {before:.0f} MiB, sampled peak "
              f"{sampler.peak_mib:.0f} MiB over {len(sampler.samples)} samples (+{sampler.peak_mib - before:.0f} MiB); "
              f"object generated in {t0 - started:.1f} s")
        self.assertTrue(result.all_succeeded(1), result.describe())
        self.assertIn("encrypted as it arrived", self.gateway.log())
        self.assertGreater(len(sampler.samples), 5)
        # Held in memory: the header, a few PDUs and DCMTK's 64 KiB write cache; not the object.
        self.assertLess(sampler.peak_mib - before, 160, "the gateway held the large object in memory")
        self.assert_no_plaintext_left_on_disk()
        uid = h.sop_instance_uid(source)
        source.unlink()  # disk: the PACS copy and its decryption come next
        self.assertIn(uid, self._streamed_lines())
        self.roundtrip_uid(uid, plain_sha, "large")

    def test_two_large_objects_at_once_on_two_associations(self):
        self.require_disk(4)
        sources = [self.workdir / f"concurrent-{i}.dcm" for i in range(2)]
        shas = [write_multiframe(path, 512) for path in sources]  # 256 MiB each
        pid = self.gateway.proc.pid
        before = rss_kib(pid)["VmRSS"] / 1024
        t0 = time.monotonic()
        with RssSampler(pid) as sampler:
            results = store_at_once(self.gateway.port, sources)
        seconds = time.monotonic() - t0
        print(f"\nsync, two large objects at once: 2 x {sources[0].stat().st_size / 2**20:.0f} MiB stored in "
              f"{seconds:.1f} s; gateway RSS before {before:.0f} MiB, sampled peak {sampler.peak_mib:.0f} MiB "
              f"(+{sampler.peak_mib - before:.0f} MiB)")
        for result in results:
            self.assertIsNotNone(result, "a store did not finish")
            self.assertTrue(result.all_succeeded(1), result.describe())
        self.assertLess(sampler.peak_mib - before, 160, "the gateway held the large objects in memory")
        uids = [h.sop_instance_uid(path) for path in sources]
        for path in sources:
            path.unlink()
        for i, uid in enumerate(uids):
            self.assertIn(uid, self._streamed_lines())
            self.roundtrip_uid(uid, shas[i], f"concurrent-{i}")
        self.assert_no_plaintext_left_on_disk()

    def test_implicit_vr_object_streams_and_decrypts(self):
        source = self.workdir / "implicit.dcm"
        plain_sha = write_multiframe(source, 96, transfer_syntax=ImplicitVRLittleEndian)  # 48 MiB
        result = h.storescu(self.gateway.port, [source], extra=["-xi"], timeout=300)
        self.assertTrue(result.all_succeeded(1), result.describe())
        self.assertIn(h.sop_instance_uid(source), self._streamed_lines())
        self.roundtrip(source, plain_sha, "implicit")

    def test_small_object_on_a_native_context_keeps_the_in_memory_path(self):
        source = self.workdir / "small.dcm"
        plain_sha = write_multiframe(source, 8)  # 4 MiB, below the threshold
        result = h.storescu(self.gateway.port, [source], timeout=120)
        self.assertTrue(result.all_succeeded(1), result.describe())
        self.assertNotIn(h.sop_instance_uid(source), self._streamed_lines())
        self.roundtrip(source, plain_sha, "small")

    def test_truncated_large_object_is_refused_and_the_gateway_keeps_serving(self):
        uid = new_uid()
        declared = 64 << 20  # above the threshold, within max_object_mb; only 20 MiB follow
        header = wire.image_header(uid, new_uid(), 4096, 8192, pixel_length=declared)
        assoc = wire.Association(self.gateway.port, "GATEWAY", "CT1", transfer_syntax=wire.EXPLICIT_LE)
        self.assertTrue(assoc.accepted)
        assoc.send_store_command(uid)
        assoc.send_dataset([header] + [bytes(1 << 20)] * 20)
        status = assoc.read_store_status()
        assoc.release()
        self.assertEqual(status, CANNOT_UNDERSTAND)
        self.assertIsNone(self.pacs.find_instance(uid), "a truncated object reached the PACS")
        self.assertIn("Pixel Data ended after", self.gateway.log())
        self.assert_no_plaintext_left_on_disk()
        # The next store on the same gateway still works.
        source = self.workdir / "after-truncated.dcm"
        plain_sha = write_multiframe(source, 64)  # 32 MiB: streamed
        result = h.storescu(self.gateway.port, [source], timeout=300)
        self.assertTrue(result.all_succeeded(1), result.describe())
        self.roundtrip(source, plain_sha, "after-truncated")

    def test_elements_after_pixel_data_are_kept_and_padding_dropped(self):
        # A private group above (7FE0) and Data Set Trailing Padding follow the streamed Pixel Data.
        uid = new_uid()
        rows, columns = 4096, 2304  # 18 MiB: streamed
        pixels = os.urandom(rows * columns * 2)
        trailer = (wire.explicit_element(0x7FE1, 0x0010, "LO", b"ACME TRAILER") +
                   wire.explicit_element(0x7FE1, 0x1001, "LO", b"kept after pixels") +
                   wire.explicit_element(0xFFFC, 0xFFFC, "OB", bytes(64)))
        assoc = wire.Association(self.gateway.port, "GATEWAY", "CT1", transfer_syntax=wire.EXPLICIT_LE)
        self.assertTrue(assoc.accepted)
        assoc.send_store_command(uid)
        assoc.send_dataset([wire.image_header(uid, new_uid(), rows, columns), pixels, trailer])
        status = assoc.read_store_status()
        assoc.release()
        self.assertEqual(status, 0x0000)
        self.assertIn(uid, self._streamed_lines())
        pacs_copy = self.pacs.download_by_uid(uid, self.workdir / "trailer.pacs")
        stored = pydicom.dcmread(str(pacs_copy))
        self.assertTrue(h.key_reference(stored))
        self.assertEqual(stored[0x7FE1, 0x1001].value, "kept after pixels")
        self.assertNotIn((0xFFFC, 0xFFFC), stored)
        self.assertNotEqual(stored.PixelData, pixels)
        decrypted = self.workdir / "trailer.decrypted"
        result = self.gateway.decrypt(pacs_copy, decrypted)
        self.assertEqual(result.returncode, 0, result.describe())
        self.assertEqual(pydicom.dcmread(str(decrypted)).PixelData, pixels)

    def _streamed_lines(self) -> str:
        return "\n".join(line for line in self.gateway.log().splitlines() if "encrypted as it arrived" in line)


if __name__ == "__main__":
    h.main()
