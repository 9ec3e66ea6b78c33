"""What the end-to-end suites of the non-default cipher backends share: a gateway configured with one
backend and a `decrypt` workstation WS1, storing real files through it, fetching the PACS copy, and the
round trip every backend must pass (the PACS holds ciphertext under the backend's key reference;
`pacsgw decrypt` and a C-MOVE to WS1 restore the original Pixel Data bit for bit, without the block).
"""

import unittest
from pathlib import Path

import pacsgw_harness as h
import retrieve_helpers as rh


def backend_available(name: str) -> bool:
    """True when this build knows the backend (the LibTorch ones are optional)."""
    result = h.run_tool([str(h.pacsgw_bin()), "config", "defaults"], timeout=60)
    probe = h.make_workdir("backend-probe")
    cfg = probe / "probe.yaml"
    cfg.write_text(result.output.replace("backend: aes-256-gcm", f"backend: {name}"))
    check = h.run_tool([str(h.pacsgw_bin()), "config", "check", "--config", str(cfg)], timeout=60)
    return "unknown backend" not in check.output


def backend_case(backend: str):
    """Base class of one backend's end-to-end suite; skipped when the build lacks the backend."""
    ws_port = h.free_port()

    @unittest.skipUnless(backend_available(backend), "built without the LibTorch backends")
    class BackendEndToEnd(h.PacsAndGatewayTestCase):
        orthanc_class = rh.RetrieveOrthanc
        gateway_class = rh.RetrieveGateway
        gateway_options = {"backend": backend, "workstations": [("WS1", h.LOOPBACK, ws_port, "decrypt")]}

        def store(self, source: str, name: str) -> Path:
            copy = h.fresh_copy(h.test_file(source), self.workdir, name)
            result = h.storescu(self.gateway.port, [copy])
            self.assertTrue(result.all_succeeded(1), result.describe())
            return copy

        def pacs_copy(self, original: Path) -> Path:
            return self.pacs.download_by_uid(h.sop_instance_uid(original),
                                             self.workdir / (original.stem + "-pacs.dcm"))

        def check_pacs_copy(self, ds, original_ds) -> None:
            """What the backend writes into the PACS copy beyond ciphertext; overridden per backend."""

        def check_decrypted(self, restored_ds) -> None:
            """Further checks on the object `pacsgw decrypt` restored; overridden per backend."""

        def assert_round_trip_is_bit_exact(self, sources) -> None:
            originals = [self.store(source, f"{backend}-{i}.dcm") for i, source in enumerate(sources)]
            for original in originals:
                with self.subTest(file=original.name):
                    pacs = self.pacs_copy(original)
                    ds, original_ds = h.read(pacs), h.read(original)
                    block = h.key_reference(ds)
                    self.assertIn(0x01, block, "no key-reference block in the PACS copy")
                    self.assertEqual(h.element_text(block[0x01]), backend)
                    self.assertNotEqual(h.pixel_element_bytes(ds), h.pixel_element_bytes(original_ds))
                    self.check_pacs_copy(ds, original_ds)
                    restored = self.workdir / (original.stem + "-restored.dcm")
                    result = self.gateway.decrypt(pacs, restored)
                    self.assertTrue(restored.exists(), result.describe())
                    restored_ds = h.read(restored)
                    self.assertEqual(h.pixel_element_bytes(restored_ds), h.pixel_element_bytes(original_ds))
                    self.check_decrypted(restored_ds)
            original = originals[0]
            study_uid = str(h.read(original).StudyInstanceUID)
            with rh.StoreSCP("WS1", ws_port, self.workdir / "ws1") as scp:
                moved = rh.movescu(self.gateway.port, "WS1",
                                   {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": study_uid})
                files = scp.files()
            self.assertEqual(moved.final.status, rh.STATUS_SUCCESS, moved.describe())
            received = {str(h.read(f).SOPInstanceUID): f for f in files}
            self.assertIn(h.sop_instance_uid(original), received)
            got = h.read(received[h.sop_instance_uid(original)])
            self.assertEqual(h.pixel_element_bytes(got), h.pixel_element_bytes(h.read(original)))
            self.assertEqual(rh.group_elements(got, 0x0077), [])

        def assert_decrypt_refused(self, tampered: Path) -> None:
            """`pacsgw decrypt` of a changed object fails authentication and writes nothing."""
            out = tampered.with_name(tampered.stem + "-out.dcm")
            result = self.gateway.decrypt(tampered, out)
            self.assertNotEqual(result.returncode, 0)
            self.assertIn("authentication", result.output.lower())
            self.assertFalse(out.exists())

    return BackendEndToEnd
