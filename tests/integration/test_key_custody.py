#!/usr/bin/env python3
"""Key custody end to end with the real gateway binary and a real Orthanc: a keystore that vanished or
emptied after use is refused at start, damaged keys are named, backups restore into a fresh gateway,
the master key rotates without touching the PACS, and a shredded study never decrypts again.

Run alone:  PACSGW_BIN=build/pacsgw python3 tests/integration/test_key_custody.py -v
"""

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pacsgw_harness as h  # noqa: E402
import custody_helpers as ch  # noqa: E402
import retrieve_helpers as rh  # noqa: E402


class KeyCustody(ch.CustodyTestCase):
    """One Orthanc for the class; every test runs its own gateway(s) in front of it."""

    # helpers ------------------------------------------------------------------------------------
    def new_gateway(self, name: str, escrow_dir: Path = None) -> h.Gateway:
        workdir = self.work_dir() / name
        if escrow_dir:
            gateway = ch.EscrowGateway(workdir, escrow_dir=escrow_dir, upstream_port=self.pacs.dicom_port)
        else:
            gateway = h.Gateway(workdir, upstream_port=self.pacs.dicom_port)
        return self.adopt(gateway, name)

    def assert_start_refused(self, gateway: h.Gateway, *expected: str, extra_args=()):
        """`pacsgw serve` must exit non-zero before listening, naming the problem."""
        gateway.write_config()
        proc = subprocess.run([str(h.pacsgw_bin()), "serve", "--config", str(gateway.config_path), *extra_args],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60,
                              env=h.tool_env())
        self.assertNotEqual(proc.returncode, 0, f"serve started although it should refuse:\n{proc.stdout}")
        self.assertNotIn("listening on", proc.stdout)
        for text in expected:
            self.assertIn(text, proc.stdout)
        return proc.stdout

    def remove_keystore(self, gateway: h.Gateway):
        for suffix in ("", "-wal", "-shm"):
            Path(str(gateway.keystore_path) + suffix).unlink(missing_ok=True)

    # tests --------------------------------------------------------------------------------------
    def test_vanished_or_emptied_keystore_is_refused_at_start(self):
        gateway = self.new_gateway("gw")
        gateway.start()
        self.assertIn("created a new keystore", gateway.log(), "first start must log the new keystore")
        original, stored = self.store_study(gateway)
        self.assertEqual(gateway.stop(), 0)
        anchor = Path(str(gateway.master_key_path) + ".anchor")
        self.assertTrue(anchor.is_file(), "no anchor beside the master key")

        backup = gateway.workdir / "keystore-copy.db"
        shutil.copyfile(gateway.keystore_path, backup)

        # Missing file.
        self.remove_keystore(gateway)
        self.assert_start_refused(gateway, "does not exist", str(anchor), "--accept-new-keystore")
        self.assertFalse(gateway.keystore_path.exists(), "the refused keystore was re-created")
        # Zero-byte file.
        gateway.keystore_path.write_bytes(b"")
        self.assert_start_refused(gateway, "empty (0-byte)")
        # An SQLite file without tables (what is left of a keystore copied without its -wal).
        gateway.keystore_path.unlink()
        sqlite3.connect(gateway.keystore_path).execute("PRAGMA journal_mode=WAL").fetchall()
        self.assert_start_refused(gateway, "has no tables")

        # Putting the real keystore back works and the old study still decrypts.
        self.remove_keystore(gateway)
        shutil.copyfile(backup, gateway.keystore_path)
        gateway.start()
        self.assert_decrypts(gateway, original, stored)
        self.assertEqual(gateway.stop(), 0)

        # The operator may explicitly start over; the old objects then stay unreadable (UnknownKey).
        self.remove_keystore(gateway)
        gateway.start(extra_args=["--accept-new-keystore"])
        self.assertIn("NEW, empty keystore", gateway.log())
        result = gateway.decrypt(stored, gateway.workdir / "never.dcm")
        self.assertNotEqual(result.returncode, 0, result.describe())
        self.assertIn("UnknownKey", result.output)
        self.assertFalse((gateway.workdir / "never.dcm").exists())

    def test_damaged_keys_are_named_at_start_and_by_verify(self):
        gateway = self.new_gateway("gw")
        gateway.start()
        good_original, good_stored = self.store_study(gateway)
        _, bad_stored = self.store_study(gateway)
        self.assertEqual(gateway.stop(), 0)
        bad_key = h.element_text(h.key_reference(h.read(bad_stored))[0x03])
        with sqlite3.connect(gateway.keystore_path) as db:
            db.execute("UPDATE data_keys SET wrapped = zeroblob(40) WHERE id = ?", (bad_key,))

        verify = gateway.cli("keys", "verify", "--config", gateway.config_path)
        self.assertEqual(verify.returncode, 1, verify.describe())
        self.assertIn(f"DAMAGED data key {bad_key}", verify.output)
        self.assertIn("1 of 2 data keys unwrap", verify.output)

        gateway.start()
        self.assertIn(f"DAMAGED data key {bad_key}", gateway.log())
        self.assert_decrypts(gateway, good_original, good_stored)  # the other study is unaffected
        self.assertEqual(gateway.stop(), 0)

        # A damaged key-check value is not reported as a wrong master key, and can be repaired.
        with sqlite3.connect(gateway.keystore_path) as db:
            db.execute("UPDATE data_keys SET wrapped = (SELECT wrapped FROM data_keys WHERE id != ?) "
                       "WHERE id = ?", (bad_key, bad_key))  # still damaged: bound to the other row
            db.execute("UPDATE meta SET value = zeroblob(32) WHERE name = 'kek_check'")
        out = self.assert_start_refused(gateway, "check value stored in keystore", "master key is correct")
        self.assertNotIn("does not match", out)
        repaired = gateway.cli("keys", "verify", "--config", gateway.config_path, "--repair-check-value")
        self.assertIn("repaired the master key check value", repaired.output, repaired.describe())
        gateway.start()
        self.assert_decrypts(gateway, good_original, good_stored)

    def test_backup_restores_into_a_fresh_gateway(self):
        gateway = self.new_gateway("site")
        gateway.start()
        studies = [self.store_study(gateway, name) for name in ("ct_le.dcm", "mf_mr.dcm")]
        backup = gateway.workdir / "keystore-backup.db"
        result = gateway.cli("keys", "backup", "--config", gateway.config_path, "--to", backup)  # online
        self.assertEqual(result.returncode, 0, result.describe())
        self.assertTrue(backup.is_file())
        again = gateway.cli("keys", "backup", "--config", gateway.config_path, "--to", backup)
        self.assertNotEqual(again.returncode, 0, "an existing backup file was overwritten")

        # A new host: fresh data directory, the same master key (kept elsewhere), the backup.
        fresh = self.new_gateway("replacement")
        fresh.write_config()
        fresh.master_key_path.unlink()
        shutil.copyfile(gateway.master_key_path, fresh.master_key_path)
        fresh.master_key_path.chmod(0o600)
        shutil.copyfile(backup, fresh.keystore_path)
        fresh.start()
        self.assertNotIn("created a new keystore", fresh.log())
        for original, stored in studies:
            self.assert_decrypts(fresh, original, stored)

    def test_rotate_master_key(self):
        gateway = self.new_gateway("gw")
        gateway.start()
        original, stored = self.store_study(gateway)
        self.assertEqual(gateway.stop(), 0)
        old_key = gateway.master_key_path.read_bytes()
        new_key_path = gateway.workdir / "master-2.key"
        result = gateway.cli("keys", "rotate-kek", "--config", gateway.config_path,
                             "--new-master-key-file", new_key_path)
        self.assertEqual(result.returncode, 0, result.describe())
        self.assertIn("re-wrapped 1 data keys", result.output)
        # Switch the configuration to the new key; destroy the old one.
        gateway.master_key_path.unlink()
        Path(str(gateway.master_key_path) + ".anchor").unlink()
        gateway.master_key_path = new_key_path
        gateway.start()
        self.assert_decrypts(gateway, original, stored)
        original2, stored2 = self.store_study(gateway)
        self.assert_decrypts(gateway, original2, stored2)
        self.assertEqual(gateway.stop(), 0)
        # The old key opens nothing any more.
        old = gateway.workdir / "old.key"
        old.write_bytes(old_key)
        old.chmod(0o600)
        gateway.master_key_path = old
        gateway.write_config()
        refused = gateway.cli("keys", "list", "--config", gateway.config_path)
        self.assertNotEqual(refused.returncode, 0, refused.describe())
        self.assertIn("does not match", refused.output)

    def test_shred_study(self):
        gateway = self.new_gateway("gw")
        gateway.start()
        victim_original, victim = self.store_study(gateway)
        other_original, other = self.store_study(gateway)
        victim_uid = str(h.read(victim_original).StudyInstanceUID)
        victim_key = h.element_text(h.key_reference(h.read(victim))[0x03])
        with sqlite3.connect(gateway.keystore_path) as db:
            wrapped = db.execute("SELECT wrapped FROM data_keys WHERE id = ?", (victim_key,)).fetchone()[0]
        self.assertEqual(len(wrapped), 40)

        result = gateway.cli("keys", "shred", "--config", gateway.config_path, "--study", victim_uid)
        self.assertEqual(result.returncode, 0, result.describe())
        self.assertIn(f"destroyed data key {victim_key}", result.output)
        self.assertIn("audit:", result.output)

        for suffix in ("", "-wal", "-shm"):
            path = Path(str(gateway.keystore_path) + suffix)
            if path.exists():
                self.assertNotIn(bytes(wrapped), path.read_bytes(), f"the wrapped key survived in {path.name}")
        refused = gateway.decrypt(victim, gateway.workdir / "shredded.dcm")
        self.assertNotEqual(refused.returncode, 0, refused.describe())
        self.assertIn("destroyed", refused.output)
        self.assertFalse((gateway.workdir / "shredded.dcm").exists(), "garbage written for a shredded study")
        self.assert_decrypts(gateway, other_original, other)

        # The running gateway refuses new objects of the shredded study instead of minting a new key.
        resend = h.fresh_copy(victim_original, gateway.workdir / "files", new_study=False)
        store = h.storescu(gateway.port, [resend])
        self.assertFalse(store.all_succeeded(1), store.describe())
        self.assertIsNone(self.pacs.find_instance(h.sop_instance_uid(resend)))
        self.assertTrue(gateway.alive())

    def test_recover_after_losing_the_gateway_host(self):
        escrow = self.workdir / "escrow-storage" / self.id().rsplit(".", 1)[-1]
        gateway = self.new_gateway("lost-host", escrow_dir=escrow)
        gateway.start()
        studies = [self.store_study(gateway, name) for name in ("ct_le.dcm", "mf_mr.dcm", "ct_le.dcm")]
        self.assertEqual(len(list(escrow.glob("*.key"))), 3, "every new key must be in the escrow journal")
        self.assertEqual(gateway.stop(), 0)
        master_key = gateway.master_key_path.read_bytes()

        # The host is gone: data directory, keystore, anchor. The master key was kept elsewhere.
        replacement = self.new_gateway("new-host", escrow_dir=escrow)
        replacement.write_config()
        replacement.master_key_path.write_bytes(master_key)
        shutil.rmtree(gateway.data_dir)  # keystore and its WAL
        gateway.master_key_path.unlink()
        Path(str(gateway.master_key_path) + ".anchor").unlink()
        recovered = replacement.cli("keys", "recover", "--config", replacement.config_path, "--from-journal", escrow)
        self.assertEqual(recovered.returncode, 0, recovered.describe())
        self.assertIn("imported 3 data keys", recovered.output)
        replacement.start()
        for original, stored in studies:
            self.assert_decrypts(replacement, original, stored)
        # New objects of a recovered study reuse its key instead of forking it.
        original, stored = studies[0]
        resend = h.fresh_copy(original, replacement.workdir / "files", new_study=False)
        self.assertTrue(h.storescu(replacement.port, [resend]).all_succeeded(1))
        again = self.pacs.download_by_uid(h.sop_instance_uid(resend), replacement.workdir / "again.dcm")
        self.assertEqual(h.element_text(h.key_reference(h.read(again))[0x03]),
                         h.element_text(h.key_reference(h.read(stored))[0x03]))

    def test_older_backup_never_forks_a_study_key(self):
        escrow = self.workdir / "escrow-storage" / self.id().rsplit(".", 1)[-1]
        gateway = self.new_gateway("gw", escrow_dir=escrow)
        gateway.start()
        self.store_study(gateway)
        backup = gateway.workdir / "old-backup.db"
        self.assertEqual(gateway.cli("keys", "backup", "--config", gateway.config_path, "--to", backup).returncode, 0)
        late_original, late_stored = self.store_study(gateway)  # its key is not in the backup
        late_key = h.element_text(h.key_reference(h.read(late_stored))[0x03])
        self.assertEqual(gateway.stop(), 0)

        self.remove_keystore(gateway)
        shutil.copyfile(backup, gateway.keystore_path)
        gateway.start()
        self.assertIn("imported 1 data key(s) from the escrow journal", gateway.log())
        self.assert_decrypts(gateway, late_original, late_stored)
        resend = h.fresh_copy(late_original, gateway.workdir / "files", new_study=False)
        self.assertTrue(h.storescu(gateway.port, [resend]).all_succeeded(1))
        again = self.pacs.download_by_uid(h.sop_instance_uid(resend), gateway.workdir / "again.dcm")
        self.assertEqual(h.element_text(h.key_reference(h.read(again))[0x03]), late_key,
                         "the study got a second key after restoring an older backup")

    def test_shred_removes_the_escrow_copy(self):
        escrow = self.workdir / "escrow-storage" / self.id().rsplit(".", 1)[-1]
        gateway = self.new_gateway("gw", escrow_dir=escrow)
        gateway.start()
        original, stored = self.store_study(gateway)
        self.store_study(gateway)
        self.assertEqual(len(list(escrow.glob("*.key"))), 2)
        uid = str(h.read(original).StudyInstanceUID)
        result = gateway.cli("keys", "shred", "--config", gateway.config_path, "--study", uid)
        self.assertEqual(result.returncode, 0, result.describe())
        self.assertEqual(len(list(escrow.glob("*.key"))), 1, "the escrow copy of a shredded key survived")
        self.assertEqual(gateway.stop(), 0)
        # Recovery from the journal cannot bring it back.
        self.remove_keystore(gateway)
        recovered = gateway.cli("keys", "recover", "--config", gateway.config_path, "--from-journal", escrow)
        self.assertIn("imported 1 data keys", recovered.output, recovered.describe())
        refused = gateway.decrypt(stored, gateway.workdir / "shredded.dcm")
        self.assertNotEqual(refused.returncode, 0, refused.describe())
        self.assertFalse((gateway.workdir / "shredded.dcm").exists())


