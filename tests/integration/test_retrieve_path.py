"""Retrieval path end to end: workstations query and retrieve through the gateway from a real PACS
(Orthanc) that holds only ciphertext.

Modality CT1 stores studies through the gateway (so Orthanc holds encrypted objects); DCMTK's
findscu / movescu / getscu play the workstations and storescp the move destinations. Every
assertion is on what the peers actually received (files, identifiers) and on the DIMSE responses
DCMTK dumped, never on exit codes.

Workstations configured in the gateway:
  WS1 decrypt, WS2 ciphertext, WS3 decrypt (second destination), WS4 deny.
Orthanc additionally knows DIRECTQ, which queries it directly for comparison.
"""

import shutil
import sys
import threading
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pacsgw_harness as h  # noqa: E402  (re-executes with the Debian python if pydicom is missing)
import retrieve_helpers as rh  # noqa: E402

numpy = h.numpy
LOOPBACK = h.LOOPBACK


class Study:
    """A study stored through the gateway: its UIDs and the original files, by SOP Instance UID."""

    def __init__(self, uid: str, patient_id: str):
        self.uid = uid
        self.patient_id = patient_id
        self.series = {}     # label -> Series Instance UID
        self.originals = {}  # SOP Instance UID -> original file
        self.series_of = {}  # SOP Instance UID -> Series Instance UID
        self.ordered = []    # SOP Instance UIDs in the order they reached the PACS

    def uids_in_series(self, label: str) -> set:
        return {sop for sop, series in self.series_of.items() if series == self.series[label]}


