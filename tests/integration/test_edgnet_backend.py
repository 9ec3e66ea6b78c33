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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pacsgw_harness as h  # noqa: E402
from backend_case import backend_case  # noqa: E402


class EdgNetBackendEndToEnd(backend_case("edgnet")):
    def check_pacs_copy(self, ds, original_ds):
        block = h.key_reference(ds)
        self.assertIn(0x0E, block, "no backend payload in the PACS copy")
        self.assertIn(0x0F, block, "no exact-retrieval envelope in the PACS copy")
        stored = h.pixel_element_bytes(ds)
        self.assertEqual(len(stored), len(h.pixel_element_bytes(original_ds)),
                         "the cipher image keeps the Pixel Data size")
        if int(ds.BitsAllocated) == 16:
            self.assertEqual(set(stored[0::2]), {0}, "one cipher byte per 16-bit sample, the high one")
            self.assertGreater(len(set(stored[1::2])), 250, "the masked cipher image uses every byte value")

    def check_decrypted(self, restored_ds):
        self.assertNotIn("LossyImageCompression", restored_ds)

    def test_store_decrypt_and_move_are_bit_exact(self):
        self.assert_round_trip_is_bit_exact(["ct_le.dcm", "mf_mr.dcm"])

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
                self.assert_decrypt_refused(tampered)


if __name__ == "__main__":
    h.main()
