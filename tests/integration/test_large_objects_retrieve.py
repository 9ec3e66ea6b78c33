#!/usr/bin/env python3
"""Large objects through the bounded-memory retrieval path: an aes-256-gcm object whose native Pixel Data
is above limits.stream_above_mb, coming back from the PACS as a C-STORE sub-operation, is kept as
ciphertext in an unlinked file, its GCM tag verified over the whole file, and only then decrypted piece by
piece while it is sent on. A 512 MiB object is retrieved by C-GET and by C-MOVE through the gateway by a
workstation allowed to decrypt: the workstation's pixels are the original ones bit for bit and the
gateway's peak RSS stays far below the object size. A large object with one ciphertext byte changed in
the PACS is refused for that sub-operation alone: nothing of it reaches the workstation, the other
instance of the study does. A workstation with ciphertext access gets the PACS's ciphertext unchanged.

Run alone:  PACSGW_BIN=build/pacsgw python3 tests/integration/test_large_objects_retrieve.py -v
"""

import shutil
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pacsgw_harness as h  # noqa: E402
import large_object_helpers as lo  # noqa: E402
import retrieve_helpers as rh  # noqa: E402

import pydicom  # noqa: E402

LARGE_FRAMES = 1024        # 512 x 512 x 16 bit: 512 MiB
TAMPERED_FRAMES = 64       # 32 MiB: above the 16 MiB threshold, quick to rewrite in the PACS
SMALL_FRAMES = 4           # 2 MiB: the in-memory path
RSS_GROWTH_LIMIT_MIB = 128  # over the gateway's own RSS before the retrieve (a LibTorch build starts at ~160 MiB)


class LargeRetrieveGateway(rh.RetrieveGateway):
    def config_yaml(self) -> str:
        return lo.with_large_object_limits(super().config_yaml())


