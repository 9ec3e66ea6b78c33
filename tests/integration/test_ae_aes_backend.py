#!/usr/bin/env python3
"""The neural backend `ae-aes` end to end with its shipped model (found by `cipher.backend: ae-aes` alone):
a modality stores a real CT and a real multi-frame MR through the gateway, the PACS holds a valid object
whose Pixel Data is a same-size cipher image and whose key-reference block carries the sealed latent
(0077,xx0E) and the exact-retrieval envelope (0077,xx0F); retrieval (`pacsgw decrypt` and a C-MOVE to a
`decrypt` workstation) restores the pixels bit for bit; a changed payload byte is refused.

Skipped when the build has no LibTorch backends.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pacsgw_harness as h  # noqa: E402
from backend_case import backend_case  # noqa: E402


class AeAesBackendEndToEnd(backend_case("ae-aes")):
    def check_pacs_copy(self, ds, original_ds):
        block = h.key_reference(ds)
        self.assertIn(0x0E, block, "no backend payload in the PACS copy")
        self.assertIn(0x0F, block, "no exact-retrieval envelope in the PACS copy")
        self.assertEqual(len(h.pixel_element_bytes(ds)), len(h.pixel_element_bytes(original_ds)),
                         "the cipher image keeps the Pixel Data size")

    def check_decrypted(self, restored_ds):
        self.assertNotIn("LossyImageCompression", restored_ds)

    def test_store_decrypt_and_move_are_bit_exact(self):
        self.assert_round_trip_is_bit_exact(["ct_le.dcm", "mf_mr.dcm"])

    def test_tampered_payload_fails_authentication(self):
        original = self.store("ct_le.dcm", "ae-tamper.dcm")
        ds = h.read(self.pacs_copy(original))
        payload = h.key_reference(ds)[0x0E]
        value = bytearray(payload.value)
        value[len(value) // 2] ^= 0x01
        payload.value = bytes(value)
        tampered = self.workdir / "ae-tampered.dcm"
        ds.save_as(tampered)
        self.assert_decrypt_refused(tampered)


if __name__ == "__main__":
    h.main()
