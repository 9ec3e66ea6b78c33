"""Helpers shared by the large-object suites (test_large_objects*.py) and benchmarks (tests/bench/bench_large_*):
multi-frame objects written piece by piece, the Pixel Data span and digest of a file, RSS sampling, the
gateway's large-object limits, and the assertions every large-object test makes."""

import hashlib
import os
import secrets
import shutil
import struct
import threading
from pathlib import Path

import pacsgw_harness as h

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

STREAM_ABOVE_MB = 16
MULTIFRAME_CT = "1.2.840.10008.5.1.4.1.1.2.1"  # Enhanced CT Image Storage


def with_large_object_limits(config_yaml: str, max_in_flight_mb: int = 2048) -> str:
    """A gateway configuration with streaming above STREAM_ABOVE_MB and room for objects of up to 2 GiB.
    Orthanc needs over a minute to answer for a 1 GiB object on a busy 2-core machine (it is slower
    directly from storescu too): the gateway waits longer for its response than the default 60 s."""
    base = config_yaml.replace("gateway:\n", "gateway:\n  dimse_timeout_s: 300\n", 1)
    return base + (f"limits:\n  stream_above_mb: {STREAM_ABOVE_MB}\n  max_object_mb: 2048\n"
                   f"  max_association_mb: 2048\n  max_in_flight_mb: {max_in_flight_mb}\n")


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


def store_at_once(port: int, sources: list, timeout: int = 300) -> list:
    """Stores each of `sources` on an association of its own, all started together; returns the storescu
    results in the same order (None where a store did not finish)."""
    results = [None] * len(sources)
    barrier = threading.Barrier(len(sources))

    def send(i):
        barrier.wait(30)
        results[i] = h.storescu(port, [sources[i]], timeout=timeout)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(sources))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout + 30)
    return results


class LargeObjectAssertions:
    """For test cases with self.gateway, self.pacs and self.workdir."""

    def require_disk(self, gib: int):
        free = shutil.disk_usage(self.workdir).free
        if free < gib * (1 << 30):
            self.skipTest(f"needs {gib} GiB of free disk, {free >> 30} GiB free")

    def assert_no_plaintext_left_on_disk(self):
        large = self.gateway.data_dir / "large-objects"
        leftovers = list(large.iterdir()) if large.exists() else []
        self.assertEqual(leftovers, [], "files left in the large-object directory")

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
