"""Site-to-site relay: two gateways, two Orthancs, real DCMTK tools, on loopback.

Site A: modality CT1 -> gateway GATEWAY_A -> Orthanc PACSA; workstation WSA (ciphertext) at A asks
gateway A to C-MOVE a study to GATEWAY_B, a configured relay peer. Site B: gateway GATEWAY_B ->
Orthanc PACSB; workstation WSB (decrypt) retrieves through gateway B.

Certificates are made by the openssl command line: site A's relay key is EC P-256 (key agreement),
site B's RSA-3072 (RSA-OAEP key transport), so both CMS recipient kinds are exercised.

What must hold, each asserted on what the peers hold or received:
  * the relayed study lands in PACS B as the same ciphertext PACS A holds, with no capsule left;
  * B's decrypt workstation gets the original pixels back bit-exact;
  * another study of A whose ciphertext is copied straight into PACS B does not decrypt at B
    (UnknownKey, nothing delivered);
  * a tampered capsule, a capsule moved to another study's object, a capsule from a sender that is
    not a relay peer are refused with their DIMSE status and an audit record, and nothing reaches PACS B.
"""

import re
import shutil
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pacsgw_harness as h  # noqa: E402
import retrieve_helpers as rh  # noqa: E402

numpy = h.numpy
LOOPBACK = h.LOOPBACK
RELAY_GROUP = 0x0079
RELAY_CREATOR = "PACSGW RELAY 1"


def make_certificate(directory: Path, name: str, key_kind: str):
    """A self-signed relay certificate and its 0600 private key, with the openssl CLI."""
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    if key_kind == "ec":
        newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    else:
        newkey = ["-newkey", "rsa:3072"]
    result = h.run_tool(["openssl", "req", "-x509", *newkey, "-nodes", "-keyout", key, "-out", cert,
                         "-days", "2", "-subj", f"/CN=pacsgw relay {name}"], timeout=120)
    if not cert.exists() or not key.exists():
        raise AssertionError(f"openssl could not make the {name} certificate\n{result.describe()}")
    key.chmod(0o600)
    return cert, key


def new_ct_study(directory: Path, name: str, count: int):
    """`count` CT slices of a new study in `directory`: (study UID, {SOP Instance UID: file})."""
    study_uid, series_uid = rh.new_uid(), rh.new_uid()
    originals = {}
    for number in range(1, count + 1):
        target = directory / f"{number:03d}.dcm"
        rh.derive(h.test_file("ct_le.dcm"), target, study_uid, series_uid, number, f"PGWRELAY-{name}",
                  f"Relay^{name}")
        originals[h.sop_instance_uid(target)] = target
    return study_uid, originals


class RelayGateway(rh.RetrieveGateway):
    """A gateway with a relay: section (certificate, private key, peers)."""

    def __init__(self, workdir, relay: dict, **kwargs):
        super().__init__(workdir, **kwargs)
        self.relay = relay

    def config_yaml(self) -> str:
        q = h._yaml_scalar
        lines = [super().config_yaml().rstrip("\n"), "relay:",
                 f"  certificate: {q(self.relay['certificate'])}",
                 f"  private_key: {q(self.relay['private_key'])}",
                 "  peers:"]
        for peer in self.relay["peers"]:
            lines.append(f"    - {{ name: {q(peer['name'])}, ae_title: {q(peer['ae_title'])}, host: {q(LOOPBACK)}, "
                         f"port: {peer['port']}, certificate: {q(peer['certificate'])} }}")
        return "\n".join(lines) + "\n"


def capsule_elements(ds) -> list:
    return [elem.tag for elem in ds if elem.tag.group == RELAY_GROUP]


def capsule_tag(ds):
    """Tag of the capsule element (0079,xx01) in the 'PACSGW RELAY 1' block."""
    for elem in ds:
        if elem.tag.group == RELAY_GROUP and 0x10 <= elem.tag.element <= 0xFF:
            if h.element_text(elem) == RELAY_CREATOR:
                return h.pydicom.tag.Tag(RELAY_GROUP, (elem.tag.element << 8) | 0x01)
    raise AssertionError("no relay capsule block")