class LargeObjectRetrieval(h.LogDumpingTestCase):
    @classmethod
    def setUpClass(cls):
        cls.failed = False
        cls.workdir = h.make_workdir(cls.__name__)
        free = shutil.disk_usage(cls.workdir).free
        if free < 4 * (1 << 30):
            raise unittest.SkipTest(f"needs 4 GiB of free disk, {free >> 30} GiB free")
        gateway_port = h.free_port()
        cls.ws_port = h.free_port()
        cls.pacs = rh.RetrieveOrthanc(cls.workdir / "pacs", gateway_port=gateway_port)
        cls.gateway = LargeRetrieveGateway(cls.workdir / "gateway", upstream_port=cls.pacs.dicom_port,
                                           upstream_aet=cls.pacs.aet, port=gateway_port, log_level="info",
                                           workstations=[("WS1", h.LOOPBACK, cls.ws_port, "decrypt"),
                                                         ("WS2", h.LOOPBACK, h.free_port(), "ciphertext")])
        cls.logs = {"pacsgw serve": cls.gateway.log_path, "Orthanc": cls.pacs.log_path}
        try:
            cls.pacs.start()
            cls.gateway.start()
            source = cls.workdir / "large.dcm"
            cls.large_sha = lo.write_multiframe(source, LARGE_FRAMES)
            cls.large = pydicom.dcmread(str(source), stop_before_pixels=True)
            cls.size_mib = source.stat().st_size / 2**20
            cls.store(source)
            source.unlink()
        except Exception:
            cls.gateway.stop()
            cls.pacs.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        was_alive = cls.gateway.alive()
        exit_code = cls.gateway.stop()
        cls.pacs.stop()
        if cls.failed or not was_alive or exit_code != 0 or h.keep_temp_dirs():
            sys.stderr.write(f"\nlogs and files kept in {cls.workdir}\n")
        else:
            shutil.rmtree(cls.workdir, ignore_errors=True)
        if not was_alive:
            raise AssertionError(f"pacsgw serve died:\n{h.tail(cls.gateway.log_path)}")

    @classmethod
    def store(cls, source: Path):
        stored = h.storescu(cls.gateway.port, [source], timeout=600)
        if not stored.all_succeeded(1):
            raise AssertionError(f"store through the gateway failed: {stored.describe()}")
        uid = h.sop_instance_uid(source)
        deadline = time.monotonic() + 300
        while cls.pacs.find_instance(uid) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"{uid} never reached the PACS")
            time.sleep(0.25)

    def assert_nothing_left_in_data_dir(self):
        large = self.gateway.data_dir / "large-objects"
        leftovers = list(large.iterdir()) if large.exists() else []
        self.assertEqual(leftovers, [], "files left in the large-object directory")

    def assert_large_object_delivered(self, files: list, how: str, before_mib: float, peak_mib: float, seconds: float):
        self.assertEqual(len(files), 1, f"{how} delivered {len(files)} files")
        received = pydicom.dcmread(str(files[0]), stop_before_pixels=True)
        self.assertEqual(received.SOPInstanceUID, self.large.SOPInstanceUID)
        self.assertFalse(h.key_reference(received), "the workstation's copy still carries the key reference")
        self.assertEqual(lo.pixel_sha256(files[0]), self.large_sha, f"{how}: pixels differ from the original")
        print(f"\n{how} of a {self.size_mib:.0f} MiB object through the gateway: {seconds:.1f} s, "
              f"gateway RSS before {before_mib:.0f} MiB, peak {peak_mib:.0f} MiB "
              f"(+{(peak_mib - before_mib) / self.size_mib:.2f} x the object)")
        self.assertLess(peak_mib - before_mib, RSS_GROWTH_LIMIT_MIB, f"{how}: gateway RSS grew with the object")
        self.assert_nothing_left_in_data_dir()

    def test_c_get_of_a_512_mib_object_is_bit_exact_with_bounded_memory(self):
        out = self.workdir / "get"
        keys = {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": self.large.StudyInstanceUID}
        t0 = time.monotonic()
        before = lo.rss_kib(self.gateway.proc.pid)["VmRSS"] / 1024
        with lo.RssSampler(self.gateway.proc.pid) as sampler:
            result = rh.getscu(self.gateway.port, out, keys, calling="WS1", timeout=900)
        seconds = time.monotonic() - t0
        self.assertEqual(result.final.status, 0, result.describe())
        self.assertEqual(result.final.completed, 1, result.describe())
        self.assert_large_object_delivered(sorted(out.glob("*")), "C-GET", before, sampler.peak_mib, seconds)
        self.assertIn("is kept in a file while it arrives", self.gateway.log_path.read_text(errors="replace"))
        shutil.rmtree(out)

    def test_c_move_of_a_512_mib_object_is_bit_exact_with_bounded_memory(self):
        keys = {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": self.large.StudyInstanceUID}
        with rh.StoreSCP("WS1", self.ws_port, self.workdir / "move") as workstation:
            t0 = time.monotonic()
            before = lo.rss_kib(self.gateway.proc.pid)["VmRSS"] / 1024
            with lo.RssSampler(self.gateway.proc.pid) as sampler:
                result = rh.movescu(self.gateway.port, "WS1", keys, calling="WS1", timeout=900)
            seconds = time.monotonic() - t0
            self.assertEqual(result.final.status, 0, result.describe())
            self.assertEqual(result.final.completed, 1, result.describe())
            files = workstation.files()
        self.assert_large_object_delivered(files, "C-MOVE", before, sampler.peak_mib, seconds)
        shutil.rmtree(self.workdir / "move")

    def test_ciphertext_workstation_gets_the_large_object_as_the_pacs_holds_it(self):
        source = self.workdir / "cipher.dcm"
        plain_sha = lo.write_multiframe(source, TAMPERED_FRAMES)
        ds = pydicom.dcmread(str(source), stop_before_pixels=True)
        self.store(source)
        pacs_copy = self.pacs.download_by_uid(ds.SOPInstanceUID, self.workdir / "cipher.pacs")
        out = self.workdir / "get-cipher"
        keys = {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": ds.StudyInstanceUID}
        log_offset = self.gateway.log_size()
        result = rh.getscu(self.gateway.port, out, keys, calling="WS2", timeout=600)
        self.assertIn("32 MiB of Pixel Data is kept in a file", self.gateway.log_since(log_offset))
        self.assertEqual(result.final.status, 0, result.describe())
        files = sorted(out.glob("*"))
        self.assertEqual(len(files), 1, result.describe())
        self.assertTrue(h.key_reference(pydicom.dcmread(str(files[0]), stop_before_pixels=True)),
                        "the ciphertext workstation's copy lost its key reference")
        self.assertEqual(lo.pixel_sha256(files[0]), lo.pixel_sha256(pacs_copy), "ciphertext changed on the way")
        self.assertNotEqual(lo.pixel_sha256(files[0]), plain_sha, "a ciphertext workstation got clear pixels")
        shutil.rmtree(out)

    def test_tampered_large_object_is_refused_alone_and_nothing_of_it_is_delivered(self):
        # A study of one large and one small object, stored through the gateway.
        tampered_source = self.workdir / "tampered.dcm"
        lo.write_multiframe(tampered_source, TAMPERED_FRAMES)
        study = pydicom.dcmread(str(tampered_source), stop_before_pixels=True)
        small_source = self.workdir / "small.dcm"
        small_sha = lo.write_multiframe(small_source, SMALL_FRAMES)
        small = pydicom.dcmread(str(small_source))
        small.StudyInstanceUID = study.StudyInstanceUID
        small.save_as(str(small_source))
        self.store(tampered_source)
        self.store(small_source)
        # One ciphertext byte changed in the PACS copy (in the middle of Pixel Data), nothing else.
        instance_id = self.pacs.find_instance(study.SOPInstanceUID)
        pacs_copy = self.pacs.download(instance_id, self.workdir / "tampered.pacs")
        offset, length = lo.pixel_data_span(pacs_copy)
        with open(pacs_copy, "r+b") as f:
            f.seek(offset + length // 2)
            byte = f.read(1)
            f.seek(offset + length // 2)
            f.write(bytes([byte[0] ^ 0x01]))
        self.pacs._request(f"/instances/{instance_id}", method="DELETE")
        self.pacs.upload(pacs_copy)
        self.assertIsNotNone(self.pacs.find_instance(study.SOPInstanceUID))

        out = self.workdir / "get-tampered"
        keys = {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": study.StudyInstanceUID}
        log_offset = self.gateway.log_size()
        result = rh.getscu(self.gateway.port, out, keys, calling="WS1", timeout=600)
        self.assertEqual(result.final.completed, 1, result.describe())
        self.assertEqual(result.final.failed, 1, result.describe())
        files = sorted(out.glob("*"))
        self.assertEqual([h.sop_instance_uid(p) for p in files], [small.SOPInstanceUID],
                         "the tampered object (or part of it) reached the workstation")
        self.assertEqual(lo.pixel_sha256(files[0]), small_sha)
        log = self.gateway.log_since(log_offset)
        self.assertIn("AuthenticationFailed", log)
        self.assertIn(study.SOPInstanceUID, log)
        self.assert_nothing_left_in_data_dir()
        shutil.rmtree(out)


if __name__ == "__main__":
    h.main()
