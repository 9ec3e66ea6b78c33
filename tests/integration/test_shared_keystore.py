#!/usr/bin/env python3
"""Two gateway replicas sharing one PostgreSQL keystore (a real server started by the test) in front of one
Orthanc: concurrent first stores of the same study through both replicas end with one key (audited as created by
the replica whose insert won, only), each replica
decrypts the other's objects, and shred / verify / a vanished database behave as with SQLite.

Run alone:  PACSGW_BIN=build/pacsgw python3 tests/integration/test_shared_keystore.py -v
"""

import shutil
import sys
import threading
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pacsgw_harness as h  # noqa: E402
import pg_helpers  # noqa: E402


def key_created_records(replica) -> list:
    """The KEY-created audit messages in a replica's local audit log."""
    path = replica.data_dir / "audit.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return [line for line in lines if 'csd-code="KEY-created"' in line]


class SharedKeystore(h.LogDumpingTestCase):

    @classmethod
    def setUpClass(cls):
        cls.failed = False
        cls.workdir = h.make_workdir(cls.__name__)
        cls.postgres = pg_helpers.PostgresServer(cls.workdir / "postgres")
        cls.pacs = h.Orthanc(cls.workdir / "pacs")
        cls.replicas = [pg_helpers.PostgresGateway(cls.workdir / f"replica-{i}", "", upstream_port=0)
                        for i in (1, 2)]
        cls.logs = {"Orthanc": cls.pacs.log_path, "PostgreSQL": cls.postgres.log_path}
        try:
            cls.postgres.start()
            cls.pacs.start()
            for i, replica in enumerate(cls.replicas, 1):
                replica.conninfo = cls.postgres.conninfo
                replica.upstream_port = cls.pacs.dicom_port
                cls.logs[f"pacsgw replica {i}"] = replica.log_path
            # One master key for all replicas (each keeps its own copy, as on separate hosts).
            cls.replicas[0].write_config()
            for replica in cls.replicas[1:]:
                replica.workdir.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(cls.replicas[0].master_key_path, replica.master_key_path)
                replica.master_key_path.chmod(0o600)
            # Both replicas start at once: the tables are created exactly once.
            threads = [threading.Thread(target=replica.start) for replica in cls.replicas]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=90)
            for replica in cls.replicas:
                if not replica.alive() or "listening on" not in replica.log():
                    raise RuntimeError(f"replica did not start:\n{replica.log()}")
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for replica in cls.replicas:
            replica.stop()
        cls.pacs.stop()
        cls.postgres.stop()
        if cls.failed or h.keep_temp_dirs():
            sys.stderr.write(f"\nlogs and files kept in {cls.workdir}\n")
        else:
            shutil.rmtree(cls.workdir, ignore_errors=True)

    def key_id(self, path: Path) -> str:
        return h.element_text(h.key_reference(h.read(path))[0x03])

    def test_concurrent_first_stores_of_one_study_share_one_key(self):
        work = self.workdir / "race"
        studies = []
        for s in range(6):
            base = h.fresh_copy(h.test_file("ct_le.dcm"), work / f"study-{s}")
            copies = [[h.fresh_copy(base, work / f"study-{s}" / f"r{r}", new_study=False) for _ in range(2)]
                      for r in range(2)]
            studies.append((str(h.read(base).StudyInstanceUID), copies))

        # For every study, both replicas receive its first objects at the same moment.
        results = {}
        barrier = threading.Barrier(2)

        def send(replica_index):
            for uid, copies in studies:
                barrier.wait(timeout=60)
                results[(uid, replica_index)] = h.storescu(self.replicas[replica_index].port, copies[replica_index])

        threads = [threading.Thread(target=send, args=(r,)) for r in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        for key, result in results.items():
            self.assertTrue(result.all_succeeded(2), f"{key}: {result.describe()}")

        for uid, copies in studies:
            rows = self.postgres.query(f"SELECT count(*) FROM pacsgw_data_keys WHERE scope_uid = '{uid}'")
            self.assertEqual(rows, "1", f"study {uid} has {rows} keys")
            key_ids = set()
            for r, files in enumerate(copies):
                for f in files:
                    stored = self.pacs.download_by_uid(h.sop_instance_uid(f), f.parent / f"pacs-{f.name}")
                    key_ids.add(self.key_id(stored))
                    # The other replica decrypts what this one stored.
                    other = self.replicas[1 - r]
                    restored = f.parent / f"restored-{f.name}"
                    result = other.decrypt(stored, restored)
                    self.assertEqual(result.returncode, 0, result.describe())
                    self.assertEqual(h.pixel_element_bytes(h.read(restored)), h.pixel_element_bytes(h.read(f)))
            self.assertEqual(len(key_ids), 1, f"study {uid} objects use keys {key_ids}")
            # Only the replica whose insert won audits "key created", naming the key both replicas use.
            created = [(i, record) for i, replica in enumerate(self.replicas)
                       for record in key_created_records(replica) if f">scope {uid}<" in record]
            self.assertEqual(len(created), 1, f"study {uid}: KEY-created records {created}")
            self.assertIn(f'ParticipantObjectID="{key_ids.pop()}"', created[0][1])

    def test_shred_and_verify_on_the_shared_keystore(self):
        work = self.workdir / "shred"
        sent = h.fresh_copy(h.test_file("ct_le.dcm"), work)
        self.assertTrue(h.storescu(self.replicas[0].port, [sent]).all_succeeded(1))
        stored = self.pacs.download_by_uid(h.sop_instance_uid(sent), work / "pacs.dcm")
        uid = str(h.read(sent).StudyInstanceUID)
        verify = self.replicas[1].cli("keys", "verify", "--config", self.replicas[1].config_path)
        self.assertEqual(verify.returncode, 0, verify.describe())
        shred = self.replicas[1].cli("keys", "shred", "--config", self.replicas[1].config_path, "--study", uid)
        self.assertEqual(shred.returncode, 0, shred.describe())
        self.assertEqual(self.postgres.query(f"SELECT count(*) FROM pacsgw_data_keys WHERE scope_uid = '{uid}'"), "0")
        refused = self.replicas[0].decrypt(stored, work / "never.dcm")
        self.assertNotEqual(refused.returncode, 0, refused.describe())
        self.assertIn("destroyed", refused.output)
        self.assertFalse((work / "never.dcm").exists())

    def test_dropped_database_is_refused(self):
        # A third gateway anchored to this keystore refuses an empty database instead of re-creating keys.
        extra = pg_helpers.PostgresGateway(self.workdir / "replica-3", self.postgres.conninfo,
                                           upstream_port=self.pacs.dicom_port)
        extra.workdir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.replicas[0].master_key_path, extra.master_key_path)
        extra.master_key_path.chmod(0o600)
        listed = extra.cli("keys", "list", "--config", extra.write_config())
        self.assertEqual(listed.returncode, 0, listed.describe())
        self.postgres.psql("postgres", "CREATE DATABASE pacsgw_empty")
        extra.conninfo = self.postgres.conninfo.replace("dbname=pacsgw_keys", "dbname=pacsgw_empty")
        refused = extra.cli("keys", "list", "--config", extra.write_config())
        self.assertNotEqual(refused.returncode, 0, refused.describe())
        self.assertIn("has no keystore tables", refused.output)
        self.assertEqual(self.postgres.psql("pacsgw_empty", "SELECT to_regclass('pacsgw_data_keys') IS NULL"), "t")


if __name__ == "__main__":
    unittest.main()
