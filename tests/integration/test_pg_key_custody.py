#!/usr/bin/env python3
"""Key custody on the shared PostgreSQL keystore (a real server started by the test), as with SQLite: every
replica escrows the keys it creates in its journal; after the database is lost, `keys recover` rebuilds it
(into a fresh PostgreSQL database or an SQLite keystore) and old objects decrypt bit-exact; `keys backup`
takes a consistent online snapshot as an SQLite keystore file that restores into a fresh gateway; a
database restored to an older state never forks a study's key.

Run alone:  PACSGW_BIN=build/pacsgw python3 tests/integration/test_pg_key_custody.py -v
"""

import shutil
import sqlite3
import sys
import threading
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pacsgw_harness as h  # noqa: E402
import custody_helpers as ch  # noqa: E402
import pg_helpers  # noqa: E402


class PgEscrowGateway(ch.EscrowMixin, pg_helpers.PostgresGateway):
    """A replica on the shared PostgreSQL keystore whose escrow journal is `escrow_dir`."""


class PostgresKeyCustody(ch.CustodyTestCase):

    @classmethod
    def start_class_peers(cls):
        cls.postgres = pg_helpers.PostgresServer(cls.workdir / "postgres")
        cls.logs["PostgreSQL"] = cls.postgres.log_path
        cls.postgres.start()

    @classmethod
    def stop_class_peers(cls):
        cls.postgres.stop()

    def setUp(self):
        super().setUp()
        self.master_key = None

    # helpers ------------------------------------------------------------------------------------
    def database(self, name: str) -> str:
        self.postgres.psql("postgres", f"CREATE DATABASE {name}")
        return self.postgres.conninfo.replace(f"dbname={self.postgres.database}", f"dbname={name}")

    def adopt(self, gateway, name: str):
        """Registers the gateway and gives it the test's one master key (each host keeps its own copy)."""
        super().adopt(gateway, name)
        gateway.write_config()
        if self.master_key is None:
            self.master_key = gateway.master_key_path.read_bytes()
        else:
            gateway.master_key_path.write_bytes(self.master_key)
            gateway.master_key_path.chmod(0o600)
        return gateway

    def replica(self, name: str, conninfo: str, escrow_dir: Path):
        return self.adopt(PgEscrowGateway(self.work_dir() / name, conninfo, escrow_dir=escrow_dir,
                                          upstream_port=self.pacs.dicom_port), name)

    def assert_same_key_on_resend(self, gateway, original: Path, stored: Path):
        resend = h.fresh_copy(original, gateway.workdir / "files", new_study=False)
        self.assertTrue(h.storescu(gateway.port, [resend]).all_succeeded(1))
        again = self.pacs.download_by_uid(h.sop_instance_uid(resend), gateway.workdir / f"again-{resend.name}")
        self.assertEqual(self.key_id(again), self.key_id(stored), "the study got a second key")

    # tests --------------------------------------------------------------------------------------
    def test_recover_a_dropped_database_from_the_replicas_journals(self):
        # Per-replica journals (the harder case): each holds only the keys its replica created.
        conninfo = self.database("recover_src")
        journals = [self.work_dir() / f"escrow-{i}" for i in (1, 2)]
        replicas = [self.replica(f"replica-{i}", conninfo, journals[i - 1]) for i in (1, 2)]
        for replica in replicas:
            replica.start()
        studies = [self.store_study(replicas[0], "ct_le.dcm"), self.store_study(replicas[0], "mf_mr.dcm"),
                   self.store_study(replicas[1], "ct_le.dcm")]
        self.assertEqual(len(list(journals[0].glob("*.key"))), 2, "replica 1 must escrow the keys it created")
        self.assertEqual(len(list(journals[1].glob("*.key"))), 1, "replica 2 must escrow the key it created")
        for replica in replicas:
            self.assertEqual(replica.stop(), 0)

        # The database is lost; the master key and the journals survive.
        self.postgres.psql("postgres", "DROP DATABASE recover_src")
        fresh = self.database("recover_dst")
        for replica, journal, created in ((replicas[0], journals[0], 2), (replicas[1], journals[1], 1)):
            replica.conninfo = fresh
            replica.write_config()
            refused = replica.cli("keys", "list", "--config", replica.config_path)
            self.assertNotEqual(refused.returncode, 0, "an empty database was accepted against the anchor")
            recovered = replica.cli("keys", "recover", "--config", replica.config_path, "--from-journal", journal)
            self.assertEqual(recovered.returncode, 0, recovered.describe())
            self.assertIn(f"imported {created} data keys", recovered.output)
        self.assertEqual(self.postgres.psql("recover_dst", "SELECT count(*) FROM pacsgw_data_keys"), "3")
        for replica in replicas:
            replica.start()
            for original, stored in studies:
                self.assert_decrypts(replica, original, stored)
        self.assert_same_key_on_resend(replicas[1], *studies[0])

        # The same journals rebuild an SQLite keystore on a stand-alone gateway.
        standalone = self.adopt(ch.EscrowGateway(self.work_dir() / "sqlite", escrow_dir=journals[0],
                                                    upstream_port=self.pacs.dicom_port), "sqlite")
        # (Each recovery also escrows what the keystore holds into the journal it read, so by now every
        # journal holds all three keys; recovering from both is what an operator does after a loss.)
        for journal in journals:
            recovered = standalone.cli("keys", "recover", "--config", standalone.config_path, "--from-journal",
                                       journal)
            self.assertEqual(recovered.returncode, 0, recovered.describe())
        self.assertIn("3 data keys in total", recovered.output)
        for original, stored in studies:
            self.assert_decrypts(standalone, original, stored)

    def test_backup_while_storing_restores_into_a_fresh_gateway(self):
        conninfo = self.database("backup_src")
        journal = self.work_dir() / "escrow"
        replica = self.replica("replica", conninfo, journal)
        replica.start()
        before = [self.store_study(replica, name) for name in ("ct_le.dcm", "mf_mr.dcm", "ct_le.dcm")]
        shredded_original, shredded_stored = before.pop()
        uid = str(h.read(shredded_original).StudyInstanceUID)
        shred = replica.cli("keys", "shred", "--config", replica.config_path, "--study", uid)
        self.assertEqual(shred.returncode, 0, shred.describe())

        # Stores keep running while the backup is taken.
        during, errors, stop = [], [], threading.Event()

        def keep_storing():
            try:
                while not stop.is_set() and len(during) < 20:
                    during.append(self.store_study(replica))
            except Exception as e:  # reported below
                errors.append(e)

        storing = threading.Thread(target=keep_storing)
        storing.start()
        backup = replica.workdir / "keystore-backup.db"
        try:
            while not during and storing.is_alive():
                storing.join(timeout=0.2)
            result = replica.cli("keys", "backup", "--config", replica.config_path, "--to", backup)
        finally:
            stop.set()
            storing.join(timeout=300)
        self.assertEqual(errors, [])
        self.assertEqual(result.returncode, 0, result.describe())
        again = replica.cli("keys", "backup", "--config", replica.config_path, "--to", backup)
        self.assertNotEqual(again.returncode, 0, "an existing backup file was overwritten")

        # The file is an SQLite keystore with the same identity, rows and tombstones.
        pg_id = self.postgres.psql("backup_src", "SELECT value FROM pacsgw_meta WHERE name = 'keystore_id'")
        with sqlite3.connect(f"file:{backup}?mode=ro", uri=True) as db:
            self.assertEqual(db.execute("SELECT value FROM meta WHERE name = 'keystore_id'").fetchone()[0], pg_id)
            self.assertEqual(db.execute("SELECT count(*) FROM shredded_keys WHERE scope_uid = ?", (uid,)).fetchone()[0], 1)
            backed_up = {row[0] for row in db.execute("SELECT id FROM data_keys")}
        self.assertGreaterEqual(len(backed_up), 2 + 1, "the backup lacks keys created before it")
        self.assertEqual(backup.stat().st_mode & 0o777, 0o600)

        # A fresh stand-alone gateway restored from the backup (same master key, kept elsewhere).
        fresh = self.adopt(h.Gateway(self.work_dir() / "restored", upstream_port=self.pacs.dicom_port), "restored")
        shutil.copyfile(backup, fresh.keystore_path)
        fresh.start()
        self.assertNotIn("created a new keystore", fresh.log())
        for original, stored in before + [s for s in during if self.key_id(s[1]) in backed_up]:
            self.assert_decrypts(fresh, original, stored)
        refused = fresh.decrypt(shredded_stored, fresh.workdir / "never.dcm")
        self.assertNotEqual(refused.returncode, 0, refused.describe())
        self.assertIn("destroyed", refused.output)
        self.assertFalse((fresh.workdir / "never.dcm").exists())

        # Restored together with the replica's journal, even the keys created after the backup come back
        # instead of being forked.
        late = [s for s in during if self.key_id(s[1]) not in backed_up]
        late.append(self.store_study(replica))
        self.assertEqual(fresh.stop(), 0)
        with_journal = self.adopt(ch.EscrowGateway(self.work_dir() / "restored-journal", escrow_dir=journal,
                                                      upstream_port=self.pacs.dicom_port), "restored-journal")
        shutil.copyfile(backup, with_journal.keystore_path)
        with_journal.start()
        self.assertIn(f"imported {len(late)} data key(s) from the escrow journal", with_journal.log())
        for original, stored in before + during + late[-1:]:
            self.assert_decrypts(with_journal, original, stored)
        self.assert_same_key_on_resend(with_journal, *late[-1])

    def test_database_restored_to_an_older_state_never_forks_a_study_key(self):
        conninfo = self.database("older_state")
        replica = self.replica("replica", conninfo, self.work_dir() / "escrow")
        replica.start()
        early = self.store_study(replica)
        late_original, late_stored = self.store_study(replica)
        self.assertEqual(replica.stop(), 0)
        # As after restoring a dump taken before the late study arrived.
        late_uid = str(h.read(late_original).StudyInstanceUID)
        self.postgres.psql("older_state", f"DELETE FROM pacsgw_data_keys WHERE scope_uid = '{late_uid}'")
        replica.start()
        self.assertIn("imported 1 data key(s) from the escrow journal", replica.log())
        self.assert_decrypts(replica, *early)
        self.assert_decrypts(replica, late_original, late_stored)
        self.assert_same_key_on_resend(replica, late_original, late_stored)


if __name__ == "__main__":
    unittest.main()
