"""Retrieval of real studies that mix transfer syntaxes and object kinds, as a new user would try it:
plain `getscu`, `getscu +xr`, `movescu` to a plain `storescp` (uncompressed syntaxes only).

The PACS (Orthanc) holds, through the gateway, a study with explicit and implicit VR CT slices, an
RLE and a JPEG-LS slice, a structured report and a key object selection; a second study adds a
JPEG baseline (lossy) XA object, which the gateway must not re-encode. What is asserted is what the
workstations actually received: every instance, pixel values bit-exact (decoded with DCMTK where
they arrive compressed), the counts and statuses DCMTK dumped, and the gateway's log.
"""

import subprocess
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pacsgw_harness as h  # noqa: E402
import retrieve_helpers as rh  # noqa: E402
import test_retrieve_path as rp  # noqa: E402  (the shared fixture; its test classes are not re-run here)

numpy = h.numpy

UID_RLE = "1.2.840.10008.1.2.5"
UID_JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"
NATIVE_SYNTAXES = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2")
DECODERS = {UID_RLE: "dcmdrle", UID_JPEG_LS_LOSSLESS: "dcmdjpls"}


class MixedStudyRetrieveTest(rp.RetrieveTestBase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.make_study("MIXEDTS", [("ct_le.dcm", "explicit"), ("ct_implicit.dcm", "implicit"),
                                       ("ct_rle.dcm", "compressed"), ("ct_jpls.dcm", "compressed"),
                                       ("sr_basic_text.dcm", "report"), ("kos.dcm", "keyobjects")])
            cls.make_study("WITHLOSSY", [("ct_le.dcm", "ct"), ("mf_xa_jpeg.dcm", "xa"), ("ct_implicit.dcm", "ct")])
        except Exception:
            cls.failed = True
            cls.tearDownClass()
            raise

    # ---- helpers -----------------------------------------------------------------------------

    def decoded_values(self, path: Path):
        """Pixel values of a received file, decoded with DCMTK's own tool when compressed."""
        ds = h.read(path)
        if not h.is_encapsulated(ds):
            return h.native_pixel_values(ds)
        tool = DECODERS.get(h.transfer_syntax(ds))
        self.assertIsNotNone(tool, f"{path.name}: unexpected transfer syntax {h.transfer_syntax(ds)}")
        out = path.with_suffix(".decoded")
        result = h.run_tool([tool, path, out], timeout=60)
        self.assertTrue(out.is_file(), f"{tool} could not decode {path.name}\n{result.describe()}")
        return h.native_pixel_values(h.read(out))

    def assert_same_object(self, received: Path, original: Path, syntaxes=None):
        """Same instance; pixel values bit-exact; every other attribute unchanged; no key reference."""
        got, want = h.read(received), h.read(original)
        self.assertEqual(str(got.SOPInstanceUID), str(want.SOPInstanceUID))
        if syntaxes is not None:
            self.assertIn(h.transfer_syntax(got), syntaxes, f"{received.name}: arrived in {h.transfer_syntax(got)}")
        self.assertEqual(rh.group_elements(got, h.KEYREF_GROUP), [], f"{received.name}: key reference left")
        if h.PIXEL_DATA_TAG in want:
            a, b = self.decoded_values(received), self.decoded_values(original)
            self.assertEqual(a.shape, b.shape, f"{received.name}: pixel count")
            self.assertTrue(numpy.array_equal(a, b), f"{received.name}: pixel values differ from the original")
        else:
            self.assertNotIn(h.PIXEL_DATA_TAG, got)
        # Attributes a codec may legitimately set when it re-encodes (none of them patient data).
        codec_managed = {0x00280002, 0x00280004, 0x00280006, 0x00282110, 0x00282112, 0x00282114, 0x00080008,
                         0x00082111}
        changed = [str(e.tag) for e in want if e.tag != h.PIXEL_DATA_TAG and int(e.tag) not in codec_managed
                   and (e.tag not in got or got[e.tag].value != e.value)]
        self.assertEqual(changed, [], f"{received.name}: attributes differ from the original")

    def get(self, study, calling="WS1", extra=()):
        directory = self.workdir / "received" / f"{self._testMethodName}-get"
        result = rh.getscu(self.gateway.port, directory, self.study_keys(study), calling=calling, extra=extra)
        return result, {h.sop_instance_uid(p): p for p in directory.iterdir() if p.is_file()}

    def assert_no_false_cancel(self, result, log_offset):
        self.assertFalse(any(r.status == rh.STATUS_CANCEL for r in result.responses), result.describe())
        log = self.gateway.log_since(log_offset)
        self.assertNotIn("cancelled by", log, "the gateway reported a cancel nobody asked for")

    def uid_of(self, study, source_name: str) -> set:
        return {sop for sop, path in study.originals.items() if path.stem.endswith(Path(source_name).stem)}

    # ---- C-GET -------------------------------------------------------------------------------

    def test_plain_getscu_receives_every_object_uncompressed(self):
        study = self.studies["MIXEDTS"]
        offset = self.gateway.log_size()
        result, received = self.get(study)
        self.assert_final(result, rh.STATUS_SUCCESS, completed=len(study.originals), failed=0)
        self.assert_no_false_cancel(result, offset)
        self.assertEqual(set(received), set(study.originals), result.describe())
        for sop, path in received.items():
            self.assert_same_object(path, study.originals[sop], syntaxes=NATIVE_SYNTAXES)

    def test_getscu_preferring_rle_gets_rle(self):
        study = self.studies["MIXEDTS"]
        offset = self.gateway.log_size()
        result, received = self.get(study, extra=["+xr"])
        self.assert_final(result, rh.STATUS_SUCCESS, completed=len(study.originals), failed=0)
        self.assert_no_false_cancel(result, offset)
        self.assertEqual(set(received), set(study.originals), result.describe())
        for sop, path in received.items():
            self.assert_same_object(path, study.originals[sop])
        # The requester's first choice is honoured: images arrive RLE-compressed, and the object
        # stored as RLE arrives with exactly its stored fragments.
        for sop in self.uid_of(study, "ct_le") | self.uid_of(study, "ct_jpls"):
            self.assertEqual(h.transfer_syntax(h.read(received[sop])), UID_RLE, f"{sop} not delivered as RLE")
        (rle_sop,) = self.uid_of(study, "ct_rle")
        got, want = h.read(received[rle_sop]), h.read(study.originals[rle_sop])
        self.assertEqual(h.transfer_syntax(got), UID_RLE)
        self.assertTrue(h.pixel_fragments(got) == h.pixel_fragments(want), "RLE fragments changed on the way")

    def test_lossy_object_fails_alone_on_plain_getscu(self):
        study = self.studies["WITHLOSSY"]
        (lossy,) = self.uid_of(study, "mf_xa_jpeg")
        offset = self.gateway.log_size()
        result, received = self.get(study)
        self.assert_final(result, rh.STATUS_SUBOPS_WITH_FAILURES, completed=2, failed=1)
        self.assert_no_false_cancel(result, offset)
        self.assertEqual(set(received), set(study.originals) - {lossy})
        for sop, path in received.items():
            self.assert_same_object(path, study.originals[sop], syntaxes=NATIVE_SYNTAXES)
        self.assertIn(lossy, self.gateway.log_since(offset))
        self.assertIn("no acceptable transfer syntax", self.gateway.log_since(offset))
        self.assert_gateway_serving()

    def test_get_where_nothing_can_be_delivered_fails_with_a702(self):
        study = self.studies["WITHLOSSY"]
        (lossy,) = self.uid_of(study, "mf_xa_jpeg")
        directory = self.workdir / "received" / "get-nothing-deliverable"
        offset = self.gateway.log_size()
        result = rh.getscu(self.gateway.port, directory,
                           {"QueryRetrieveLevel": "IMAGE", "StudyInstanceUID": study.uid,
                            "SeriesInstanceUID": study.series["xa"], "SOPInstanceUID": lossy})
        # Every sub-operation failed: a failure status, not a warning, and counts that add up.
        self.assert_final(result, rh.STATUS_UNABLE_TO_PERFORM_SUBOPS, completed=0, failed=1)
        self.assertEqual([p for p in directory.iterdir() if p.is_file()], [])
        self.assertIn(lossy, self.gateway.log_since(offset))
        self.assert_gateway_serving()

    # ---- C-MOVE ------------------------------------------------------------------------------

    def test_move_to_plain_storescp_delivers_every_object(self):
        study = self.studies["MIXEDTS"]
        offset = self.gateway.log_size()
        with self.destination("WS1", accept_all=False) as scp:
            result = self.move("WS1", self.study_keys(study))
        self.assert_final(result, rh.STATUS_SUCCESS, completed=len(study.originals), failed=0)
        self.assert_no_false_cancel(result, offset)
        received = {h.sop_instance_uid(p): p for p in scp.files()}
        self.assertEqual(set(received), set(study.originals), f"{result.describe()}\n{scp.log()}")
        for sop, path in received.items():
            self.assert_same_object(path, study.originals[sop], syntaxes=NATIVE_SYNTAXES)

    def test_move_to_accept_all_storescp_keeps_stored_syntax(self):
        study = self.studies["MIXEDTS"]
        with self.destination("WS1") as scp:
            result = self.move("WS1", self.study_keys(study))
        self.assert_final(result, rh.STATUS_SUCCESS, completed=len(study.originals), failed=0)
        received = {h.sop_instance_uid(p): p for p in scp.files()}
        self.assertEqual(set(received), set(study.originals))
        for sop, path in received.items():
            want = h.read(study.originals[sop])
            if h.is_encapsulated(want):  # compressed objects go out exactly as stored
                self.assertEqual(h.transfer_syntax(h.read(path)), h.transfer_syntax(want), path.name)
                self.assertTrue(h.pixel_fragments(h.read(path)) == h.pixel_fragments(want), path.name)
            self.assert_same_object(path, study.originals[sop])

    def test_lossy_object_fails_alone_on_move_to_plain_storescp(self):
        study = self.studies["WITHLOSSY"]
        (lossy,) = self.uid_of(study, "mf_xa_jpeg")
        with self.destination("WS1", accept_all=False) as scp:
            result = self.move("WS1", self.study_keys(study))
        self.assert_final(result, rh.STATUS_SUBOPS_WITH_FAILURES, completed=2, failed=1)
        self.assertEqual(result.failed_uids, [lossy], result.describe())
        self.assertEqual(scp.sop_instance_uids(), set(study.originals) - {lossy})

    def test_ciphertext_destination_gets_what_can_go_without_decoding(self):
        # WS2 sees ciphertext: encrypted compressed pixel data cannot be decoded, so a plain storescp
        # gets the native slices (ciphertext) and the documents, and only the two compressed fail.
        study = self.studies["MIXEDTS"]
        compressed = self.uid_of(study, "ct_rle") | self.uid_of(study, "ct_jpls")
        with self.destination("WS2", accept_all=False) as scp:
            result = self.move("WS2", self.study_keys(study), calling="WS1")
        self.assert_final(result, rh.STATUS_SUBOPS_WITH_FAILURES, completed=4, failed=2)
        self.assertEqual(set(result.failed_uids), compressed, result.describe())
        received = {h.sop_instance_uid(p): p for p in scp.files()}
        self.assertEqual(set(received), set(study.originals) - compressed)
        for sop in self.uid_of(study, "ct_le") | self.uid_of(study, "ct_implicit"):
            self.assert_ciphertext(received[sop], study.originals[sop])

    # ---- documents without pixel data ----------------------------------------------------------

    def test_reports_and_key_objects_retrievable_by_default(self):
        study = self.studies["MIXEDTS"]
        documents = self.uid_of(study, "sr_basic_text") | self.uid_of(study, "kos")
        self.assertEqual(len(documents), 2)
        directory = self.workdir / "received" / "documents"
        result = rh.getscu(self.gateway.port, directory,
                           {"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": study.uid,
                            "SeriesInstanceUID": "\\".join([study.series["report"], study.series["keyobjects"]])})
        self.assert_final(result, rh.STATUS_SUCCESS, completed=2, failed=0)
        received = {h.sop_instance_uid(p): p for p in directory.iterdir() if p.is_file()}
        self.assertEqual(set(received), documents)
        for sop, path in received.items():
            self.assert_same_object(path, study.originals[sop])

    # ---- roles -------------------------------------------------------------------------------

    def test_wrong_role_rejected_at_association_and_audited(self):
        offset = self.gateway.log_size()
        store = h.storescu(self.gateway.port, [h.test_file("ct_le.dcm")], calling="WS1")
        self.assertTrue(store.association_rejected, store.describe())
        find, matches = rh.findscu(self.gateway.port, self.workdir / "find" / "wrong-role",
                                   {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": None}, calling="CT1")
        self.assertTrue(find.association_rejected, find.describe())
        self.assertEqual(matches, [])
        log = self.gateway.log_since(offset)
        self.assertIn("audit: association from WS1@", log)
        self.assertIn("audit: association from CT1@", log)
        self.assert_gateway_serving()


if __name__ == "__main__":
    h.main()
