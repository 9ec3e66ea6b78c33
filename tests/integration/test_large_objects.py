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

import hashlib
import os
import secrets
import shutil
import struct
import sys
import threading
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dicom_wire as wire  # noqa: E402
import pacsgw_harness as h  # noqa: E402

import pydicom  # noqa: E402
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian  # noqa: E402

STREAM_ABOVE_MB = 16
LARGE_FRAMES = 2048          # 512 x 512 x 16 bit: 512 KiB per frame, 1 GiB in all
CANNOT_UNDERSTAND = 0xC000
MULTIFRAME_CT = "1.2.840.10008.5.1.4.1.1.2.1"  # Enhanced CT Image Storage


def new_uid() -> str:
    return "2.25." + str(int.from_bytes(secrets.token_bytes(15), "big"))


def rss_kib(pid: int) -> dict:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


class RssSampler:
    """Samples a process's RSS every 100 ms in a thread; `peak_mib` is the highest sample."""

    def __init__(self, pid: int):
        self.pid = pid
        self.samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.samples.append(rss_kib(self.pid)["VmRSS"] / 1024)
            except (OSError, KeyError):
                return
            self._stop.wait(0.1)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)

    @property
    def peak_mib(self) -> float:
        return max(self.samples) if self.samples else 0.0


def write_multiframe(path: Path, frames: int, transfer_syntax=ExplicitVRLittleEndian, rows=512, columns=512) -> str:
    """A multi-frame 16-bit object written piece by piece (never whole in memory); returns the SHA-256 of
    its Pixel Data value."""
    ds = Dataset()
    ds.SOPClassUID = MULTIFRAME_CT
    ds.SOPInstanceUID = new_uid()
    ds.StudyInstanceUID = new_uid()
    ds.SeriesInstanceUID = new_uid()
    ds.PatientName = "LARGE^OBJECT"
    ds.PatientID = "LARGE1"
    ds.Modality = "CT"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, columns
    ds.NumberOfFrames = frames
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    implicit = transfer_syntax == ImplicitVRLittleEndian
    ds.is_implicit_VR, ds.is_little_endian = implicit, True
    ds.save_as(str(path), write_like_original=False)
    length = rows * columns * 2 * frames
    digest = hashlib.sha256()
    with open(path, "ab") as f:
        f.write(struct.pack("<HHI", 0x7FE0, 0x0010, length) if implicit
                else struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, length))
        frame_bytes = rows * columns * 2
        for _ in range(frames):
            chunk = os.urandom(frame_bytes)
            digest.update(chunk)
            f.write(chunk)
    return digest.hexdigest()


def pixel_data_span(path: Path) -> tuple:
    """(offset, length) of the top-level Pixel Data value, the element that runs to the end of the file.
    Not simply the last (7FE0,0010) in the file, as the shared helper takes: 1 GiB of ciphertext holds
    those bytes by chance; nor the first: the key-reference block names the tag too (an AT value)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(1 << 20)
    tag = struct.pack("<HH", 0x7FE0, 0x0010)
    at = head.find(tag)
    while at >= 0:
        if head[at + 4:at + 6] in (b"OB", b"OW") and head[at + 6:at + 8] == b"\0\0":
            value, length = at + 12, struct.unpack_from("<I", head, at + 8)[0]
        else:
            value, length = at + 8, struct.unpack_from("<I", head, at + 4)[0]
        if value + length == size:
            return value, length
        at = head.find(tag, at + 1)
    raise AssertionError(f"no Pixel Data running to the end of {path}")


def pixel_sha256(path: Path) -> str:
    offset, length = pixel_data_span(path)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(offset)
        left = length
        while left:
            chunk = f.read(min(left, 16 << 20))
            if not chunk:
                raise AssertionError(f"{path} ends inside Pixel Data")
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


class StreamingGateway(h.Gateway):
    def config_yaml(self) -> str:
        # Orthanc needs over a minute to answer for a 1 GiB object on a busy 2-core machine (it is slower
        # directly from storescu too): the gateway waits longer for its response than the default 60 s.
        base = super().config_yaml().replace("gateway:\n", "gateway:\n  dimse_timeout_s: 300\n", 1)
        return base + (f"limits:\n  stream_above_mb: {STREAM_ABOVE_MB}\n  max_object_mb: 2048\n"
                                        "  max_association_mb: 2048\n  max_in_flight_mb: 2048\n")


class LargeObjects(h.PacsAndGatewayTestCase):
    gateway_class = StreamingGateway
    gateway_options = {"log_level": "info"}

    def roundtrip(self, source: Path, plain_sha: str, name: str):
        self.roundtrip_uid(h.sop_instance_uid(source), plain_sha, name)

    def roundtrip_uid(self, uid: str, plain_sha: str, name: str):
        """The PACS copy holds ciphertext with a key-reference block, and decrypts to the original pixels."""
        pacs_copy = self.pacs.download_by_uid(uid, self.workdir / f"{name}.pacs")
        stored = pydicom.dcmread(str(pacs_copy), stop_before_pixels=True)
        self.assertTrue(h.key_reference(stored), "no key-reference block in the PACS copy")
        self.assertNotEqual(pixel_sha256(pacs_copy), plain_sha, "the PACS holds the clear pixels")
        decrypted = self.workdir / f"{name}.decrypted"
        result = self.gateway.decrypt(pacs_copy, decrypted)
        self.assertEqual(result.returncode, 0, result.describe())
        self.assertEqual(pixel_sha256(decrypted), plain_sha, "decrypted pixels differ from the original")
        self.assertFalse(h.key_reference(pydicom.dcmread(str(decrypted), stop_before_pixels=True)))
        pacs_copy.unlink()
        decrypted.unlink()

    def assert_no_plaintext_left_on_disk(self):
        large = self.gateway.data_dir / "large-objects"
        leftovers = list(large.iterdir()) if large.exists() else []
        self.assertEqual(leftovers, [], "files left in the large-object directory")

    def test_1gib_multiframe_object_streams_with_bounded_memory(self):
        free = shutil.disk_usage(self.workdir).free
        if free < 6 * (1 << 30):
            self.skipTest(f"needs 6 GiB of free disk, {free >> 30} GiB free")
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
        free = shutil.disk_usage(self.workdir).free
        if free < 4 * (1 << 30):
            self.skipTest(f"needs 4 GiB of free disk, {free >> 30} GiB free")
        sources = [self.workdir / f"concurrent-{i}.dcm" for i in range(2)]
        shas = [write_multiframe(path, 512) for path in sources]  # 256 MiB each
        results = [None, None]
        barrier = threading.Barrier(2)

        def send(i):
            barrier.wait(30)
            results[i] = h.storescu(self.gateway.port, [sources[i]], timeout=300)

        pid = self.gateway.proc.pid
        before = rss_kib(pid)["VmRSS"] / 1024
        t0 = time.monotonic()
        with RssSampler(pid) as sampler:
            threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(330)
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
