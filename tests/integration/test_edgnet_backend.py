#!/usr/bin/env python3
"""The research backend `edgnet` end to end with its shipped model (found by `cipher.backend: edgnet` alone):
a modality stores a real CT and a real multi-frame MR through the gateway; the PACS holds a valid object
whose Pixel Data is the masked 8-bit cipher image of the generator (one byte per sample, the most
significant one; same size),
whose key-reference block carries the sealed windows (0077,xx0E) and the exact-retrieval envelope
(0077,xx0F); retrieval (`pacsgw decrypt` and a C-MOVE to a `decrypt` workstation) restores the pixels bit
for bit; a changed payload byte or cipher-image sample is refused.

Skipped when the build has no LibTorch backends.
"""

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pacsgw_harness as h  # noqa: E402
import retrieve_helpers as rh  # noqa: E402
from test_chaos_backend import backend_available  # noqa: E402


@unittest.skipUnless(backend_available("edgnet"), "built without the LibTorch backends")
class EdgNetBackendEndToEnd(h.PacsAndGatewayTestCase):
    orthanc_class = rh.RetrieveOrthanc
    gateway_class = rh.RetrieveGateway
    ws_port = h.free_port()
    gateway_options = {"backend": "edgnet", "workstations": [("WS1", h.LOOPBACK, ws_port, "decrypt")]}

    def store(self, source: str, name: str):
        copy = h.fresh_copy(h.test_file(source), self.workdir, name)
        result = h.storescu(self.gateway.port, [copy])
        self.assertTrue(result.all_succeeded(1), result.describe())
        return copy

    def pacs_copy(self, original: Path) -> Path:
        return self.pacs.download_by_uid(h.sop_instance_uid(original), self.workdir / (original.stem + "-pacs.dcm"))

    def test_store_decrypt_and_move_are_bit_exact(self):
        originals = [self.store("ct_le.dcm", "edg-ct.dcm"), self.store("mf_mr.dcm", "edg-mr.dcm")]
        for original in originals:
            with self.subTest(file=original.name):
                pacs = self.pacs_copy(original)
                ds = h.read(pacs)
                block = h.key_reference(ds)
                self.assertEqual(h.element_text(block[0x01]), "edgnet")
                self.assertIn(0x0E, block, "no backend payload in the PACS copy")
                self.assertIn(0x0F, block, "no exact-retrieval envelope in the PACS copy")
                stored, plain = h.pixel_element_bytes(ds), h.pixel_element_bytes(h.read(original))
                self.assertEqual(len(stored), len(plain), "the cipher image keeps the Pixel Data size")
                self.assertNotEqual(stored, plain)
                if int(ds.BitsAllocated) == 16:
                    self.assertEqual(set(stored[0::2]), {0}, "one cipher byte per 16-bit sample, the high one")
                    self.assertGreater(len(set(stored[1::2])), 250, "the masked cipher image uses every byte value")
                restored = self.workdir / (original.stem + "-restored.dcm")
                result = self.gateway.decrypt(pacs, restored)
                self.assertTrue(restored.exists(), result.describe())
                self.assertEqual(h.pixel_element_bytes(h.read(restored)), plain)
                self.assertNotIn("LossyImageCompression", h.read(restored))
        study_uid = str(h.read(originals[0]).StudyInstanceUID)
        with rh.StoreSCP("WS1", self.ws_port, self.workdir / "ws1") as scp:
            moved = rh.movescu(self.gateway.port, "WS1", {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": study_uid})
            files = scp.files()
        self.assertEqual(moved.final.status, rh.STATUS_SUCCESS, moved.describe())
        received = {str(h.read(f).SOPInstanceUID): f for f in files}
        self.assertIn(h.sop_instance_uid(originals[0]), received)
        got = h.read(received[h.sop_instance_uid(originals[0])])
        self.assertEqual(h.pixel_element_bytes(got), h.pixel_element_bytes(h.read(originals[0])))
        self.assertEqual(rh.group_elements(got, 0x0077), [])

    def test_tampered_payload_or_cipher_image_fails_authentication(self):
        original = self.store("ct_le.dcm", "edg-tamper.dcm")
        pacs = self.pacs_copy(original)
        for what in ("payload", "pixels"):
            with self.subTest(tampered=what):
                ds = h.read(pacs)
                if what == "payload":
                    element = h.key_reference(ds)[0x0E]
                    value = bytearray(element.value)
                    value[len(value) // 2] ^= 0x01
                    element.value = bytes(value)
                else:
                    value = bytearray(ds.PixelData)
                    value[len(value) // 2] ^= 0x01
                    ds.PixelData = bytes(value)
                tampered = self.workdir / f"edg-tampered-{what}.dcm"
                ds.save_as(tampered)
                out = self.workdir / f"edg-tampered-{what}-out.dcm"
                result = self.gateway.decrypt(tampered, out)
                self.assertNotEqual(result.returncode, 0)
                self.assertIn("authentication", result.output.lower())
                self.assertFalse(out.exists())


if __name__ == "__main__":
    h.main()
