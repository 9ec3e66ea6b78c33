"""Access that cannot be borrowed: a ciphertext workstation limited by move_destinations cannot have
plaintext sent to a decrypt workstation; it may still move to itself. The refusal is a C-MOVE status
A801, an audit line and a Security Alert audit message."""

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pacsgw_harness as h  # noqa: E402
import retrieve_helpers as rh  # noqa: E402
import test_retrieve_path as trp  # noqa: E402  (module only: its test classes are not collected here)


class MoveDestinationsTest(trp.RetrieveTestBase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Restart the gateway with WS2 (ciphertext) allowed to move only to itself.
        cls.gateway.stop()
        plain = cls.gateway.config_yaml
        cls.gateway.config_yaml = lambda: plain().replace('access: "ciphertext" }',
                                                          'access: "ciphertext", move_destinations: [] }')
        try:
            cls.gateway.start()
        except Exception:
            cls.orthanc.stop()
            raise

    def test_ciphertext_caller_cannot_send_plaintext_elsewhere(self):
        self.assertIn("move_destinations: []", self.gateway.config_path.read_text())
        study = self.make_study("MOVEDEST", [("ct_le.dcm", "s1")] * 2)
        before, audit_before = self.gateway.log_size(), (self.gateway.data_dir / "audit.log").stat().st_size
        with self.destination("WS1") as scp:
            result = self.move("WS1", self.study_keys(study), calling="WS2")
            files = scp.files()
        self.assertEqual(files, [], f"plaintext reached WS1 on WS2's request\n{result.describe()}")
        self.assert_final(result, rh.STATUS_MOVE_DESTINATION_UNKNOWN)
        log = self.gateway.log_since(before)
        self.assertIn("audit: C-MOVE from WS2", log)
        self.assertIn("not among its move_destinations", log)
        with open(self.gateway.data_dir / "audit.log", "rb") as f:
            f.seek(audit_before)
            records = f.read().decode()
        self.assertIn('csd-code="MoveDestinationRefused"', records)

        # To itself it may: it gets the ciphertext as the PACS holds it.
        with self.destination("WS2") as scp:
            result = self.move("WS2", self.study_keys(study), calling="WS2")
            files = scp.files()
        self.assert_final(result, rh.STATUS_SUCCESS, completed=2, failed=0)
        for path in files:
            self.assert_ciphertext(path, study.originals[h.sop_instance_uid(path)])

        # A decrypt workstation without a list still moves wherever it is configured to.
        with self.destination("WS3") as scp:
            result = self.move("WS3", self.study_keys(study), calling="WS1")
            self.assert_received_decrypted(scp.files(), study, set(study.ordered))


if __name__ == "__main__":
    unittest.main()
