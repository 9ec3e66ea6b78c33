"""The audit trail records exactly the security-relevant events: a store, a C-MOVE with decryption, a
refused association and a tampered object, each as DICOM audit messages (PS3.15 A.5 / RFC 3881) in
the gateway's local audit log (one XML <AuditMessage> per line); a forged AE title cannot break it.
"""

import sys
import time
import unittest
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pacsgw_harness as h  # noqa: E402
import retrieve_helpers as rh  # noqa: E402
import test_retrieve_path as trp  # noqa: E402  (module only: its test classes are not collected here)


def summary(message: ET.Element) -> tuple:
    """(EventID code, action, outcome, event type codes, participant UserIDs, object IDs)."""
    ident = message.find("EventIdentification")
    return (ident.find("EventID").get("csd-code"), ident.get("EventActionCode"),
            int(ident.get("EventOutcomeIndicator")),
            tuple(t.get("csd-code") for t in ident.findall("EventTypeCode")),
            tuple(p.get("UserID") for p in message.findall("ActiveParticipant")),
            tuple(o.get("ParticipantObjectID") for o in message.findall("ParticipantObjectIdentification")))


def description(message: ET.Element) -> str:
    return message.find("ParticipantObjectIdentification/ParticipantObjectDescription").text


class AuditTrailTest(trp.RetrieveTestBase):

    @property
    def audit_path(self) -> Path:
        return self.gateway.data_dir / "audit.log"

    def audit_size(self) -> int:
        return self.audit_path.stat().st_size

    def events_since(self, offset: int, expected: int, timeout: float = 15, until: str = None) -> list:
        """Parsed messages appended after `offset`, waiting (bounded) until `expected` are there (and,
        with `until`, a line containing that text)."""
        deadline = time.monotonic() + timeout
        while True:
            with open(self.audit_path, "rb") as f:
                f.seek(offset)
                lines = f.read().decode().splitlines()
            done = len(lines) >= expected and (until is None or any(until in line for line in lines))
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        messages = []
        for line in lines:
            self.assertTrue(line.startswith("<AuditMessage>") and line.endswith("</AuditMessage>"), line)
            messages.append(ET.fromstring(line))  # every line is well-formed XML on its own
        return messages

    def key_created_for(self, study_uid: str) -> str:
        """The data key id of a study, from its KEY-created record."""
        for line in self.audit_path.read_text().splitlines():
            m = ET.fromstring(line)
            if summary(m)[3] == ("110129", "KEY-created") and description(m) == f"scope {study_uid}":
                return summary(m)[5][0]
        self.fail(f"no KEY-created record for {study_uid}")

    def test_application_start_recorded(self):
        first = ET.fromstring(self.audit_path.read_text().splitlines()[0])
        self.assertEqual(summary(first)[:4], ("110100", "E", 0, ("110120",)))

    def test_store(self):
        study = self.make_study("AUDSTORE", [("ct_le.dcm", "s1")] * 2, send=False)
        before = self.audit_size()
        self.send(study, list(study.originals.values()))
        messages = self.events_since(before, 3)
        got = [summary(m) for m in messages]
        key_id = got[1][5][0] if len(got) == 3 and got[1][5] else ""
        self.assertRegex(key_id, r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", got)
        self.assertEqual(got, [("110114", "E", 0, ("110122",), ("CT1", "GATEWAY"), ()),
                               ("110113", "E", 0, ("110129", "KEY-created"), ("GATEWAY",), (key_id,)),
                               ("110104", "C", 0, (), ("CT1", "GATEWAY"), (study.uid, study.patient_id))])
        self.assertEqual(description(messages[1]), f"scope {study.uid}")  # the key's scope, no key material
        self.assertEqual(messages[1].find("ParticipantObjectIdentification").get("ParticipantObjectTypeCodeRole"),
                         "13")  # security resource
        self.assertEqual(description(messages[2]), "2 instances encrypted and stored, 0 refused")

    def test_move_with_decryption(self):
        study = self.make_study("AUDMOVE", [("ct_le.dcm", "s1")] * 2)
        before = self.audit_size()
        with self.destination("WS1") as scp:
            result = self.move("WS1", self.study_keys(study))
            self.assertEqual(len(scp.files()), 2, result.describe())
        messages = self.events_since(before, 4, until='csd-code="KEY-released"')
        got = sorted(summary(m) for m in messages)
        key_id = self.key_created_for(study.uid)
        self.assertEqual(got, sorted([
            ("110114", "E", 0, ("110122",), ("WS1", "GATEWAY"), ()),                   # the workstation
            ("110114", "E", 0, ("110122",), (self.orthanc.aet, "GATEWAY"), ()),       # the PACS's sub-operations
            ("110104", "R", 0, ("DECRYPTED",), ("WS1", "GATEWAY", "WS1"), (study.uid,)),
            ("110113", "E", 0, ("110129", "KEY-released"), ("WS1", "GATEWAY", "WS1"), (key_id,)),
        ]))
        released = [m for m in messages if summary(m)[3] == ("110129", "KEY-released")][0]
        self.assertEqual(description(released), f"scope {study.uid}, 2 instances decrypted")
        roles = [p.find("RoleIDCode").get("csd-code") for p in released.findall("ActiveParticipant")]
        self.assertEqual(roles, ["110154", "110153", "110152"])  # requester, source (gateway), destination

    def test_refused_association_with_a_forged_ae_title(self):
        forged = 'EV"/><X>'
        before = self.audit_size()
        result = rh.echoscu(self.gateway.port, calling=forged)
        self.assertNotIn("Received Echo Response (Success)", result.output)
        got = self.events_since(before, 1)
        self.assertEqual([summary(m) for m in got], [("110114", "E", 4, ("110122",), (forged, "GATEWAY"), ())])
        reason = got[0].find("EventIdentification").get("EventOutcomeDescription")
        self.assertIn("not configured", reason)

    def test_tampered_object(self):
        study = self.make_study("AUDTAMPER", [("ct_le.dcm", "s1")] * 2)
        victim = study.ordered[0]
        instance = self.orthanc.find_instance(victim)
        data = self.orthanc._request(f"/instances/{instance}/modify", method="POST",
                                     data=b'{"Replace": {"RescaleSlope": "3"}, "Keep": ["SOPInstanceUID"], "Force": true}')
        edited = self.workdir / "audit-tampered.dcm"
        edited.write_bytes(data)
        self.orthanc.upload(edited)
        before = self.audit_size()
        with self.destination("WS1") as scp:
            result = self.move("WS1", self.study_keys(study))
            self.assertEqual(len(scp.files()), 1, result.describe())
        got = sorted(summary(m) for m in self.events_since(before, 5, until='csd-code="KEY-released"'))
        # After refusing an instance the gateway re-issues the rest of the retrieve, so the PACS may
        # open more than one sub-operation association: each is recorded, all accepted.
        pacs_logins = [e for e in got if e[4] == (self.orthanc.aet, "GATEWAY")]
        self.assertGreaterEqual(len(pacs_logins), 1, got)
        self.assertTrue(all(e == ("110114", "E", 0, ("110122",), (self.orthanc.aet, "GATEWAY"), ()) for e in pacs_logins))
        self.assertEqual([e for e in got if e not in pacs_logins], sorted([
            ("110114", "E", 0, ("110122",), ("WS1", "GATEWAY"), ()),
            ("110113", "E", 8, ("BoundAttributesChanged",), ("GATEWAY", self.orthanc.aet), (victim,)),
            ("110104", "R", 4, ("DECRYPTED",), ("WS1", "GATEWAY", "WS1"), (study.uid,)),
            ("110113", "E", 0, ("110129", "KEY-released"), ("WS1", "GATEWAY", "WS1"),
             (self.key_created_for(study.uid),)),
        ]))

if __name__ == "__main__":
    unittest.main()