class ShreddedStudyRetrieval(h.PacsAndGatewayTestCase):
    """After `keys shred`, a decrypting workstation's C-GET through the running gateway gets no pixels
    (the instance is refused with KeyDestroyed and audited), while other studies still decrypt."""

    gateway_options = {"workstations": (("WS1", h.LOOPBACK, h.free_port(), "decrypt"),)}

    def test_retrieve_after_shred(self):
        work = self.workdir / "files"
        studies = []
        for _ in range(2):
            sent = h.fresh_copy(h.test_file("ct_le.dcm"), work)
            self.assertTrue(h.storescu(self.gateway.port, [sent]).all_succeeded(1))
            studies.append((sent, str(h.read(sent).StudyInstanceUID)))
        (victim, victim_uid), (other, other_uid) = studies

        before = rh.getscu(self.gateway.port, work / "get-before", {"QueryRetrieveLevel": "STUDY",
                                                                     "StudyInstanceUID": victim_uid})
        received = list((work / "get-before").iterdir())
        self.assertEqual(len(received), 1, before.describe())
        self.assertEqual(h.pixel_element_bytes(h.read(received[0])), h.pixel_element_bytes(h.read(victim)))

        result = self.gateway.cli("keys", "shred", "--config", self.gateway.config_path, "--study", victim_uid)
        self.assertEqual(result.returncode, 0, result.describe())

        after = rh.getscu(self.gateway.port, work / "get-after", {"QueryRetrieveLevel": "STUDY",
                                                                   "StudyInstanceUID": victim_uid})
        self.assertEqual(list((work / "get-after").iterdir()), [], "pixels handed out for a shredded study")
        self.assertNotEqual(after.final.status, 0x0000, after.describe())
        self.assertEqual(after.final.failed, 1, after.describe())
        log = self.gateway.log()
        self.assertIn("KeyDestroyed", log)
        self.assertIn("audit: decryption under destroyed data key", log)

        other_get = rh.getscu(self.gateway.port, work / "get-other", {"QueryRetrieveLevel": "STUDY",
                                                                      "StudyInstanceUID": other_uid})
        got = list((work / "get-other").iterdir())
        self.assertEqual(len(got), 1, other_get.describe())
        self.assertEqual(h.pixel_element_bytes(h.read(got[0])), h.pixel_element_bytes(h.read(other)))

        # New objects of the shredded study are refused by the running gateway; nothing reaches the PACS.
        resend = h.fresh_copy(victim, work, new_study=False)
        store = h.storescu(self.gateway.port, [resend])
        self.assertFalse(store.all_succeeded(1), store.describe())
        self.assertIn("0x110", store.output)
        self.assertIn("refused (KeyDestroyed)", self.gateway.log())
        self.assertIn("audit: object of shredded study", self.gateway.log())
        self.assertIsNone(self.pacs.find_instance(h.sop_instance_uid(resend)))


if __name__ == "__main__":
    h.main()