class RetrieveTestBase(h.LogDumpingTestCase):
    """Starts Orthanc and the gateway once per class; per-test storescp destinations."""

    passthrough_unencrypted = False
    failed = False

    @classmethod
    def setUpClass(cls):
        cls.workdir = h.make_workdir(cls.__name__.lower())
        gateway_port = h.free_port()
        cls.ws_ports = {ae: h.free_port() for ae in ("WS1", "WS2", "WS3", "WS4")}
        cls.orthanc = rh.RetrieveOrthanc(cls.workdir / "orthanc", gateway_port=gateway_port,
                                         extra_modalities=[("DIRECTQ", h.free_port())])
        access = {"WS1": "decrypt", "WS2": "ciphertext", "WS3": "decrypt", "WS4": "deny"}
        cls.gateway = rh.RetrieveGateway(
            cls.workdir / "gateway", upstream_port=cls.orthanc.dicom_port, upstream_aet=cls.orthanc.aet,
            port=gateway_port, passthrough_unencrypted=cls.passthrough_unencrypted,
            workstations=[(ae, LOOPBACK, cls.ws_ports[ae], access[ae]) for ae in access])
        cls.logs = {"pacsgw": cls.gateway.log_path, "orthanc": cls.orthanc.log_path}
        cls.orthanc.start()
        try:
            cls.gateway.start()
        except Exception:
            cls.orthanc.stop()
            raise
        cls.studies = {}
        cls._counter = 0

    @classmethod
    def tearDownClass(cls):
        # As the shared fixture (h.PacsAndGatewayTestCase): the class fails if the gateway died
        # meanwhile or did not exit cleanly on SIGTERM.
        was_alive = cls.gateway.alive()
        status = cls.gateway.stop()
        cls.orthanc.stop()
        if cls.failed or not was_alive or status != 0 or h.keep_temp_dirs():
            sys.stderr.write(f"\n[{cls.__name__}] test files kept in {cls.workdir}\n")
        else:
            shutil.rmtree(cls.workdir, ignore_errors=True)
        if not was_alive:
            raise AssertionError(f"pacsgw serve died during {cls.__name__}:\n{h.tail(cls.gateway.log_path)}")
        if status != 0:
            raise AssertionError(f"pacsgw serve exited with {status} on SIGTERM (expected 0):\n"
                                 f"{h.tail(cls.gateway.log_path)}")

    # ---- populating the PACS -------------------------------------------------------------------

    @classmethod
    def make_study(cls, name: str, parts, send: bool = True) -> Study:
        """Derives a study from real files: `parts` is a list of (cache file, series label). Sends it
        through the gateway as modality CT1 (every file in its own transfer syntax)."""
        study = Study(rh.new_uid(), f"PGWRT-{name}")
        files = []
        for number, (source, label) in enumerate(parts, start=1):
            series_uid = study.series.setdefault(label, rh.new_uid())
            target = cls.workdir / "originals" / name / f"{number:03d}-{Path(source).stem}.dcm"
            rh.derive(h.test_file(source), target, study.uid, series_uid, number, study.patient_id,
                      f"Retrieve^{name}")
            sop = h.sop_instance_uid(target)
            study.originals[sop] = target
            study.series_of[sop] = series_uid
            files.append(target)
        if send:
            cls.send(study, files)
        cls.studies[name] = study
        return study

    @classmethod
    def send(cls, study: Study, files):
        result = h.dcmsend(cls.gateway.port, files, called=cls.gateway.ae_title, calling="CT1")
        if not result.all_succeeded(len(files)):
            raise AssertionError(f"storing through the gateway failed\n{result.describe()}\n"
                                 f"{h.tail(cls.gateway.log_path)}")
        study.ordered += [h.sop_instance_uid(f) for f in files]

    def pacs_copy(self, sop_uid: str) -> Path:
        target = self.workdir / "pacs-copies" / f"{sop_uid}.dcm"
        target.parent.mkdir(parents=True, exist_ok=True)
        return self.orthanc.download_by_uid(sop_uid, target)

    # ---- destinations and assertions -----------------------------------------------------------

    def destination(self, aet: str, extra=(), accept_all: bool = True) -> rh.StoreSCP:
        type(self)._counter += 1
        directory = self.workdir / "received" / f"{self._testMethodName}-{aet}-{self._counter}"
        return rh.StoreSCP(aet, self.ws_ports[aet], directory, extra=extra, accept_all=accept_all)

    def assert_decrypted(self, received: Path, original: Path):
        """The original object: bit-exact pixel data, the same attributes, nothing left in group 0077."""
        got, want = h.read(received), h.read(original)
        self.assertEqual(str(got.SOPInstanceUID), str(want.SOPInstanceUID))
        self.assertEqual(rh.group_elements(got, h.KEYREF_GROUP), [],
                         f"{received.name}: group 0x0077 elements remain after decryption")
        self.assertEqual(h.is_encapsulated(got), h.is_encapsulated(want), f"{received.name}: encapsulation changed")
        # Orthanc stores objects unchanged, so any other attribute that differs was changed on the way.
        changed = [str(e.tag) for e in want
                   if e.tag != h.PIXEL_DATA_TAG and (e.tag not in got or got[e.tag].value != e.value)]
        changed += [str(e.tag) for e in got if e.tag not in want]
        self.assertEqual(changed, [], f"{received.name}: attributes differ from the original")
        if h.is_encapsulated(want):
            self.assertEqual(h.transfer_syntax(got), h.transfer_syntax(want), f"{received.name}: transfer syntax")
            got_fragments, want_fragments = h.pixel_fragments(got), h.pixel_fragments(want)
            self.assertEqual(len(got_fragments), len(want_fragments), f"{received.name}: fragment count")
            for i, (a, b) in enumerate(zip(got_fragments, want_fragments)):
                self.assertTrue(a == b, f"{received.name}: fragment {i} differs from the original")
        else:
            a, b = h.native_pixel_values(got), h.native_pixel_values(want)
            self.assertEqual(a.dtype, b.dtype, f"{received.name}: sample type")
            differ = int(numpy.count_nonzero(a != b)) if a.shape == b.shape else f"shapes {a.shape} {b.shape}"
            self.assertTrue(numpy.array_equal(a, b), f"{received.name}: pixel values differ from the original "
                                                      f"({differ} differ)")
            if got.is_little_endian == want.is_little_endian:
                self.assertTrue(h.pixel_element_bytes(got) == h.pixel_element_bytes(want),
                                f"{received.name}: Pixel Data bytes differ from the original")

    def assert_ciphertext(self, received: Path, original: Path):
        """The object as the PACS holds it: key-reference block present, pixel data = PACS copy."""
        got, want = h.read(received), h.read(original)
        sop = str(got.SOPInstanceUID)
        pacs = h.read(self.pacs_copy(sop))
        self.assertTrue(h.key_reference(got), f"{received.name}: no key-reference block")
        self.assertNotEqual(h.pixel_payload(got), h.pixel_payload(want), f"{received.name}: pixel data is plaintext")
        self.assertTrue(h.pixel_payload(got) == h.pixel_payload(pacs),
                        f"{received.name}: pixel data differs from the PACS copy")
        self.assertEqual({k: h.element_text(v) for k, v in h.key_reference(got).items()},
                         {k: h.element_text(v) for k, v in h.key_reference(pacs).items()},
                         f"{received.name}: key-reference block differs from the PACS copy")

    def assert_received_decrypted(self, scp_files, study: Study, expected_uids: set):
        by_uid = {h.sop_instance_uid(p): p for p in scp_files}
        self.assertEqual(len(scp_files), len(by_uid), "the same instance was received twice")
        self.assertEqual(set(by_uid), expected_uids, "received instances differ from the moved entity")
        for sop, path in by_uid.items():
            self.assert_decrypted(path, study.originals[sop])

    def assert_final(self, result: rh.QRResult, status: int, completed: int = None, failed: int = None):
        final = result.final
        self.assertEqual(final.status, status,
                         f"final status 0x{final.status:04X}, expected 0x{status:04X}\n{result.describe()}")
        if completed is not None:
            self.assertEqual(final.completed, completed, f"completed sub-operations\n{result.describe()}")
        if failed is not None:
            self.assertEqual(final.failed, failed, f"failed sub-operations\n{result.describe()}")

    def assert_gateway_serving(self):
        self.assertTrue(self.gateway.alive(), f"pacsgw exited\n{h.tail(self.gateway.log_path)}")
        echo = rh.echoscu(self.gateway.port, calling="WS1")
        self.assertTrue(rh.echo_succeeded(echo), f"C-ECHO after the operation failed\n{echo.describe()}")

    def orthanc_log_size(self) -> int:
        return self.orthanc.log_path.stat().st_size

    def orthanc_errors_since(self, offset: int) -> str:
        """Orthanc's error lines written since `offset` (e.g. a C-MOVE it aborted), for failure messages."""
        with open(self.orthanc.log_path, "rb") as f:
            f.seek(offset)
            lines = f.read().decode(errors="replace").splitlines()
        return "\n".join(line for line in lines if line.startswith("E"))

    def move(self, destination: str, keys: dict, calling: str = "WS1", **kwargs) -> rh.QRResult:
        return rh.movescu(self.gateway.port, destination, keys, calling=calling, **kwargs)

    @staticmethod
    def study_keys(study: Study) -> dict:
        return {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": study.uid}


class RetrievePathTest(RetrieveTestBase):
    """Queries, moves and gets of encrypted studies; refusals; concurrency; failures; cancel."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            # MIXED: four native slices in one series, RLE + JPEG-LS (sent compressed) in another.
            cls.make_study("MIXED", [("ct_le.dcm", "native")] * 4 + [("ct_rle.dcm", "compressed"),
                                                                    ("ct_jpls.dcm", "compressed")])
            # Native-only studies: C-GET (one storage context per SOP class) and the concurrent moves.
            cls.make_study("NATIVEB", [("ct_le.dcm", "s1")] * 6)
            cls.make_study("NATIVEC", [("ct_le.dcm", "s1")] * 6)
        except Exception:
            cls.failed = True  # keep the logs
            cls.tearDownClass()
            raise

    FIXTURES = ("MIXED", "NATIVEB", "NATIVEC")  # stored once for the class, never modified

    def fixtures(self) -> list:
        return [self.studies[name] for name in self.FIXTURES]

    # ---- set-up sanity -------------------------------------------------------------------------

    def test_00_peers_configured_for_each_other(self):
        modalities = self.orthanc.get_json("/modalities?expand")
        gateway = modalities.get("gateway")
        self.assertIsNotNone(gateway, f"Orthanc does not know the gateway: {modalities}")
        self.assertEqual((gateway["AET"], gateway["Host"], int(gateway["Port"])),
                         (self.gateway.ae_title, LOOPBACK, self.gateway.port))
        for permission in ("AllowEcho", "AllowFind", "AllowMove", "AllowGet", "AllowStore"):
            self.assertTrue(gateway.get(permission, True), f"Orthanc denies the gateway {permission}")
        config = self.gateway.config_path.read_text()
        self.assertIn(f'ae_title: "{self.orthanc.aet}"', config)
        self.assertIn(f"port: {self.orthanc.dicom_port}", config)

    def test_01_pacs_holds_only_ciphertext(self):
        for study in self.fixtures():
            for sop, original in study.originals.items():
                pacs = h.read(self.pacs_copy(sop))
                self.assertTrue(h.key_reference(pacs), f"PACS copy of {sop} has no key-reference block")
                self.assertNotEqual(h.pixel_payload(pacs), h.pixel_payload(h.read(original)),
                                    f"PACS copy of {sop} holds plaintext pixel data")

    # ---- C-ECHO and C-FIND ---------------------------------------------------------------------

    def test_echo_from_workstations(self):
        for ae in ("WS1", "WS2", "WS3"):
            result = rh.echoscu(self.gateway.port, calling=ae)
            self.assertTrue(rh.echo_succeeded(result), f"C-ECHO from {ae}\n{result.describe()}")

    def compare_find(self, keys: dict, model: str = "-S"):
        """The same query via the gateway (as WS1) and directly to Orthanc (as DIRECTQ); returns the matches."""
        tag = f"{self._testMethodName}-{len(keys)}-{abs(hash(tuple(keys.items()))) % 10**6}"
        via, via_matches = rh.findscu(self.gateway.port, self.workdir / "find" / f"{tag}-gw", keys, model=model)
        direct, direct_matches = rh.findscu(self.orthanc.dicom_port, self.workdir / "find" / f"{tag}-direct", keys,
                                            calling="DIRECTQ", called=self.orthanc.aet, model=model)
        self.assertEqual(direct.final.status, rh.STATUS_SUCCESS, f"direct query failed\n{direct.describe()}")
        self.assertEqual(via.final.status, rh.STATUS_SUCCESS, f"query via the gateway failed\n{via.describe()}")
        self.assertTrue(direct_matches, f"Orthanc found nothing for {keys}")
        self.assertEqual(via_matches, direct_matches, "the gateway's matches differ from Orthanc's")
        self.assertEqual(len(via.pending), len(via_matches), "pending responses vs identifiers written")
        return via_matches

    def test_find_study_root_study_level(self):
        matches = self.compare_find({"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": None, "PatientID": None,
                                     "PatientName": None, "StudyDate": None, "AccessionNumber": None,
                                     "ModalitiesInStudy": None, "NumberOfStudyRelatedInstances": None})
        found = {m["0020,000D"] for m in matches}
        self.assertTrue({s.uid for s in self.fixtures()} <= found, f"studies missing: {found}")

    def test_find_patient_root_patient_level(self):
        matches = self.compare_find({"QueryRetrieveLevel": "PATIENT", "PatientID": None, "PatientName": None,
                                     "NumberOfPatientRelatedStudies": None}, model="-P")
        found = {m["0010,0020"] for m in matches}
        self.assertTrue({s.patient_id for s in self.fixtures()} <= found, f"patients missing: {found}")

    def test_find_series_level(self):
        study = self.studies["MIXED"]
        matches = self.compare_find({"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": study.uid,
                                     "SeriesInstanceUID": None, "Modality": None,
                                     "NumberOfSeriesRelatedInstances": None})
        self.assertEqual({m["0020,000E"] for m in matches}, set(study.series.values()))

    def test_find_image_level(self):
        study = self.studies["MIXED"]
        found = set()
        for label, series_uid in study.series.items():
            matches = self.compare_find({"QueryRetrieveLevel": "IMAGE", "StudyInstanceUID": study.uid,
                                         "SeriesInstanceUID": series_uid, "SOPInstanceUID": None,
                                         "InstanceNumber": None, "SOPClassUID": None})
            uids = {m["0008,0018"] for m in matches}
            self.assertEqual(uids, study.uids_in_series(label))
            found |= uids
        self.assertEqual(found, set(study.originals))

    def test_find_from_unknown_ae_rejected_at_association(self):
        before = self.gateway.log_size()
        result, matches = rh.findscu(self.gateway.port, self.workdir / "find" / "unknown-ae",
                                     {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": None}, calling="NOBODY")
        self.assertTrue(result.association_rejected, f"association not rejected\n{result.describe()}")
        self.assertEqual(matches, [])
        log = self.gateway.log_since(before)
        self.assertTrue(any("audit" in line and "NOBODY" in line and "rejected" in line for line in log.splitlines()),
                        f"no audit line for NOBODY\n{log}")

    # ---- C-MOVE, destination with access decrypt -----------------------------------------------

    def test_move_study_level_to_decrypt_destination(self):
        study = self.studies["MIXED"]
        with self.destination("WS1") as scp:
            result = self.move("WS1", self.study_keys(study))
            files = scp.files()
        self.assert_final(result, rh.STATUS_SUCCESS, completed=len(study.originals), failed=0)
        self.assert_received_decrypted(files, study, set(study.originals))
        # Pending responses carry the gateway's progress: counts that add up to the whole study.
        self.assertTrue(result.pending, f"no pending responses relayed\n{result.describe()}")
        completed = [r.completed for r in result.pending]
        self.assertEqual(completed, sorted(completed), f"completed count went backwards\n{result.describe()}")
        for r in result.pending:
            self.assertEqual(r.remaining + r.completed + r.failed + r.warning, len(study.originals),
                             f"pending counts do not add up\n{result.describe()}")

    def test_move_series_level_to_decrypt_destination(self):
        study = self.studies["MIXED"]
        for label in ("compressed", "native"):
            with self.subTest(series=label), self.destination("WS1") as scp:
                result = self.move("WS1", {"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": study.uid,
                                           "SeriesInstanceUID": study.series[label]})
                files = scp.files()
                expected = study.uids_in_series(label)
                self.assert_final(result, rh.STATUS_SUCCESS, completed=len(expected), failed=0)
                self.assert_received_decrypted(files, study, expected)

    def test_move_image_level_to_decrypt_destination(self):
        study = self.studies["MIXED"]
        # One native, one RLE, one JPEG-LS object, each moved on its own.
        for sop in (study.ordered[0], study.ordered[4], study.ordered[5]):
            with self.subTest(sop=sop), self.destination("WS1") as scp:
                result = self.move("WS1", {"QueryRetrieveLevel": "IMAGE", "StudyInstanceUID": study.uid,
                                           "SeriesInstanceUID": study.series_of[sop], "SOPInstanceUID": sop})
                files = scp.files()
                self.assert_final(result, rh.STATUS_SUCCESS, completed=1, failed=0)
                self.assert_received_decrypted(files, study, {sop})

    def test_move_patient_root_study_level(self):
        study = self.studies["NATIVEB"]
        with self.destination("WS1") as scp:
            result = self.move("WS1", {"QueryRetrieveLevel": "STUDY", "PatientID": study.patient_id,
                                       "StudyInstanceUID": study.uid}, model="-P")
            files = scp.files()
        self.assert_final(result, rh.STATUS_SUCCESS, completed=len(study.originals), failed=0)
        self.assert_received_decrypted(files, study, set(study.originals))

    # ---- C-MOVE, destination with access ciphertext --------------------------------------------

    def test_move_to_ciphertext_destination(self):
        study = self.studies["MIXED"]
        with self.destination("WS2") as scp:
            result = self.move("WS2", self.study_keys(study))
            files = scp.files()
        self.assert_final(result, rh.STATUS_SUCCESS, completed=len(study.originals), failed=0)
        by_uid = {h.sop_instance_uid(p): p for p in files}
        self.assertEqual(set(by_uid), set(study.originals))
        for sop, path in by_uid.items():
            self.assert_ciphertext(path, study.originals[sop])

    def test_move_requested_by_ciphertext_workstation_to_decrypt_destination(self):
        # The destination's access decides, not the caller's: WS2 (ciphertext) moving to WS1 (decrypt).
        study = self.studies["NATIVEB"]
        with self.destination("WS1") as scp:
            result = self.move("WS1", self.study_keys(study), calling="WS2")
            files = scp.files()
        self.assert_final(result, rh.STATUS_SUCCESS, completed=len(study.originals), failed=0)
        self.assert_received_decrypted(files, study, set(study.originals))

    # ---- C-MOVE refusals -----------------------------------------------------------------------

    def assert_move_refused(self, destination: str, reason: str):
        study = self.studies["MIXED"]
        before = self.gateway.log_size()
        received = []
        if destination in self.ws_ports:
            with self.destination(destination) as scp:
                result = self.move(destination, self.study_keys(study))
                received = scp.files()
        else:
            result = self.move(destination, self.study_keys(study))
        self.assertEqual(result.final.status, rh.STATUS_MOVE_DESTINATION_UNKNOWN,
                         f"expected 0xA801 Move Destination unknown\n{result.describe()}")
        self.assertEqual(result.pending, [], f"pending responses for a refused move\n{result.describe()}")
        self.assertEqual(received, [], "the refused destination received objects")
        log = self.gateway.log_since(before)
        audit = [line for line in log.splitlines() if "audit" in line and destination in line and reason in line]
        self.assertTrue(audit, f"no audit line naming {destination} ({reason})\n{log}")
        self.assertNotIn("PACS move id", log, "the refused move reached the PACS")
        self.assert_gateway_serving()

    def test_move_to_denied_destination_refused(self):
        self.assert_move_refused("WS4", "denied")

    def test_move_to_unknown_destination_refused(self):
        self.assert_move_refused("NOWHERE", "not configured")

    # ---- C-GET ---------------------------------------------------------------------------------

    def get(self, study: Study, calling: str):
        directory = self.workdir / "received" / f"{self._testMethodName}-get-{calling}"
        result = rh.getscu(self.gateway.port, directory, self.study_keys(study), calling=calling)
        return result, sorted(p for p in directory.iterdir() if p.is_file())

    def test_get_study_level_decrypt(self):
        study = self.studies["NATIVEB"]
        result, files = self.get(study, "WS1")
        self.assert_final(result, rh.STATUS_SUCCESS, completed=len(study.originals), failed=0)
        self.assert_received_decrypted(files, study, set(study.originals))

    def test_get_study_level_ciphertext(self):
        study = self.studies["NATIVEB"]
        result, files = self.get(study, "WS2")
        self.assert_final(result, rh.STATUS_SUCCESS, completed=len(study.originals), failed=0)
        by_uid = {h.sop_instance_uid(p): p for p in files}
        self.assertEqual(set(by_uid), set(study.originals))
        for sop, path in by_uid.items():
            self.assert_ciphertext(path, study.originals[sop])

    def test_denied_workstation_gets_nothing(self):
        study = self.studies["NATIVEB"]
        result, files = self.get(study, "WS4")
        self.assertEqual(files, [], "a denied workstation received objects by C-GET")
        self.assertFalse(any(r.status == rh.STATUS_SUCCESS for r in result.responses), result.describe())
        find, matches = rh.findscu(self.gateway.port, self.workdir / "find" / "denied",
                                   {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": None}, calling="WS4")
        self.assertEqual(matches, [], "a denied workstation got C-FIND matches")
        self.assert_gateway_serving()

    def test_denied_workstation_refused_with_status_0124_and_audited(self):
        # Product contract: a denied workstation's C-FIND and C-GET are answered 0x0124 (Refused: Not
        # authorised) rather than rejected at association, and each refusal leaves an audit line.
        study = self.studies["NATIVEB"]
        before = self.gateway.log_size()
        result, files = self.get(study, "WS4")
        self.assertEqual(files, [])
        find, matches = rh.findscu(self.gateway.port, self.workdir / "find" / "denied-0124",
                                   {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": None}, calling="WS4")
        self.assertEqual(matches, [])
        log = self.gateway.log_since(before)
        for verb, outcome in (("C-GET", result), ("C-FIND", find)):
            with self.subTest(verb):
                self.assertFalse(outcome.association_rejected,
                                 f"{verb} association rejected instead\n{outcome.describe()}\n{log}")
                self.assertEqual(outcome.final.status, rh.STATUS_NOT_AUTHORISED, outcome.describe())
                audit = [line for line in log.splitlines() if "audit" in line and "WS4" in line and verb in line]
                self.assertTrue(audit, f"no audit line for the {verb} of WS4\n{log}")

    # ---- concurrency ---------------------------------------------------------------------------

    def test_concurrent_moves_to_two_destinations(self):
        jobs = [("WS1", self.studies["NATIVEB"]), ("WS3", self.studies["NATIVEC"])]
        for round_number in range(3):
            with self.subTest(round=round_number):
                scps = {ae: self.destination(ae).start() for ae, _ in jobs}
                results = {}
                barrier = threading.Barrier(len(jobs))

                def run(ae, study):
                    barrier.wait()
                    results[ae] = self.move(ae, self.study_keys(study), calling=ae)

                threads = [threading.Thread(target=run, args=job) for job in jobs]
                try:
                    for t in threads:
                        t.start()
                    for t in threads:
                        t.join(timeout=600)
                finally:
                    for scp in scps.values():
                        scp.stop()
                for ae, study in jobs:
                    self.assert_final(results[ae], rh.STATUS_SUCCESS, completed=len(study.originals), failed=0)
                    self.assert_received_decrypted(scps[ae].files(), study, set(study.originals))

    # ---- failures of single sub-operations -----------------------------------------------------

    def corrupt_in_pacs(self, study: Study, victim: str):
        """Overwrites `victim` in Orthanc with a copy whose ciphertext has one bit flipped, then
        re-stores the instances after it so the PACS still sends it in the middle of the study."""
        good = self.pacs_copy(victim)
        bad = self.workdir / "corrupted" / f"{victim}.dcm"
        bad.parent.mkdir(parents=True, exist_ok=True)
        rh.flip_pixel_byte(good, bad)
        self.orthanc.upload(bad)
        self.assertEqual(self.pacs_copy(victim).read_bytes(), bad.read_bytes(), "Orthanc did not overwrite")
        for sop in study.ordered[study.ordered.index(victim) + 1:]:
            self.orthanc.upload(self.pacs_copy(sop))

    def assert_only_victim_failed(self, study: Study, victim: str, result: rh.QRResult, files, pacs_errors: str):
        received = {h.sop_instance_uid(p) for p in files}
        expected = set(study.originals) - {victim}
        missing = [sop for sop in study.ordered if sop in expected - received]
        self.assertFalse(missing, f"instances after the failed one never arrived: {missing}\n"
                                  f"PACS errors:\n{pacs_errors}\n{result.describe()}")
        self.assertEqual(result.failed_uids, [victim], f"Failed SOP Instance UID List\n{result.describe()}")
        self.assert_final(result, rh.STATUS_SUBOPS_WITH_FAILURES, completed=len(expected), failed=1)
        self.assert_received_decrypted(files, study, expected)

    def test_corrupted_instance_fails_only_its_sub_operation(self):
        study = self.make_study("CORRUPT", [("ct_le.dcm", "s1")] * 5)
        victim = study.ordered[2]
        self.corrupt_in_pacs(study, victim)
        before, pacs_before = self.gateway.log_size(), self.orthanc_log_size()
        with self.destination("WS1") as scp:
            result = self.move("WS1", self.study_keys(study))
            files = scp.files()
        log = self.gateway.log_since(before)
        failure_lines = [line for line in log.splitlines() if victim in line]
        self.assertTrue(any("authentication" in line.lower() for line in failure_lines),
                        f"gateway log does not name the authentication failure of {victim}\n{log}")
        self.assert_gateway_serving()
        self.assert_only_victim_failed(study, victim, result, files, self.orthanc_errors_since(pacs_before))

    def test_never_encrypted_instance_fails_with_passthrough_off(self):
        study = self.make_study("PLAIN", [("ct_le.dcm", "s1")] * 3, send=False)
        plain = list(study.originals)
        # First and last through the gateway, the middle one straight into the PACS, unencrypted.
        self.send(study, [study.originals[plain[0]]])
        self.orthanc.upload(study.originals[plain[1]])
        study.ordered.append(plain[1])
        self.send(study, [study.originals[plain[2]]])
        before, pacs_before = self.gateway.log_size(), self.orthanc_log_size()
        with self.destination("WS1") as scp:
            result = self.move("WS1", self.study_keys(study))
            files = scp.files()
        log = self.gateway.log_since(before)
        self.assertTrue(any(plain[1] in line and "encrypt" in line.lower() for line in log.splitlines()),
                        f"gateway log does not say why {plain[1]} failed\n{log}")
        self.assert_gateway_serving()
        self.assert_only_victim_failed(study, plain[1], result, files, self.orthanc_errors_since(pacs_before))

    # ---- C-CANCEL ------------------------------------------------------------------------------

    def test_cancel_move(self):
        study = self.make_study("CANCEL", [("ct_le.dcm", "s1")] * 12)
        before = self.gateway.log_size()
        with self.destination("WS1") as scp:
            result = self.move("WS1", self.study_keys(study), extra=["--cancel", "2"])
            files = scp.files()
        log = self.gateway.log_since(before)
        self.assertIn("cancel", log.lower(), "the gateway did not notice the C-CANCEL")
        self.assert_final(result, rh.STATUS_CANCEL)
        self.assertLess(len(files), len(study.originals), f"the move ran to completion despite C-CANCEL\n"
                                                          f"{result.describe()}")
        self.assertEqual(len(files), result.final.completed, "received files vs completed count")
        by_uid = {h.sop_instance_uid(p): p for p in files}
        for sop, path in by_uid.items():
            self.assert_decrypted(path, study.originals[sop])
        self.assert_gateway_serving()


class PassthroughTest(RetrieveTestBase):
    """cipher.passthrough_unencrypted: true hands out objects that never were encrypted, unchanged."""

    passthrough_unencrypted = True

    def test_never_encrypted_instance_passes_unchanged(self):
        # A legacy study the gateway never saw (no data key for it): every object passes as stored.
        study = self.make_study("PASS", [("ct_le.dcm", "s1"), ("ct_rle.dcm", "s1"), ("ct_le.dcm", "s1")], send=False)
        uids = list(study.originals)
        for sop in uids:
            self.orthanc.upload(study.originals[sop])  # straight into the PACS
        with self.destination("WS1") as scp:
            result = self.move("WS1", self.study_keys(study))
            files = scp.files()
        self.assert_final(result, rh.STATUS_SUCCESS, completed=3, failed=0)
        self.assert_received_decrypted(files, study, set(uids))
        passed = h.read(next(p for p in files if h.sop_instance_uid(p) == uids[1]))
        self.assertTrue(h.pixel_payload(passed) == h.pixel_payload(h.read(study.originals[uids[1]])))

    def test_unencrypted_instance_in_an_encrypted_study_is_refused(self):
        # The gateway holds a key for this study, so an object without a key reference was stripped.
        study = self.make_study("MIXPASS", [("ct_le.dcm", "s1")] * 3, send=False)
        uids = list(study.originals)
        self.send(study, [study.originals[uids[0]]])
        self.orthanc.upload(study.originals[uids[1]])
        study.ordered.append(uids[1])
        self.send(study, [study.originals[uids[2]]])
        with self.destination("WS1") as scp:
            result = self.move("WS1", self.study_keys(study))
            files = scp.files()
        self.assert_final(result, rh.STATUS_SUBOPS_WITH_FAILURES, completed=2, failed=1)
        self.assertEqual(result.failed_uids, [uids[1]], result.describe())
        self.assert_received_decrypted(files, study, {uids[0], uids[2]})

    def test_ciphertext_destination_gets_unencrypted_instance_as_stored(self):
        study = self.make_study("PASSCT", [("ct_le.dcm", "s1")], send=False)
        (sop, original), = study.originals.items()
        self.orthanc.upload(original)
        with self.destination("WS2") as scp:
            result = self.move("WS2", self.study_keys(study))
            files = scp.files()
        self.assert_final(result, rh.STATUS_SUCCESS, completed=1, failed=0)
        self.assertEqual(len(files), 1)
        got = h.read(files[0])
        self.assertFalse(h.key_reference(got))
        self.assertTrue(h.pixel_payload(got) == h.pixel_payload(h.read(original)))


if __name__ == "__main__":
    h.main()
