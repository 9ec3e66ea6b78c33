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

    def test_application_start_recorded(self):
        first = ET.fromstring(self.audit_path.read_text().splitlines()[0])
        self.assertEqual(summary(first)[:4], ("110100", "E", 0, ("110120",)))

    def test_store(self):
        study = self.make_study("AUDSTORE", [("ct_le.dcm", "s1")] * 2, send=False)
        before = self.audit_size()
        self.send(study, list(study.originals.values()))
        got = [summary(m) for m in self.events_since(before, 2)]
        self.assertEqual(got, [("110114", "E", 0, ("110122",), ("CT1", "GATEWAY"), ()),
                               ("110104", "C", 0, (), ("CT1", "GATEWAY"), (study.uid, study.patient_id))])

    def test_move_with_decryption(self):
        study = self.make_study("AUDMOVE", [("ct_le.dcm", "s1")] * 2)
        before = self.audit_size()
        with self.destination("WS1") as scp:
            result = self.move("WS1", self.study_keys(study))
            self.assertEqual(len(scp.files()), 2, result.describe())
        got = sorted(summary(m) for m in self.events_since(before, 3, until='csd-code="110104"'))
        self.assertEqual(got, sorted([
            ("110114", "E", 0, ("110122",), ("WS1", "GATEWAY"), ()),                   # the workstation
            ("110114", "E", 0, ("110122",), (self.orthanc.aet, "GATEWAY"), ()),       # the PACS's sub-operations
            ("110104", "R", 0, ("DECRYPTED",), ("WS1", "GATEWAY", "WS1"), (study.uid,)),
        ]))

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
        got = sorted(summary(m) for m in self.events_since(before, 4, until='csd-code="110104"'))
        # After refusing an instance the gateway re-issues the rest of the retrieve, so the PACS may
        # open more than one sub-operation association: each is recorded, all accepted.
        pacs_logins = [e for e in got if e[4] == (self.orthanc.aet, "GATEWAY")]
        self.assertGreaterEqual(len(pacs_logins), 1, got)
        self.assertTrue(all(e == ("110114", "E", 0, ("110122",), (self.orthanc.aet, "GATEWAY"), ()) for e in pacs_logins))
        self.assertEqual([e for e in got if e not in pacs_logins], sorted([
            ("110114", "E", 0, ("110122",), ("WS1", "GATEWAY"), ()),
            ("110113", "E", 8, ("BoundAttributesChanged",), ("GATEWAY", self.orthanc.aet), (victim,)),
            ("110104", "R", 4, ("DECRYPTED",), ("WS1", "GATEWAY", "WS1"), (study.uid,)),
        ]))

if __name__ == "__main__":
    unittest.main()
