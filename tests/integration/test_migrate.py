#!/usr/bin/env python3
"""`pacsgw migrate` against a real Orthanc holding a mixed archive: studies stored in clear before the
gateway existed (uncompressed CT, JPEG-LS CT, multi-frame MR), and a study that already went through
the gateway. Every assertion is on what Orthanc serves afterwards, on `pacsgw decrypt` of those
copies, or on the migration report.

Run alone:  PACSGW_BIN=build/pacsgw python3 tests/integration/test_migrate.py -v
"""

import re
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pacsgw_harness as h  # noqa: E402
import retrieve_helpers as rh  # noqa: E402


def report_value(output: str, label: str) -> int:
    m = re.search(rf"^  {re.escape(label)}\s+(\d+)$", output, re.M)
    if not m:
        raise AssertionError(f"no '{label}' line in the report:\n{output}")
    return int(m.group(1))


class MigrateTest(h.PacsAndGatewayTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        files = cls.workdir / "archive"
        cls.old_study, cls.new_study, cls.gateway_study = rh.new_uid(), rh.new_uid(), rh.new_uid()

        def make(source, name, study, date, number):
            path = rh.derive(h.test_file(source), files / name, study, rh.new_uid(), number, "MIG-1", "Migrate^Test")
            h.run_tool(["dcmodify", "-nb", "-i", f"(0008,0020)={date}", path], timeout=60)
            return path

        # In the PACS in clear, from before the gateway: one old study, one recent with two kinds of object.
        cls.clear = {
            "old-1": make("ct_le.dcm", "old-1.dcm", cls.old_study, "20190315", 1),
            "old-2": make("ct_le.dcm", "old-2.dcm", cls.old_study, "20190315", 2),
            "new-jpls": make("ct_jpls.dcm", "new-jpls.dcm", cls.new_study, "20240610", 1),
            "new-mr": make("mf_mr.dcm", "new-mr.dcm", cls.new_study, "20240610", 2),
        }
        for path in cls.clear.values():
            cls.pacs.upload(path)
        # Stored through the gateway: already ciphertext in the PACS.
        cls.through_gateway = [make("ct_le.dcm", f"gw-{i}.dcm", cls.gateway_study, "20240105", i) for i in (1, 2)]
        sent = h.storescu(cls.gateway.port, cls.through_gateway)
        assert sent.all_succeeded(2), sent.describe()
        cls.journal = cls.workdir / "journal.tsv"

    def migrate(self, *args, journal=True):
        extra = ["--journal", self.journal] if journal else []
        return h.run_tool([h.pacsgw_bin(), "migrate", "--config", self.gateway.config_path, *extra, *args], timeout=300)

    def pacs_copy(self, original: Path, name: str) -> Path:
        return self.pacs.download_by_uid(h.sop_instance_uid(original), self.workdir / f"pacs-{name}.dcm")

    def assert_migrated(self, name: str):
        """The PACS copy is ciphertext under the same UIDs, and decrypts bit-exactly to the original."""
        original = self.clear[name]
        copy = self.pacs_copy(original, name)
        stored = h.read(copy)
        self.assertTrue(h.key_reference(stored), f"{name}: the PACS copy carries no key reference")
        self.assertEqual(h.transfer_syntax(stored), h.transfer_syntax(h.read(original)), name)
        self.assertNotEqual(h.pixel_element_bytes(stored), h.pixel_element_bytes(h.read(original)), name)
        restored = self.workdir / f"restored-{name}.dcm"
        result = self.gateway.decrypt(copy, restored)
        self.assertTrue(restored.is_file(), result.describe())
        self.assertEqual(h.pixel_element_bytes(h.read(restored)), h.pixel_element_bytes(h.read(original)), name)

    def assert_still_clear(self, name: str):
        copy = self.pacs_copy(self.clear[name], name + "-clear")
        self.assertEqual(h.key_reference(h.read(copy)), {}, name)
        self.assertEqual(h.pixel_element_bytes(h.read(copy)), h.pixel_element_bytes(h.read(self.clear[name])))

    def test_1_dry_run_reads_and_changes_nothing(self):
        count_before = self.pacs.instance_count()
        result = self.migrate("--all", "--dry-run")
        self.assertEqual(result.returncode, 0, result.describe())
        self.assertIn("dry run", result.output)
        self.assertEqual(report_value(result.output, "studies"), 3)
        self.assertEqual(report_value(result.output, "instances"), 6)
        self.assertEqual(report_value(result.output, "to migrate"), 4)
        self.assertEqual(report_value(result.output, "already encrypted"), 2)
        self.assertEqual(self.pacs.instance_count(), count_before)
        for name in self.clear:
            self.assert_still_clear(name)
        self.assertFalse(self.journal.exists())
        self.assertNotIn("migrate: study", result.output)  # no progress line when not on a terminal

    def test_1b_progress_is_shown_on_a_terminal(self):
        # script(1) gives the command a pseudo-terminal, as an operator's shell would.
        command = " ".join(f"'{a}'" for a in [h.pacsgw_bin(), "migrate", "--config", self.gateway.config_path,
                                              "--journal", self.journal, "--all", "--dry-run"])
        result = h.run_tool(["script", "-q", "-e", "-c", command, "/dev/null"], timeout=300)
        self.assertEqual(result.returncode, 0, result.describe())
        # (the tool's carriage returns arrive here as line breaks)
        self.assertRegex(result.output, r"migrate: study 1/3, 1/6 instances, [\d.]+ MB/s, ETA \d+:\d\d")
        self.assertRegex(result.output, r"migrate: study 3/3, 6/6 instances, [\d.]+ MB/s, ETA 0:00")

    def test_2_one_study(self):
        result = self.migrate("--study", self.old_study)
        self.assertEqual(result.returncode, 0, result.describe())
        self.assertEqual(report_value(result.output, "migrated and verified"), 2)
        self.assertEqual(report_value(result.output, "failed"), 0)
        self.assert_migrated("old-1")
        self.assert_migrated("old-2")
        self.assert_still_clear("new-jpls")
        self.assertEqual(self.pacs.instance_count(), 6)  # replaced, not added
        self.assertEqual(len(self.journal.read_text().splitlines()), 2)

    def test_3_since_a_date_takes_compressed_and_multiframe_and_skips_encrypted(self):
        result = self.migrate("--since", "2024-01-01")
        self.assertEqual(result.returncode, 0, result.describe())
        self.assertEqual(report_value(result.output, "studies"), 2)
        self.assertEqual(report_value(result.output, "migrated and verified"), 2)
        self.assertEqual(report_value(result.output, "already encrypted"), 2)
        self.assert_migrated("new-jpls")
        self.assert_migrated("new-mr")
        # The gateway's own copies were left alone: still exactly one key-reference block each.
        for original in self.through_gateway:
            stored = h.read(self.pacs.download_by_uid(h.sop_instance_uid(original), self.workdir / "gw.dcm"))
            creators = [e for e in stored if e.tag.group == h.KEYREF_GROUP and e.tag.element <= 0xFF
                        and h.element_text(e) == h.KEYREF_CREATOR]
            self.assertEqual(len(creators), 1)

    def test_4_rerun_resumes_from_the_journal_and_without_it_encrypts_nothing_twice(self):
        result = self.migrate("--all")
        self.assertEqual(result.returncode, 0, result.describe())
        self.assertEqual(report_value(result.output, "migrated and verified"), 0)
        self.assertEqual(report_value(result.output, "done in an earlier run"), 6)
        # Journal lost (or the run was interrupted between replace and journal): everything is found
        # encrypted in the PACS and counted, nothing is encrypted a second time.
        self.journal.unlink()
        result = self.migrate("--all")
        self.assertEqual(result.returncode, 0, result.describe())
        self.assertEqual(report_value(result.output, "migrated and verified"), 0)
        self.assertEqual(report_value(result.output, "already encrypted"), 6)
        for name in self.clear:
            self.assert_migrated(name)

    def test_5_bad_arguments_are_refused_with_usage(self):
        for args in ([], ["--all", "--study", "1.2.3"], ["--since", "last week"], ["--study", "not-a-uid"]):
            result = self.migrate(*args)
            self.assertEqual(result.returncode, 2, result.describe())
            self.assertIn("usage: pacsgw migrate", result.output)


if __name__ == "__main__":
    h.main()
