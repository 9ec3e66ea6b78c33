#!/usr/bin/env python3
"""The store path end to end: a modality (storescu / dcmsend) sends real DICOM files to
`pacsgw serve`, which encrypts the pixel data and forwards to a real Orthanc. Every assertion is on
what Orthanc holds, on what `pacsgw decrypt` writes, or on the DIMSE statuses the modality saw.

Run alone:  PACSGW_BIN=build/pacsgw python3 tests/integration/test_store_path.py -v
"""

import re
import shutil
import sys
import unittest
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pacsgw_harness as h  # noqa: E402  (re-executes with Debian's python3 if pydicom is missing)

import pydicom  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402

BACKEND = "aes-256-gcm"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
# Ciphertext matches its plaintext in about 1/256 of the bytes; anything close to 5% means the
# pixels were not (or only partly) encrypted.
MAX_EQUAL_FRACTION = 0.05


def equal_fraction(a: bytes, b: bytes) -> float:
    n = min(len(a), len(b))
    if n == 0:
        return 1.0
    x = h.numpy.frombuffer(a[:n], dtype=h.numpy.uint8)
    y = h.numpy.frombuffer(b[:n], dtype=h.numpy.uint8)
    return float((x == y).sum()) / n


class GatewayWithPacs(h.PacsAndGatewayTestCase):
    """One Orthanc and one gateway in front of it for the whole class."""

    def tearDown(self):
        self.assertTrue(self.gateway.alive(), f"pacsgw serve is no longer running:\n{h.tail(self.gateway.log_path)}")

    # helpers ------------------------------------------------------------------------------------
    def scratch(self) -> Path:
        path = self.workdir / "files" / self.id().rsplit(".", 1)[-1]
        path.mkdir(parents=True, exist_ok=True)
        return path

    def send(self, path: Path, mode: str, calling: str = "CT1") -> h.StoreResult:
        if mode == "storescu":
            return h.storescu(self.gateway.port, [path], calling=calling)
        if mode == "storescu-big-endian":
            # Only Explicit VR Big Endian is proposed, so the object really crosses the wire in it.
            sop_class = str(pydicom.dcmread(str(path), stop_before_pixels=True).SOPClassUID)
            profile = h.write_storescu_profile(path.parent, "BigEndianOnly", [sop_class], ["BigEndianExplicit"])
            return h.storescu(self.gateway.port, [path], calling=calling, extra=["-xf", profile, "BigEndianOnly"])
        if mode == "dcmsend":
            return h.dcmsend(self.gateway.port, [path], calling=calling)
        raise ValueError(mode)

    def send_and_fetch(self, name: str, mode: str, new_study: bool = True):
        """Sends a fresh copy of test file `name`; returns (sent file, the PACS's copy)."""
        work = self.scratch()
        sent = h.fresh_copy(h.test_file(name), work, new_study=new_study)
        result = self.send(sent, mode)
        self.assertTrue(result.all_succeeded(1), f"the modality did not get Success:\n{result.describe()}")
        uid = h.sop_instance_uid(sent)
        self.assertIsNotNone(self.pacs.find_instance(uid), f"Orthanc holds no instance {uid}")
        return sent, self.pacs.download_by_uid(uid, work / f"pacs-copy-{sent.name}")

    def assert_key_reference(self, ds) -> dict:
        """The 'PACSGW KEYREF 1' block (docs/conformance.md): (0077,xx01) backend id, (0077,xx03) key id,
        (0077,xx08) nonce, (0077,xx09) authentication tag."""
        block = h.key_reference(ds)
        self.assertTrue(block, f"no private block '{h.KEYREF_CREATOR}' in group 0077 of the PACS copy")
        present = sorted(f"xx{k:02X}" for k in block)
        for offset, what in ((0x01, "backend id"), (0x03, "key id"), (0x08, "nonce"), (0x09, "tag")):
            self.assertIn(offset, block, f"key-reference {what} (0077,xx{offset:02X}) missing; present: {present}")
        self.assertEqual(h.element_text(block[0x01]), BACKEND)
        self.assertRegex(h.element_text(block[0x03]), UUID_RE)
        nonce, tag = h.element_as_bytes(block[0x08]), h.element_as_bytes(block[0x09])
        self.assertEqual(len(nonce), 12, "AES-GCM nonce must be 12 bytes")
        self.assertTrue(any(nonce), "the nonce is all zeros")
        self.assertEqual(len(tag), 16, "AES-GCM tag must be 16 bytes")
        return block

    def key_id(self, ds) -> str:
        return h.element_text(self.assert_key_reference(ds)[0x03])

    def assert_ciphertext_copy(self, sent: Path, pacs_copy: Path):
        original, stored = h.read(sent), h.read(pacs_copy)
        for keyword in ("SOPInstanceUID", "SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID", "Rows",
                        "Columns", "BitsAllocated", "SamplesPerPixel"):
            self.assertEqual(getattr(stored, keyword, None), getattr(original, keyword, None),
                             f"{keyword} differs between the sent object and the PACS copy")
        self.assertEqual(int(getattr(stored, "NumberOfFrames", 1)), int(getattr(original, "NumberOfFrames", 1)))
        self.assert_key_reference(stored)

        if not h.is_encapsulated(original) and not h.is_encapsulated(stored):
            # Native: the cipher is length preserving, so compare sample values position by position.
            a = h.native_pixel_values(original).tobytes()
            b = h.native_pixel_values(stored).tobytes()
            self.assertEqual(len(b), len(a), "native Pixel Data length changed")
        else:
            a = b"".join(h.pixel_payload(original))
            b = b"".join(h.pixel_payload(stored))
        self.assertNotEqual(a, b, "the PACS holds the original pixel data")
        fraction = equal_fraction(a, b)
        self.assertLess(fraction, MAX_EQUAL_FRACTION,
                        f"{fraction:.1%} of the pixel bytes in the PACS copy equal the original's")

    def decrypt(self, source: Path) -> (h.ToolResult, Path):
        target = source.with_name(source.stem + "-decrypted.dcm")
        return self.gateway.decrypt(source, target), target

    def assert_decrypts_to_original(self, sent: Path, pacs_copy: Path):
        result, target = self.decrypt(pacs_copy)
        self.assertEqual(result.returncode, 0, f"pacsgw decrypt failed:\n{result.describe()}")
        self.assertTrue(target.is_file(), f"pacsgw decrypt wrote no file:\n{result.describe()}")
        original, restored = h.read(sent), h.read(target)
        self.assertFalse(h.key_reference(restored), "the decrypted object still carries the key-reference block")
        self.assertEqual(restored.SOPInstanceUID, original.SOPInstanceUID)
        if h.is_encapsulated(original):
            self.assertEqual(h.transfer_syntax(restored), h.transfer_syntax(original),
                             "decrypt did not restore the original (compressed) transfer syntax")
            self.assertEqual(h.pixel_fragments(restored), h.pixel_fragments(original),
                             "decrypted fragments differ from the original's")
        elif original.is_little_endian and not h.is_encapsulated(restored) and restored.is_little_endian:
            self.assertEqual(h.pixel_element_bytes(restored), h.pixel_element_bytes(original),
                             "decrypted Pixel Data differs from the original, byte for byte")
        else:
            self.assertFalse(h.is_encapsulated(restored), "decrypt produced compressed pixel data from a native object")
            self.assertEqual(h.native_pixel_values(restored).tolist(), h.native_pixel_values(original).tolist(),
                             "decrypted pixel values differ from the original's")


