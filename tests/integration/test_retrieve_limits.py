"""Limits on the retrieval path, against the real Orthanc with DCMTK's tools:

* C-FIND / C-MOVE identifiers are bounded: a multi-megabyte identifier is refused with A700 (C-FIND) or
  A701 (C-MOVE) while it is read, the association and the gateway go on serving.
* The decoded-size cap (codecs/decoded_size.h) on the delivery converter: a small RLE object whose
  attributes claim 2.6 GB of pixels, retrieved by a requester that takes only uncompressed syntaxes, fails
  alone with C002 and a log line saying why; the gateway's resident memory stays bounded.
* Instances the PACS delivered for a retrieve and that wait for a slow destination count in the
  gateway's memory budget (limits.max_in_flight_mb, unit-tested in gateway_retrieve_job_test): with a
  budget smaller than the study, the PACS's next sub-operation waits for room (throttled) instead of
  failing, the whole study arrives bit-exact and the gateway's resident memory stays bounded.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pacsgw_harness as h  # noqa: E402
import retrieve_helpers as rh  # noqa: E402
import test_retrieve_path as rp  # noqa: E402  (the shared fixture; its test classes are not re-run here)

pydicom = h.pydicom
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_UNABLE_TO_CALCULATE_MATCHES = 0xA701


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


class RetrieveLimitsTest(rp.RetrieveTestBase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.make_study("SMALL", [("ct_le.dcm", "s1")])
            # 512 x 512 x 16 bit x 5000 frames = 2.6 GB once decoded, from one 0.3 MB RLE frame.
            bomb = cls.make_study("DECODEBOMB", [("ct_le.dcm", "plain"), ("ct_rle.dcm", "claims")], send=False)
            files = list(bomb.originals.values())
            result = h.run_tool(["dcmodify", "-nb", "-i", "(0028,0008)=5000", files[1]], timeout=60)
            if str(h.read(files[1]).NumberOfFrames) != "5000":
                raise AssertionError(f"dcmodify failed\n{result.describe()}")
            cls.send(bomb, files)
        except Exception:
            cls.failed = True
            cls.tearDownClass()
            raise

    def huge_identifier(self, name: str, level: str) -> Path:
        """An identifier of about 2.5 MiB: 48000 Study Instance UIDs (the gateway's bound is 1 MiB)."""
        ds = pydicom.Dataset()
        ds.QueryRetrieveLevel = level
        ds.PatientID = ""
        ds.StudyInstanceUID = [f"1.2.826.0.1.3680043.8.498.{10**20 + n}.{n + 1}" for n in range(48000)]
        path = self.workdir / f"{name}.dcm"
        ds.is_little_endian, ds.is_implicit_VR = True, True  # a UI value over 64 KiB needs implicit VR
        ds.save_as(path, write_like_original=True)
        self.assertGreater(path.stat().st_size, 2 * 2**20)
        return path

    def test_huge_find_identifier_is_refused_with_a700(self):
        query = self.huge_identifier("find", "STUDY")
        offset = self.gateway.log_size()
        result = rh._qr(["findscu", "-d", "-S", "-ta", "30", "-td", "120", "-aet", "WS1", "-aec", "GATEWAY",
                         h.LOOPBACK, self.gateway.port, query], timeout=180)
        self.assertTrue(result.responses, result.describe())
        self.assertEqual(result.final.status, STATUS_OUT_OF_RESOURCES, result.describe())
        self.assertEqual(result.pending, [], "matches relayed for a refused identifier")
        self.assertIn("identifier refused: data set larger than the limit of 1 MiB", self.gateway.log_since(offset))
        self.assert_gateway_serving()
        # An ordinary query right after still works.
        study = self.studies["SMALL"]
        find, matches = rh.findscu(self.gateway.port, self.workdir / "find" / "after",
                                   {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": study.uid})
        self.assertEqual(find.final.status, rh.STATUS_SUCCESS, find.describe())
        self.assertEqual(len(matches), 1, find.describe())

    def test_huge_move_identifier_is_refused_with_a701(self):
        query = self.huge_identifier("move", "STUDY")
        offset = self.gateway.log_size()
        with self.destination("WS1") as scp:
            result = rh._qr(["movescu", "-d", "-S", "-ta", "30", "-td", "120", "-aet", "WS1", "-aec", "GATEWAY",
                             "-aem", "WS1", h.LOOPBACK, self.gateway.port, query], timeout=180)
            files = scp.files()
        self.assertTrue(result.responses, result.describe())
        self.assertEqual(result.final.status, STATUS_UNABLE_TO_CALCULATE_MATCHES, result.describe())
        self.assertEqual(files, [])
        self.assertIn("identifier refused: data set larger than the limit of 1 MiB", self.gateway.log_since(offset))
        self.assert_gateway_serving()


    def test_object_claiming_gigabytes_once_decoded_fails_alone(self):
        study = self.studies["DECODEBOMB"]
        (bomb,) = [sop for sop, path in study.originals.items() if path.stem.endswith("ct_rle")]
        offset = self.gateway.log_size()
        directory = self.workdir / "received" / "decode-bomb"
        result = rh.getscu(self.gateway.port, directory, self.study_keys(study))  # uncompressed syntaxes only
        rss = peak_rss_mb(self.gateway.proc.pid)
        print(f"\n  object claiming 2.6 GB decoded: gateway peak RSS {rss:.0f} MiB")
        self.assert_final(result, rh.STATUS_SUBOPS_WITH_FAILURES, completed=1, failed=1)
        received = {h.sop_instance_uid(p) for p in directory.iterdir() if p.is_file()}
        self.assertEqual(received, set(study.originals) - {bomb})
        log = self.gateway.log_since(offset)
        self.assertTrue(any(bomb in line and "would decode to 2621440000 bytes (limit 1073741824)" in line
                            for line in log.splitlines()), log)
        self.assertLess(rss, 400, "the gateway decoded what the object claimed")
        self.assert_gateway_serving()


class RetrieveMemoryBudgetTest(rp.RetrieveTestBase):
    """limits.max_in_flight_mb: 2 with 0.5 MiB CT slices and a destination that takes a second for each."""

    SLICES = 10

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            # Restart the gateway with small limits (the shared fixture starts it with the defaults).
            cls.gateway.stop()
            plain = cls.gateway.config_yaml
            cls.gateway.config_yaml = lambda: plain() + (
                "limits:\n  max_object_mb: 1\n  max_association_mb: 1\n  max_in_flight_mb: 2\n")
            cls.gateway.start()
            cls.make_study("BUDGET", [("ct_le.dcm", "s1")] * cls.SLICES)
        except Exception:
            cls.failed = True
            cls.tearDownClass()
            raise

    def test_retrieve_beyond_the_budget_is_throttled_not_refused(self):
        study = self.studies["BUDGET"]
        offset = self.gateway.log_size()
        with self.destination("WS1", extra=["--sleep-after", "1"]) as scp:
            result = self.move("WS1", self.study_keys(study))
            files = scp.files()
        log = self.gateway.log_since(offset)
        rss = peak_rss_mb(self.gateway.proc.pid)
        final = result.final
        print(f"\n  budget 2 MiB, {self.SLICES} slices of 0.5 MiB, destination 1 s per slice: completed "
              f"{final.completed}, failed {final.failed}, gateway peak RSS {rss:.0f} MiB")
        # The instances waiting for the slow destination fill the budget; the PACS's next sub-operation
        # waits for room instead of failing, so the whole study arrives.
        self.assert_final(result, rh.STATUS_SUCCESS, completed=self.SLICES, failed=0)
        self.assertNotIn("memory limit", log)
        self.assert_received_decrypted(files, study, set(study.originals))
        self.assertLess(rss, 400)
        self.assert_gateway_serving()

if __name__ == "__main__":
    h.main()
