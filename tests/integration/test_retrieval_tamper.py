"""Retrieval that whoever controls the PACS cannot fool: objects relabelled or stripped inside the
PACS (through Orthanc's own REST API, as an attacker with PACS access would) are refused by the
gateway with a specific reason and an audit line, while the untouched instances of the same move
are delivered decrypted and legacy studies the gateway never saw still pass through (audited).
"""

import json
import re
import sys
import unittest
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pacsgw_harness as h  # noqa: E402
import retrieve_helpers as rh  # noqa: E402
import test_retrieve_path as trp  # noqa: E402  (module only: its test classes are not collected here)


# The DIMSE status the gateway answers the PACS's sub-operation with, per refusal reason
# (gateway/dimse_status.h, docs/conformance.md section 11).
REFUSAL_STATUS = {"BoundAttributesChanged": "0xC211", "KeyScopeMismatch": "0xC212", "KeyReferenceRemoved": "0xC213"}


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
        with self.destination("WS1") as scp:
            result = self.move("WS1", self.study_keys(study))
            files = scp.files()
        log = self.gateway.log_since(before)
        self.assert_final(result, rh.STATUS_SUCCESS, completed=2, failed=0)
        self.assert_received_decrypted(files, study, set(study.ordered))
        for sop in study.ordered:
            self.assertTrue(any("audit: passthrough" in line and sop in line for line in log.splitlines()),
                            f"passthrough of {sop} not audited\n{log}")


if __name__ == "__main__":
    unittest.main()
