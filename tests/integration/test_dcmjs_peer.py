"""A second DICOM stack that is not DCMTK: dcmjs-dimse (npm, version pinned in
tests/integration/dcmjs_peer/package-lock.json, installed by scripts/fetch-test-data.sh) as the
modality and as the workstation, against the gateway and a real Orthanc.

The modality stores, through the gateway, a study mixing explicit and implicit VR CT slices, an RLE
and a JPEG-LS slice, a structured report and a key object selection. The workstation queries it
(C-FIND), gets it (C-GET, dcmjs-dimse as the storage SCP on its own association) and moves it
(C-MOVE to a dcmjs-dimse storage SCP). Asserted is what arrived: ciphertext in the PACS, every
instance at the workstation with pixel values bit-exact, and the sub-operation counts.

dcmjs-dimse 0.3.3 quirks the test works around (they are not gateway faults): implicit VR files go on
an association of their own (it skips them next to compressed files of the same SOP class); legacy
dates are written with allowInvalidVRLength; key object selection is missing from its C-GET storage
classes, so the SCP role for it is set just before the association request; the final C-MOVE/C-GET response carries a stale
"remaining" count, so only completed/failed are asserted there; its storage SCP binds every interface.
It also rewrites what it received when saving it (character set, dates, private elements), so the
received files are compared on identity and pixel values, not attribute by attribute.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pacsgw_harness as h  # noqa: E402
import retrieve_helpers as rh  # noqa: E402
import test_retrieve_path as rp  # noqa: E402  (the shared fixture; its test classes are not re-run here)
import test_retrieve_mixed_study as ms  # noqa: E402  (object comparison helpers)

PEER = Path(__file__).resolve().parent / "dcmjs_peer" / "peer.js"
UID_IMPLICIT = "1.2.840.10008.1.2"
UID_KEY_OBJECT_SELECTION = "1.2.840.10008.5.1.4.1.1.88.59"
IDENTITY = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "PatientID", "Rows",
            "Columns", "BitsAllocated")
PARTS = [("ct_le.dcm", "explicit"), ("ct_implicit.dcm", "implicit"), ("ct_rle.dcm", "compressed"),
         ("ct_jpls.dcm", "compressed"), ("sr_basic_text.dcm", "report"), ("kos.dcm", "keyobjects")]


def node_env() -> dict:
    modules = h.cache_dir() / "tools" / "dcmjs_peer" / "node_modules"
    if not (modules / "dcmjs-dimse").is_dir():
        raise FileNotFoundError(f"{modules} is missing: run scripts/fetch-test-data.sh first")
    return dict(os.environ, NODE_PATH=str(modules))


def node() -> str:
    path = shutil.which("node") or shutil.which("nodejs")
    if path is None:
        raise FileNotFoundError("node not found (Debian package nodejs; scripts/setup.sh installs it)")
    return path


class PeerRun:
    """The JSON lines one peer command printed."""

    def __init__(self, proc: subprocess.CompletedProcess):
        self.returncode = proc.returncode
        self.stderr = proc.stderr
        self.events = []
        for line in proc.stdout.splitlines():
            try:
                self.events.append(json.loads(line))
            except ValueError:
                pass  # dcmjs-dimse's own log lines

    def of(self, kind: str) -> list:
        return [e for e in self.events if e.get("event") == kind]

    def describe(self) -> str:
        return f"exit {self.returncode}\nevents: {json.dumps(self.events)[:4000]}\nstderr: {self.stderr[-2000:]}"


def peer(command: str, options: dict, timeout: float = 180) -> PeerRun:
    proc = subprocess.run([node(), str(PEER), command, json.dumps(options)], capture_output=True, text=True,
                          env=node_env(), timeout=timeout)
    return PeerRun(proc)


class PeerStorageScp:
    """dcmjs-dimse as a move destination; the received files land in `directory`."""

    def __init__(self, port: int, directory: Path, accept_all: bool = False):
        self.port, self.directory = port, directory
        self.options = {"port": port, "out": str(directory), "acceptAll": accept_all}
        self.proc = None

    def __enter__(self):
        self.directory.mkdir(parents=True, exist_ok=True)
        self.log_path = self.directory.parent / f"{self.directory.name}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([node(), str(PEER), "scp", json.dumps(self.options)], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=node_env())
        deadline = time.monotonic() + 30
        while not h.port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"dcmjs-dimse storage SCP did not start\n{h.tail(self.log_path)}")
            time.sleep(0.1)
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def files(self) -> list:
        return sorted(self.directory.glob("*.dcm"))  # not the .decoded copies the comparison writes


class DcmjsPeerTest(rp.RetrieveTestBase):

    decoded_values = ms.MixedStudyRetrieveTest.decoded_values

    @classmethod
    def setUpClass(cls):
        node_env()  # fails early, with the reason, when the package is not installed
        super().setUpClass()
        try:
            cls.study = cls.make_study("DCMJS", PARTS, send=False)
            implicit = [p for p in cls.study.originals.values()
                        if h.transfer_syntax(h.read(p)) == UID_IMPLICIT]
            others = [p for p in cls.study.originals.values() if p not in implicit]
            cls.stored = peer("store", {"port": cls.gateway.port, "calling": "CT1", "called": cls.gateway.ae_title,
                                        "associations": [[str(p) for p in others], [str(p) for p in implicit]]})
        except Exception:
            cls.failed = True
            cls.tearDownClass()
            raise

    def peer_options(self, calling="WS1", **more) -> dict:
        return {"port": self.gateway.port, "calling": calling, "called": self.gateway.ae_title, **more}

    def assert_every_object_arrived(self, files, syntaxes=None):
        received = {h.sop_instance_uid(p): p for p in files}
        self.assertEqual(len(received), len(files), "an instance arrived twice")
        self.assertEqual(set(received), set(self.study.originals))
        for sop, path in received.items():
            self.assert_same_object(path, self.study.originals[sop], syntaxes=syntaxes)

    def assert_same_object(self, received: Path, original: Path, syntaxes=None):
        """Same instance, pixel values bit-exact (decoded with DCMTK where they arrive compressed)."""
        got, want = h.read(received), h.read(original)
        for keyword in IDENTITY:
            self.assertEqual(str(got.get(keyword, "")), str(want.get(keyword, "")), f"{received.name}: {keyword}")
        if syntaxes is not None:
            self.assertIn(h.transfer_syntax(got), syntaxes, f"{received.name}: arrived in {h.transfer_syntax(got)}")
        if h.PIXEL_DATA_TAG in want:
            a, b = self.decoded_values(received), self.decoded_values(original)
            self.assertEqual(a.shape, b.shape, f"{received.name}: pixel count")
            self.assertTrue(ms.numpy.array_equal(a, b), f"{received.name}: pixel values differ from the original")
        else:
            self.assertNotIn(h.PIXEL_DATA_TAG, got)

    # ---- modality ------------------------------------------------------------------------------

    def test_01_store_through_gateway_puts_ciphertext_in_pacs(self):
        statuses = {Path(e["file"]).name: e["status"] for e in self.stored.of("store")}
        self.assertEqual(len(statuses), len(PARTS), self.stored.describe())
        self.assertEqual(set(statuses.values()), {0}, self.stored.describe())
        for sop, original in self.study.originals.items():
            pacs = h.read(self.pacs_copy(sop))
            if h.PIXEL_DATA_TAG in h.read(original):
                self.assertTrue(h.key_reference(pacs), f"{original.name}: no key-reference block in the PACS")
                self.assertNotEqual(h.pixel_payload(pacs), h.pixel_payload(h.read(original)),
                                    f"{original.name}: plaintext pixel data in the PACS")
            else:
                self.assertNotIn(h.PIXEL_DATA_TAG, pacs)

    # ---- workstation ---------------------------------------------------------------------------

    def test_find_study(self):
        run = peer("find", self.peer_options(level="STUDY", keys={
            "StudyInstanceUID": self.study.uid, "PatientID": "", "NumberOfStudyRelatedInstances": ""}))
        matches = [e["match"] for e in run.of("find") if "match" in e]
        self.assertEqual(len(matches), 1, run.describe())
        self.assertEqual(matches[0]["StudyInstanceUID"], self.study.uid)
        self.assertEqual(matches[0]["PatientID"], self.study.patient_id)
        self.assertEqual(int(matches[0]["NumberOfStudyRelatedInstances"]), len(PARTS))
        self.assertEqual(run.of("find")[-1]["status"], 0, run.describe())

    def test_get_study_decrypts_every_object(self):
        directory = self.workdir / "received" / "dcmjs-get"
        run = peer("get", self.peer_options(study=self.study.uid, out=str(directory),
                                            extraStorageClasses=[UID_KEY_OBJECT_SELECTION]))
        responses = run.of("get")
        self.assertTrue(responses, run.describe())
        final = responses[-1]
        self.assertEqual((final["status"], final["completed"], final["failed"]), (0, len(PARTS), 0), run.describe())
        self.assertEqual(len(run.of("received")), len(PARTS), run.describe())
        self.assert_every_object_arrived([Path(e["file"]) for e in run.of("received")])
        self.assert_gateway_serving()

    def test_move_study_to_dcmjs_storage_scp(self):
        directory = self.workdir / "received" / "dcmjs-move"
        with PeerStorageScp(self.ws_ports["WS1"], directory) as scp:
            run = peer("move", self.peer_options(destination="WS1", study=self.study.uid))
        responses = run.of("move")
        self.assertTrue(responses, run.describe())
        final = responses[-1]
        self.assertEqual((final["status"], final["completed"], final["failed"]), (0, len(PARTS), 0),
                         f"{run.describe()}\n{h.tail(scp.log_path)}")
        self.assert_every_object_arrived(scp.files(), syntaxes=ms.NATIVE_SYNTAXES)

    def test_move_to_accept_all_dcmjs_scp_keeps_compressed_objects_as_stored(self):
        directory = self.workdir / "received" / "dcmjs-move-all"
        with PeerStorageScp(self.ws_ports["WS1"], directory, accept_all=True) as scp:
            run = peer("move", self.peer_options(destination="WS1", study=self.study.uid))
        final = run.of("move")[-1] if run.of("move") else {}
        self.assertEqual((final.get("status"), final.get("completed"), final.get("failed")), (0, len(PARTS), 0),
                         f"{run.describe()}\n{h.tail(scp.log_path)}")
        self.assert_every_object_arrived(scp.files())
        for path in scp.files():
            got = h.read(path)
            want = h.read(self.study.originals[h.sop_instance_uid(path)])
            if h.is_encapsulated(want):
                self.assertEqual(h.transfer_syntax(got), h.transfer_syntax(want), path.name)

    def test_ciphertext_workstation_gets_ciphertext(self):
        directory = self.workdir / "received" / "dcmjs-get-ciphertext"
        run = peer("get", self.peer_options(calling="WS2", study=self.study.uid, out=str(directory),
                                            extraStorageClasses=[UID_KEY_OBJECT_SELECTION]))
        received = {h.sop_instance_uid(Path(e["file"])): Path(e["file"]) for e in run.of("received")}
        native = ms.MixedStudyRetrieveTest.uid_of(self, self.study, "ct_le") | \
            ms.MixedStudyRetrieveTest.uid_of(self, self.study, "ct_implicit")
        compressed = set(self.study.originals) - native - self.documents()
        # Encrypted compressed pixel data cannot be converted for a requester that takes only
        # uncompressed syntaxes: those two fail alone, everything else arrives as the PACS holds it.
        final = run.of("get")[-1] if run.of("get") else {}
        self.assertEqual((final.get("status"), final.get("completed"), final.get("failed")),
                         (0xB000, len(PARTS) - len(compressed), len(compressed)), run.describe())
        self.assertEqual(set(received), set(self.study.originals) - compressed, run.describe())
        for sop in native:
            got, want = h.read(received[sop]), h.read(self.study.originals[sop])
            pacs = h.read(self.pacs_copy(sop))
            self.assertNotEqual(h.pixel_payload(got), h.pixel_payload(want), f"{sop}: pixel data is plaintext")
            self.assertTrue(h.pixel_payload(got) == h.pixel_payload(pacs), f"{sop}: pixel data differs from the PACS")

    def test_cancel_during_get_delivery_stops_with_consistent_counts(self):
        study = self.make_study("DCMJSCANCEL", [("ct_le.dcm", "s1")] * 12)
        offset = self.gateway.log_size()
        directory = self.workdir / "received" / "dcmjs-get-cancel"
        run = peer("get", self.peer_options(study=study.uid, out=str(directory), cancelAfter=2))
        self.assertEqual(len(run.of("cancelSent")), 1, run.describe())
        final = run.of("get")[-1] if run.of("get") else {}
        received = [Path(e["file"]) for e in run.of("received")]
        self.assertEqual(final.get("status"), rh.STATUS_CANCEL, run.describe())
        self.assertLess(len(received), len(study.originals), "the C-GET ran to completion despite C-CANCEL")
        self.assertGreaterEqual(len(received), 2, run.describe())
        # The counts the gateway reports are what the requester actually got.
        self.assertEqual((final["completed"], final["failed"]), (len(received), 0), run.describe())
        self.assertIn("cancelled by WS1", self.gateway.log_since(offset))
        for path in received:
            self.assert_same_object(path, study.originals[h.sop_instance_uid(path)])
        self.assert_gateway_serving()

    def documents(self) -> set:
        return {sop for sop, path in self.study.originals.items() if h.PIXEL_DATA_TAG not in h.read(path)}


if __name__ == "__main__":
    h.main()
