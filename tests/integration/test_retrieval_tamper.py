"""Retrieval that whoever controls the PACS cannot fool: objects relabelled or stripped inside the
PACS (through Orthanc's own REST API, as an attacker with PACS access would) are refused by the
gateway with a specific reason and an audit line, while the untouched instances of the same move
are delivered decrypted and legacy studies the gateway never saw still pass through (audited).
"""

import json
import re
import sys
import unittest
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pacsgw_harness as h  # noqa: E402
import retrieve_helpers as rh  # noqa: E402
import test_retrieve_path as trp  # noqa: E402  (module only: its test classes are not collected here)


# The DIMSE status the gateway answers the PACS's sub-operation with, per refusal reason
# (gateway/dimse_status.h, docs/conformance.md section 11).
REFUSAL_STATUS = {"BoundAttributesChanged": "0xC211", "KeyScopeMismatch": "0xC212", "KeyReferenceRemoved": "0xC213",
                  "UnknownKey": "0xC216", "UnknownBackend": "0xC218"}

# Fields of the key-reference block (codecs/key_reference.h), by element offset.
KEYREF_BACKEND_ID, KEYREF_KEY_ID, KEYREF_KEY_SCOPE = 0x01, 0x03, 0x04


class RetrievalTamperTest(trp.RetrieveTestBase):
    passthrough_unencrypted = True  # the setting under which stripping a key reference used to work

    # ---- what the PACS was told and what the audit trail recorded ------------------------------

    def offsets(self) -> tuple:
        return (self.orthanc.log_path.stat().st_size, (self.gateway.data_dir / "audit.log").stat().st_size)

    def assert_refusal_reported(self, offsets: tuple, victims: dict):
        """The PACS received the reason's own status for each victim ({sop: reason}) and nothing else
        failed; the audit trail holds one Security Alert per victim naming the reason."""
        orthanc_before, audit_before = offsets
        with open(self.orthanc.log_path, "rb") as f:
            f.seek(orthanc_before)
            orthanc_log = f.read().decode(errors="replace")
        statuses = re.findall(r"has failed with DIMSE status (0x[0-9A-Fa-f]{4})", orthanc_log)
        self.assertEqual(sorted(s.upper().replace("0X", "0x") for s in statuses),
                         sorted(REFUSAL_STATUS[reason] for reason in victims.values()), orthanc_log[-3000:])
        with open(self.gateway.data_dir / "audit.log", "rb") as f:
            f.seek(audit_before)
            records = [ET.fromstring(line) for line in f.read().decode().splitlines()]
        alerts = {}
        for m in records:
            ident = m.find("EventIdentification")
            if ident.find("EventID").get("csd-code") != "110113" or ident.get("EventOutcomeIndicator") != "8":
                continue
            objects = [o.get("ParticipantObjectID") for o in m.findall("ParticipantObjectIdentification")]
            types = [t.get("csd-code") for t in ident.findall("EventTypeCode")]
            users = [p.get("UserID") for p in m.findall("ActiveParticipant")]
            self.assertEqual(users, ["GATEWAY", self.orthanc.aet])
            for sop in objects:
                alerts[sop] = types
        self.assertEqual(alerts, {sop: [reason] for sop, reason in victims.items()})

    # ---- editing objects inside the PACS -------------------------------------------------------

    def modify_in_pacs(self, sop_uid: str, body: dict, delete_original: bool = False) -> h.pydicom.Dataset:
        """Orthanc's /modify with the SOP Instance UID kept, stored back into Orthanc."""
        instance = self.orthanc.find_instance(sop_uid)
        self.assertIsNotNone(instance, f"Orthanc does not hold {sop_uid}")
        body = dict(body, Keep=["SOPInstanceUID"], Force=True)
        data = self.orthanc._request(f"/instances/{instance}/modify", data=json.dumps(body).encode(), method="POST")
        target = self.workdir / "modified" / f"{sop_uid}-{len(body)}-{abs(hash(json.dumps(body))) % 10**8}.dcm"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        if delete_original:
            self.orthanc._request(f"/instances/{instance}", method="DELETE")
        self.orthanc.upload(target)
        ds = h.read(target)
        self.assertEqual(str(ds.SOPInstanceUID), sop_uid, "Orthanc did not keep the SOP Instance UID")
        return ds

    def rewrite_key_reference(self, sop_uid: str, offset: int, value: str) -> h.pydicom.Dataset:
        """One field of an object's key-reference block rewritten inside the PACS (downloaded, edited,
        the original deleted, the edit stored), as whoever controls the PACS could."""
        instance = self.orthanc.find_instance(sop_uid)
        target = self.workdir / "rewritten" / f"{sop_uid}-{offset:02x}.dcm"
        target.parent.mkdir(parents=True, exist_ok=True)
        self.orthanc.download(instance, target)
        ds = h.read(target)
        ds[h.key_reference(ds)[offset].tag].value = value
        ds.save_as(str(target))
        self.orthanc._request(f"/instances/{instance}", method="DELETE")
        self.orthanc.upload(target)
        stored = h.read(self.orthanc.download_by_uid(sop_uid, target.with_suffix(".stored.dcm")))
        self.assertEqual(h.element_text(h.key_reference(stored)[offset]), value, "Orthanc did not keep the edit")
        return stored

    def key_denied_since(self, audit_offset: int) -> list:
        """(key id, outcome, description) of every KEY-denied audit record after `audit_offset`."""
        with open(self.gateway.data_dir / "audit.log", "rb") as f:
            f.seek(audit_offset)
            records = [ET.fromstring(line) for line in f.read().decode().splitlines()]
        denied = []
        for m in records:
            ident = m.find("EventIdentification")
            if [t.get("csd-code") for t in ident.findall("EventTypeCode")] != ["110129", "KEY-denied"]:
                continue
            self.assertEqual(ident.find("EventID").get("csd-code"), "110113")  # Security Alert
            obj = m.find("ParticipantObjectIdentification")
            denied.append((obj.get("ParticipantObjectID"), ident.get("EventOutcomeIndicator"),
                           obj.find("ParticipantObjectDescription").text))
        return denied

    def move_and_expect_refusal(self, study: trp.Study, victim: str, code: str, keys: dict = None):
        before = self.gateway.log_size()
        offsets = self.offsets()
        with self.destination("WS1") as scp:
            result = self.move("WS1", keys or self.study_keys(study))
            files = scp.files()
        log = self.gateway.log_since(before)
        received = {h.sop_instance_uid(p) for p in files}
        self.assertNotIn(victim, received, f"the tampered instance was delivered\n{result.describe()}")
        alerts = [line for line in log.splitlines() if "audit: security alert" in line and victim in line]
        self.assertTrue(alerts, f"no audit line for {victim}\n{log}")
        self.assertTrue(any(f"({code})" in line for line in alerts), f"audit line does not name {code}:\n{alerts}")
        self.assertIn(victim, result.failed_uids, f"Failed SOP Instance UID List\n{result.describe()}")
        self.assertEqual(result.final.status, rh.STATUS_SUBOPS_WITH_FAILURES, result.describe())
        self.assert_refusal_reported(offsets, {victim: code})
        self.assert_gateway_serving()
        return files, result

    # ---- the relabellings ------------------------------------------------------------------------

    def test_changed_rescale_slope_is_refused(self):
        study = self.make_study("RESCALE", [("ct_le.dcm", "s1")] * 3)
        victim = study.ordered[1]
        self.modify_in_pacs(victim, {"Replace": {"RescaleSlope": "2"}})
        files, result = self.move_and_expect_refusal(study, victim, "BoundAttributesChanged")
        self.assert_received_decrypted(files, study, set(study.ordered) - {victim})
        self.assert_final(result, rh.STATUS_SUBOPS_WITH_FAILURES, completed=2, failed=1)

    def test_changed_pixel_spacing_and_position_are_refused(self):
        study = self.make_study("GEOMETRY", [("ct_le.dcm", "s1")] * 2)
        spacing, position = study.ordered
        self.modify_in_pacs(spacing, {"Replace": {"PixelSpacing": "0.1\\0.1"}})
        self.modify_in_pacs(position, {"Replace": {"ImagePositionPatient": "0\\0\\999"}})
        before = self.gateway.log_size()
        offsets = self.offsets()
        with self.destination("WS1") as scp:
            result = self.move("WS1", self.study_keys(study))
            files = scp.files()
        log = self.gateway.log_since(before)
        self.assertEqual(files, [], f"a tampered instance was delivered\n{result.describe()}")
        self.assert_refusal_reported(offsets, {spacing: "BoundAttributesChanged", position: "BoundAttributesChanged"})
        for sop in (spacing, position):
            self.assertTrue(any("audit: security alert" in line and sop in line and "(BoundAttributesChanged)" in line
                                for line in log.splitlines()), f"no audit line for {sop}\n{log}")
        self.assert_final(result, rh.STATUS_UNABLE_TO_PERFORM_SUBOPS, completed=0, failed=2)

    def test_instance_moved_into_another_patients_study_is_refused(self):
        victim_study = self.make_study("VICTIM", [("ct_le.dcm", "s1")] * 2)
        source = self.make_study("SOURCE", [("ct_le.dcm", "s1")])
        moved = source.ordered[0]
        self.modify_in_pacs(moved, {"Replace": {"StudyInstanceUID": victim_study.uid,
                                                "PatientID": victim_study.patient_id}},
                            delete_original=True)
        audit_before = (self.gateway.data_dir / "audit.log").stat().st_size
        files, result = self.move_and_expect_refusal(victim_study, moved, "KeyScopeMismatch")
        self.assert_received_decrypted(files, victim_study, set(victim_study.ordered))
        # The source study's key was asked for and denied: a key event names it, without key material.
        with open(self.gateway.data_dir / "audit.log", "rb") as f:
            f.seek(audit_before)
            denied = [m for m in map(ET.fromstring, f.read().decode().splitlines())
                      if [t.get("csd-code") for t in m.findall("EventIdentification/EventTypeCode")]
                      == ["110129", "KEY-denied"]]
        self.assertEqual(len(denied), 1, denied)
        self.assertEqual(denied[0].find("EventIdentification").get("EventOutcomeIndicator"), "4")
        self.assertEqual(denied[0].find("ParticipantObjectIdentification/ParticipantObjectDescription").text,
                         f"scope {source.uid}")
        self.assert_final(result, rh.STATUS_SUBOPS_WITH_FAILURES, completed=2, failed=1)

    def test_unknown_key_id_is_refused_and_the_key_denied(self):
        study = self.make_study("UNKNOWNKEY", [("ct_le.dcm", "s1")] * 2)
        victim = study.ordered[0]
        foreign_key = str(uuid.uuid4())  # a key this keystore never held (another site's, or made up)
        self.rewrite_key_reference(victim, KEYREF_KEY_ID, foreign_key)
        audit_before = (self.gateway.data_dir / "audit.log").stat().st_size
        files, result = self.move_and_expect_refusal(study, victim, "UnknownKey")
        self.assert_received_decrypted(files, study, {study.ordered[1]})
        self.assertEqual(self.key_denied_since(audit_before), [(foreign_key, "4", "scope ")])
        self.assert_final(result, rh.STATUS_SUBOPS_WITH_FAILURES, completed=1, failed=1)

    def test_object_naming_another_backend_is_refused_and_the_key_denied(self):
        study = self.make_study("OTHERBACKEND", [("ct_le.dcm", "s1")] * 2)
        victim = study.ordered[0]
        key_id = h.element_text(h.key_reference(h.read(
            self.orthanc.download_by_uid(victim, self.workdir / f"{victim}.orig.dcm")))[KEYREF_KEY_ID])
        self.rewrite_key_reference(victim, KEYREF_BACKEND_ID, "aes-128-cbc")
        audit_before = (self.gateway.data_dir / "audit.log").stat().st_size
        files, result = self.move_and_expect_refusal(study, victim, "UnknownBackend")
        self.assert_received_decrypted(files, study, {study.ordered[1]})
        # The study's key is not released for an object that names another cipher than its own.
        self.assertEqual(self.key_denied_since(audit_before), [(key_id, "4", "scope ")])

    def test_key_of_another_scope_is_refused_and_the_key_denied(self):
        study = self.make_study("OTHERSCOPE", [("ct_le.dcm", "s1")] * 2)
        victim = study.ordered[0]
        stored = self.rewrite_key_reference(victim, KEYREF_KEY_SCOPE, "SERIES")
        key_id = h.element_text(h.key_reference(stored)[KEYREF_KEY_ID])
        audit_before = (self.gateway.data_dir / "audit.log").stat().st_size
        files, result = self.move_and_expect_refusal(study, victim, "KeyScopeMismatch")
        self.assert_received_decrypted(files, study, {study.ordered[1]})
        self.assertEqual(self.key_denied_since(audit_before), [(key_id, "4", f"scope {study.uid}")])

    def test_stripped_key_reference_is_refused_even_with_passthrough(self):
        study = self.make_study("STRIPPED", [("ct_le.dcm", "s1")] * 2)
        victim = study.ordered[0]
        ds = self.modify_in_pacs(victim, {"RemovePrivateTags": True})
        self.assertFalse(h.key_reference(ds), "Orthanc did not remove the key-reference block")
        files, result = self.move_and_expect_refusal(study, victim, "KeyReferenceRemoved")
        self.assert_received_decrypted(files, study, {study.ordered[1]})

    def test_legacy_study_passes_and_is_audited(self):
        study = self.make_study("LEGACY", [("ct_le.dcm", "s1")] * 2, send=False)
        for sop, path in study.originals.items():
            self.orthanc.upload(path)  # straight into the PACS: the gateway never saw this study
            study.ordered.append(sop)
        before = self.gateway.log_size()
        audit_before = (self.gateway.data_dir / "audit.log").stat().st_size
        with self.destination("WS1") as scp:
            result = self.move("WS1", self.study_keys(study))
            files = scp.files()
        log = self.gateway.log_since(before)
        self.assert_final(result, rh.STATUS_SUCCESS, completed=2, failed=0)
        self.assert_received_decrypted(files, study, set(study.ordered))
        for sop in study.ordered:
            self.assertTrue(any("audit: passthrough" in line and sop in line for line in log.splitlines()),
                            f"passthrough of {sop} not audited\n{log}")
        # ... and in the audit trail: one PASSTHROUGH record for the retrieve, besides the transfer.
        with open(self.gateway.data_dir / "audit.log", "rb") as f:
            f.seek(audit_before)
            records = [ET.fromstring(line) for line in f.read().decode().splitlines()]
        passthrough = [m for m in records
                       if [t.get("csd-code") for t in m.findall("EventIdentification/EventTypeCode")] == ["PASSTHROUGH"]]
        self.assertEqual(len(passthrough), 1, [ET.tostring(m) for m in records])
        self.assertEqual(passthrough[0].find("EventIdentification/EventID").get("csd-code"), "110104")
        self.assertEqual([p.get("UserID") for p in passthrough[0].findall("ActiveParticipant")], ["WS1", "GATEWAY", "WS1"])
        self.assertEqual(passthrough[0].find("ParticipantObjectIdentification").get("ParticipantObjectID"), study.uid)
        self.assertEqual(passthrough[0].find("ParticipantObjectIdentification/ParticipantObjectDescription").text,
                         "2 instances delivered unencrypted (cipher.passthrough_unencrypted)")


if __name__ == "__main__":
    unittest.main()