class StorePathTest(GatewayWithPacs):

    # round trips per transfer syntax ------------------------------------------------------------
    def round_trip(self, name: str, mode: str):
        sent, pacs_copy = self.send_and_fetch(name, mode)
        self.assert_ciphertext_copy(sent, pacs_copy)
        self.assert_decrypts_to_original(sent, pacs_copy)

    def test_explicit_little_endian_ct(self):
        self.round_trip("ct_le.dcm", "storescu")

    def test_big_endian_ct(self):
        self.round_trip("ct_be.dcm", "storescu-big-endian")

    def test_rle_ct(self):
        self.round_trip("ct_rle.dcm", "dcmsend")

    def test_jpeg_ls_lossless_ct(self):
        self.round_trip("ct_jpls.dcm", "dcmsend")

    def test_multiframe_mr(self):
        self.round_trip("mf_mr.dcm", "storescu")

    def test_multiframe_jpeg_xa(self):
        self.round_trip("mf_xa_jpeg.dcm", "dcmsend")

    # integrity -----------------------------------------------------------------------------------
    def assert_tamper_detected(self, name: str, mode: str):
        sent, pacs_copy = self.send_and_fetch(name, mode)
        tampered = pacs_copy.with_name("tampered-" + pacs_copy.name)
        h.flip_pixel_byte(pacs_copy, tampered)
        before, after = h.pixel_payload(h.read(pacs_copy)), h.pixel_payload(h.read(tampered))
        self.assertEqual(sum(x != y for a, b in zip(before, after) for x, y in zip(a, b)), 1,
                         "the tampered copy should differ from the PACS copy in exactly one pixel byte")
        result, target = self.decrypt(tampered)
        self.assertNotEqual(result.returncode, 0, f"decrypt accepted a flipped ciphertext bit:\n{result.describe()}")
        self.assertRegex(result.output.lower(), r"authenticat",
                         f"decrypt's message does not mention authentication:\n{result.describe()}")
        self.assertFalse(target.exists(), "decrypt left an output file behind after failing authentication")

    def test_flipped_ciphertext_bit_fails_authentication_native(self):
        self.assert_tamper_detected("ct_le.dcm", "storescu")

    def test_flipped_ciphertext_bit_fails_authentication_encapsulated(self):
        self.assert_tamper_detected("ct_rle.dcm", "dcmsend")

    def test_ciphertext_moved_to_another_object_fails(self):
        # The SOP Instance UID is bound into the authentication (AAD): the same ciphertext under
        # another instance UID must not decrypt.
        sent, pacs_copy = self.send_and_fetch("ct_le.dcm", "storescu")
        moved = pacs_copy.with_name("moved-" + pacs_copy.name)
        shutil.copyfile(pacs_copy, moved)
        new_uid = generate_uid()
        h.run_tool(["dcmodify", "-nb", "-m", f"(0008,0018)={new_uid}", moved])
        self.assertEqual(h.sop_instance_uid(moved), new_uid)
        result, target = self.decrypt(moved)
        self.assertNotEqual(result.returncode, 0, f"ciphertext decrypted under another SOP Instance UID:\n"
                                                  f"{result.describe()}")
        self.assertFalse(target.exists(), "decrypt left an output file behind after failing")

    # association and DIMSE behaviour -----------------------------------------------------------
    def test_echo(self):
        result = h.run_tool(["echoscu", "-v", "-aec", "GATEWAY", "-aet", "CT1", h.LOOPBACK, self.gateway.port])
        self.assertIn("Received Echo Response (Success)", result.output, result.describe())

    def test_unknown_calling_ae_is_rejected(self):
        sent = h.fresh_copy(h.test_file("ct_le.dcm"), self.scratch())
        before = self.pacs.instance_count()
        result = self.send(sent, "storescu", calling="INTRUDER")
        self.assertTrue(result.association_rejected, f"association from an unlisted AE not rejected:\n"
                                                     f"{result.describe()}")
        self.assertEqual(result.statuses, [])
        self.assertIsNone(self.pacs.find_instance(h.sop_instance_uid(sent)))
        self.assertEqual(self.pacs.instance_count(), before, "Orthanc received something")

    def test_malformed_objects_are_refused_and_gateway_keeps_serving(self):
        work = self.scratch()
        # pydicom's MR_truncated.dcm, re-encoded so DCMTK can send it: Pixel Data holds 8130 of the
        # 8192 bytes Rows x Columns x 16 bits require.
        truncated = pydicom.dcmread(str(h.test_file("mr_truncated.dcm")))
        # A real CT whose Pixel Data was cut to half its length.
        cut = pydicom.dcmread(str(h.test_file("ct_le.dcm")))
        cut.PixelData = cut.PixelData[:len(cut.PixelData) // 2]
        for label, ds in (("MR_truncated", truncated), ("CT_cut_in_half", cut)):
            with self.subTest(label):
                uid = generate_uid()
                ds.SOPInstanceUID = uid
                ds.file_meta.MediaStorageSOPInstanceUID = uid
                path = work / f"{label}.dcm"
                ds.save_as(str(path), write_like_original=False)
                before = self.pacs.instance_count()
                result = self.send(path, "storescu")
                self.assertEqual(result.successes, 0, f"malformed object accepted:\n{result.describe()}")
                self.assertTrue(result.failures, f"no failure status for a malformed object:\n{result.describe()}")
                self.assertIsNone(self.pacs.find_instance(uid), "the malformed object reached the PACS")
                self.assertEqual(self.pacs.instance_count(), before)
        # ...and the next good object goes through.
        sent, pacs_copy = self.send_and_fetch("ct_le.dcm", "storescu")
        self.assert_ciphertext_copy(sent, pacs_copy)

    def test_concurrent_associations(self):
        # Four modalities at once, three instances each, all in ONE new study: every instance must
        # land, and the study must end up with exactly one data key. The clients start together
        # (barrier) and the gateway's log must show the four associations open at the same time, so
        # the first-key race is really exercised; a round without overlap is repeated (at most 3).
        for attempt in range(3):
            work = self.scratch()
            study_uid = str(h.pydicom.uid.generate_uid(prefix="1.2.826.0.1.3680043.8.498."))
            batches = []
            for i in range(4):
                files = [h.fresh_copy(h.test_file("ct_le.dcm"), work / f"assoc{i}", new_study=False) for _ in range(3)]
                h.run_tool(["dcmodify", "-nb", "-m", f"(0020,000d)={study_uid}", *files], timeout=60)
                batches.append(files)
            barrier = threading.Barrier(4)

            def send(files):
                barrier.wait(timeout=30)
                return h.storescu(self.gateway.port, files)

            log_offset = self.gateway.log_path.stat().st_size
            with ThreadPoolExecutor(max_workers=4) as pool:
                results = list(pool.map(send, batches))
            for result in results:
                self.assertTrue(result.all_succeeded(3), result.describe())
            key_ids = set()
            for files in batches:
                for sent in files:
                    self.assertEqual(str(h.read(sent).StudyInstanceUID), study_uid)
                    pacs_copy = self.pacs.download_by_uid(h.sop_instance_uid(sent), sent.with_name("pacs-" + sent.name))
                    self.assert_ciphertext_copy(sent, pacs_copy)
                    self.assert_decrypts_to_original(sent, pacs_copy)
                    key_ids.add(self.key_id(h.read(pacs_copy)))
            self.assertEqual(len(key_ids), 1, f"one study got several data keys: {key_ids}")
            with open(self.gateway.log_path, "rb") as f:
                f.seek(log_offset)
                lines = f.read().decode(errors="replace").splitlines()
            accepted = [i for i, line in enumerate(lines) if "association from CT1@" in line and "accepted" in line]
            ended = [i for i, line in enumerate(lines) if "association from CT1@" in line and " ended" in line]
            self.assertEqual(len(accepted), 4, "\n".join(lines[-40:]))
            if ended and accepted[-1] < ended[0]:
                return  # all four were open before the first one ended
        self.fail("the four associations never overlapped in 3 rounds: the first-key race was not exercised")


class PacsDownTest(GatewayWithPacs):
    """The modality must see the PACS's real outcome: no Success when the PACS cannot store."""

    def test_pacs_down_gives_failure_status(self):
        sent, _ = self.send_and_fetch("ct_le.dcm", "storescu")  # the path works first
        self.pacs.stop()
        sent = h.fresh_copy(h.test_file("ct_le.dcm"), self.scratch())
        result = self.send(sent, "storescu")
        self.assertEqual(result.successes, 0, f"Success reported while the PACS is down:\n{result.describe()}")
        self.assertTrue(result.failures, f"no failure status while the PACS is down:\n{result.describe()}")


if __name__ == "__main__":
    h.main()