class RelayTest(h.LogDumpingTestCase):
    failed = False

    @classmethod
    def setUpClass(cls):
        cls.workdir = h.make_workdir("relaytest")
        certs = cls.workdir / "certs"
        certs.mkdir()
        cls.cert_a, key_a = make_certificate(certs, "site-a", "ec")
        cls.cert_b, key_b = make_certificate(certs, "site-b", "rsa")
        port_a, port_b = h.free_port(), h.free_port()
        cls.wsb_port, cls.capture_port = h.free_port(), h.free_port()
        cls.pacs_a = h.Orthanc(cls.workdir / "pacs-a", aet="PACSA", gateway_aet="GATEWAY_A", gateway_port=port_a)
        cls.pacs_b = h.Orthanc(cls.workdir / "pacs-b", aet="PACSB", gateway_aet="GATEWAY_B", gateway_port=port_b)
        cls.peer_b = {"name": "site-b", "ae_title": "GATEWAY_B", "port": port_b, "certificate": cls.cert_b}
        cls.gateway_a = RelayGateway(
            cls.workdir / "gateway-a", ae_title="GATEWAY_A", port=port_a, upstream_port=cls.pacs_a.dicom_port,
            upstream_aet="PACSA", workstations=[("WSA", LOOPBACK, h.free_port(), "ciphertext")],
            relay={"certificate": cls.cert_a, "private_key": key_a, "peers": [cls.peer_b]})
        cls.gateway_b = RelayGateway(
            cls.workdir / "gateway-b", ae_title="GATEWAY_B", port=port_b, upstream_port=cls.pacs_b.dicom_port,
            upstream_aet="PACSB", workstations=[("WSB", LOOPBACK, cls.wsb_port, "decrypt")],
            relay={"certificate": cls.cert_b, "private_key": key_b,
                   "peers": [{"name": "site-a", "ae_title": "GATEWAY_A", "port": port_a, "certificate": cls.cert_a}]})
        cls.logs = {"gateway A": cls.gateway_a.log_path, "gateway B": cls.gateway_b.log_path,
                    "Orthanc A": cls.pacs_a.log_path, "Orthanc B": cls.pacs_b.log_path}
        cls.peers = [cls.gateway_a, cls.gateway_b, cls.pacs_a, cls.pacs_b]
        try:
            cls.pacs_a.start()
            cls.pacs_b.start()
            cls.gateway_b.start()
            cls.studies = {name: cls.store_at_a(name, count) for name, count in
                           (("RELAYED", 3), ("OTHER", 2), ("CAPTURED", 2))}
            cls.captured = cls.capture_relayed_objects(cls.studies["CAPTURED"])
            cls.gateway_a.start()
        except Exception:
            cls.stop_all()
            raise

    @classmethod
    def stop_all(cls):
        statuses = [p.stop() for p in cls.peers]
        return statuses

    @classmethod
    def tearDownClass(cls):
        alive = cls.gateway_a.alive() and cls.gateway_b.alive()
        statuses = cls.stop_all()
        if cls.failed or not alive or h.keep_temp_dirs():
            sys.stderr.write(f"\n[{cls.__name__}] test files kept in {cls.workdir}\n")
        else:
            shutil.rmtree(cls.workdir, ignore_errors=True)
        if not alive:
            raise AssertionError("a gateway died during the relay tests")
        if statuses[0] != 0 or statuses[1] != 0:
            raise AssertionError(f"a gateway did not exit cleanly on SIGTERM: {statuses[:2]}")

    # ---- site A ------------------------------------------------------------------------------

    @classmethod
    def store_at_a(cls, name: str, count: int) -> dict:
        """A study of `count` CT slices stored by CT1 through gateway A (started for the occasion when
        needed): returns {SOP Instance UID: original file} and the study UID under key ''."""
        study_uid, originals = new_ct_study(cls.workdir / "originals" / name, name, count)
        started_here = not cls.gateway_a.alive()
        if started_here:
            cls.gateway_a.start()
        try:
            result = h.storescu(cls.gateway_a.port, list(originals.values()), called="GATEWAY_A", calling="CT1")
        finally:
            if started_here:
                cls.gateway_a.stop()
        if not result.all_succeeded(count):
            raise AssertionError(f"storing {name} at site A failed\n{result.describe()}")
        return {"uid": study_uid, "originals": originals}

    @classmethod
    def capture_relayed_objects(cls, study: dict) -> list:
        """What gateway A sends to a relay peer, captured by a storescp posing as GATEWAY_B (gateway A
        runs once with the peer's port pointing at the capture): objects with capsules for site B."""
        real_port = cls.peer_b["port"]
        cls.peer_b["port"] = cls.capture_port
        capture = rh.StoreSCP("GATEWAY_B", cls.capture_port, cls.workdir / "captured")
        try:
            with capture:
                cls.gateway_a.start()
                result = rh.movescu(cls.gateway_a.port, "GATEWAY_B",
                                    {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": study["uid"]},
                                    calling="WSA", called="GATEWAY_A")
                cls.gateway_a.stop()
        finally:
            cls.peer_b["port"] = real_port
        files = capture.files()
        if len(files) != len(study["originals"]):
            raise AssertionError(f"capture received {len(files)} objects\n{result.describe()}\n{capture.log()}")
        return files

    # ---- helpers -----------------------------------------------------------------------------

    def keys(self, name: str) -> dict:
        return {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": self.studies[name]["uid"]}

    def copy_from(self, pacs: h.Orthanc, sop: str, label: str) -> Path:
        target = self.workdir / "copies" / label / f"{sop}.dcm"
        target.parent.mkdir(parents=True, exist_ok=True)
        return pacs.download_by_uid(sop, target)

    def relay_to_b(self, name: str) -> rh.QRResult:
        return rh.movescu(self.gateway_a.port, "GATEWAY_B", self.keys(name), calling="WSA", called="GATEWAY_A")

    def audit_records(self, gateway) -> str:
        return (gateway.data_dir / "audit.log").read_text(errors="replace")

    def assert_final(self, result: rh.QRResult, status: int, completed: int = None, failed: int = None):
        final = result.final
        self.assertEqual(final.status, status, f"final status 0x{final.status:04X}\n{result.describe()}")
        if completed is not None:
            self.assertEqual(final.completed, completed, result.describe())
        if failed is not None:
            self.assertEqual(final.failed, failed, result.describe())

    def send_to_b(self, files, calling: str) -> h.StoreResult:
        """storescu -d to gateway B; `statuses` are the C-STORE-RSP status codes as 4 hex digits."""
        result = h.storescu(self.gateway_b.port, files, called="GATEWAY_B", calling=calling, extra=["-d"])
        result.statuses = [c.upper() for c in re.findall(r"DIMSE Status\s*: 0x([0-9A-Fa-f]{4})", result.output)]
        return result

    def assert_refused(self, result: h.StoreResult, status: int, code: str, log_offset: int, audit_offset: int):
        self.assertEqual(result.statuses, [f"{status:04X}"], result.describe())
        self.assertIn(f"[{code}]", result.output, "the Error Comment names the reason")
        log = self.gateway_b.log_since(log_offset)
        self.assertIn(f"refused ({code})", log)
        audit = self.audit_records(self.gateway_b)[audit_offset:]
        self.assertIn(f'csd-code="{code}"', audit, "no Security Alert audit record")

    # ---- the tests ---------------------------------------------------------------------------

    def test_01_study_relayed_to_site_b_as_ciphertext(self):
        study = self.studies["RELAYED"]
        self.assertEqual(self.pacs_b.instance_count(), 0)
        result = self.relay_to_b("RELAYED")
        self.assert_final(result, rh.STATUS_SUCCESS, completed=3, failed=0)
        for sop, original in study["originals"].items():
            at_a = h.read(self.copy_from(self.pacs_a, sop, "a"))
            at_b = h.read(self.copy_from(self.pacs_b, sop, "b"))
            self.assertTrue(h.key_reference(at_b), f"{sop}: PACS B holds no key reference")
            self.assertNotEqual(h.pixel_payload(at_b), h.pixel_payload(h.read(original)),
                                f"{sop}: PACS B holds plaintext")
            self.assertTrue(h.pixel_payload(at_b) == h.pixel_payload(at_a), f"{sop}: ciphertext changed on the way")
            self.assertEqual({k: h.element_text(v) for k, v in h.key_reference(at_b).items()},
                             {k: h.element_text(v) for k, v in h.key_reference(at_a).items()})
            self.assertEqual(capsule_elements(at_b), [], f"{sop}: the relay capsule reached PACS B")
        # Site B holds the study's key under the same id, wrapped under its own master key.
        key_id = h.element_text(h.key_reference(at_a)[0x03])
        listed = self.gateway_b.cli("keys", "list", "--config", self.gateway_b.config_path)
        self.assertIn(key_id, listed.output, listed.describe())
        self.assertIn(study["uid"], listed.output)
        self.assertEqual(self.gateway_b.log().count(f"data key {key_id} for study {study['uid']} imported"), 1,
                         "the import is logged once, not once per object")
        self.assertIn('csd-code="KEY-imported"', self.audit_records(self.gateway_b))

    def test_02_decrypt_workstation_at_b_gets_the_original(self):
        study = self.studies["RELAYED"]
        if self.pacs_b.find_instance(next(iter(study["originals"]))) is None:
            self.relay_to_b("RELAYED")
        directory = self.workdir / "received" / "wsb"
        with rh.StoreSCP("WSB", self.wsb_port, directory) as scp:
            result = rh.movescu(self.gateway_b.port, "WSB", self.keys("RELAYED"), calling="WSB", called="GATEWAY_B")
            files = scp.files()
        self.assert_final(result, rh.STATUS_SUCCESS, completed=3, failed=0)
        by_uid = {h.sop_instance_uid(p): p for p in files}
        self.assertEqual(set(by_uid), set(study["originals"]))
        for sop, path in by_uid.items():
            got, want = h.read(path), h.read(study["originals"][sop])
            self.assertTrue(numpy.array_equal(h.native_pixel_values(got), h.native_pixel_values(want)),
                            f"{sop}: pixel values differ from the original")
            self.assertTrue(h.pixel_element_bytes(got) == h.pixel_element_bytes(want), f"{sop}: pixel bytes differ")
            self.assertEqual(rh.group_elements(got, h.KEYREF_GROUP), [])
            self.assertEqual(capsule_elements(got), [])

    def test_03_relaying_again_keeps_the_same_key(self):
        result = self.relay_to_b("RELAYED")
        self.assert_final(result, rh.STATUS_SUCCESS, completed=3, failed=0)

    def test_04_other_study_of_a_cannot_be_decrypted_at_b(self):
        study = self.studies["OTHER"]
        for sop in study["originals"]:
            self.pacs_b.upload(self.copy_from(self.pacs_a, sop, "other"))  # ciphertext, straight PACS to PACS
        offset = self.gateway_b.log_size()
        directory = self.workdir / "received" / "wsb-other"
        with rh.StoreSCP("WSB", self.wsb_port, directory) as scp:
            result = rh.movescu(self.gateway_b.port, "WSB", self.keys("OTHER"), calling="WSB", called="GATEWAY_B")
            files = scp.files()
        self.assertEqual(files, [], "an object of a study never relayed reached B's workstation")
        self.assertEqual(result.final.completed or 0, 0, result.describe())
        self.assertEqual(result.final.failed, 2, result.describe())
        self.assertEqual(sorted(result.failed_uids), sorted(study["originals"]), result.describe())
        log = self.gateway_b.log_since(offset)
        self.assertEqual(log.count("(UnknownKey)"), 2, log)

    def test_05_tampered_capsule_refused(self):
        ds = h.read(self.captured[0])
        tag = capsule_tag(ds)
        capsule = bytearray(h.element_as_bytes(ds[tag]))
        capsule[-8] ^= 0x01  # inside the AES-GCM authentication tag at the end of the envelope
        ds[tag].value = bytes(capsule)
        tampered = self.workdir / "tampered.dcm"
        ds.save_as(tampered, write_like_original=True)
        log, audit = self.gateway_b.log_size(), len(self.audit_records(self.gateway_b))
        before = self.pacs_b.instance_count()
        result = self.send_to_b([tampered], calling="GATEWAY_A")
        self.assert_refused(result, 0x0124, "RelayCapsuleCannotBeOpened", log, audit)
        self.assertEqual(self.pacs_b.instance_count(), before, "a refused object reached PACS B")
        self.assertIsNone(self.pacs_b.find_instance(str(ds.SOPInstanceUID)))

    def test_06_capsule_of_another_study_refused(self):
        # The OTHER study's ciphertext (as PACS A holds it) with the CAPTURED study's authentic capsule.
        donor = h.read(self.captured[0])
        sop = next(iter(self.studies["OTHER"]["originals"]))
        ds = h.read(self.copy_from(self.pacs_a, sop, "foreign"))
        for elem in list(donor):
            if elem.tag.group == RELAY_GROUP:
                ds[elem.tag] = elem
        foreign = self.workdir / "foreign-capsule.dcm"
        ds.save_as(foreign, write_like_original=True)
        log, audit = self.gateway_b.log_size(), len(self.audit_records(self.gateway_b))
        result = self.send_to_b([foreign], calling="GATEWAY_A")
        self.assert_refused(result, 0x0124, "RelayCapsuleDoesNotMatch", log, audit)

    def test_07_capsule_from_a_sender_that_is_not_a_peer_refused(self):
        # B's own modality: configured, but not a relay peer.
        log, audit = self.gateway_b.log_size(), len(self.audit_records(self.gateway_b))
        before = self.pacs_b.instance_count()
        result = self.send_to_b([self.captured[0]], calling="CT1")
        self.assert_refused(result, 0x0124, "RelayCapsuleFromNonPeer", log, audit)
        # An AE title no site configured: not even an association.
        stranger = self.send_to_b([self.captured[0]], calling="SITE_C")
        self.assertTrue(stranger.association_rejected, stranger.describe())
        self.assertEqual(self.pacs_b.instance_count(), before)

    def test_08_authentic_capsule_from_the_peer_accepted(self):
        # The same captured objects, unaltered, from the peer: accepted, so the refusals above were the
        # tampering's doing. The key is imported and B's workstation decrypts them.
        result = self.send_to_b(self.captured, calling="GATEWAY_A")
        self.assertEqual(result.statuses, ["0000"] * len(self.captured), result.describe())
        study = self.studies["CAPTURED"]
        with rh.StoreSCP("WSB", self.wsb_port, self.workdir / "received" / "wsb-captured") as scp:
            moved = rh.movescu(self.gateway_b.port, "WSB", self.keys("CAPTURED"), calling="WSB", called="GATEWAY_B")
            files = scp.files()
        self.assert_final(moved, rh.STATUS_SUCCESS, completed=len(study["originals"]), failed=0)
        for path in files:
            want = h.read(study["originals"][h.sop_instance_uid(path)])
            self.assertTrue(h.pixel_element_bytes(h.read(path)) == h.pixel_element_bytes(want))


if __name__ == "__main__":
    h.main()
