#!/usr/bin/env python3
"""Store throughput with one gateway versus two replicas sharing one PostgreSQL keystore, in one run.

A fresh PostgreSQL server and Orthanc are started; the same number of new studies (each study needs a new
data key from the shared keystore) is sent (a) through replica 1 alone by two concurrent modalities and
(b) through replicas 1 and 2, one modality each. Every instance must reach the PACS. Prints instances/s
for both and their ratio; the runs alternate and the median is reported.

  PACSGW_BIN=build/pacsgw python3 tests/bench/bench_shared_keystore.py [--studies 20] [--slices 4] [--runs 3]
"""

import argparse
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import pacsgw_harness as h  # noqa: E402
import pg_helpers  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402


def make_studies(source_dir: Path, target: Path, studies: int, slices: int) -> list:
    """`studies` new studies of `slices` CT slices each, with fresh UIDs; returns a list of file lists."""
    sources = sorted(source_dir.glob("ct_*.dcm"))[:slices]
    target.mkdir(parents=True, exist_ok=True)
    out = []
    for s in range(studies):
        study_uid, series_uid = generate_uid(), generate_uid()
        files = []
        for i, source in enumerate(sources):
            ds = h.read(source)
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            path = target / f"s{s:03d}-{i:03d}.dcm"
            ds.save_as(path, write_like_original=True)
            files.append(path)
        out.append(files)
    return out


def send_parallel(jobs) -> float:
    """jobs: list of (port, files). Runs them concurrently; returns seconds; every instance must succeed."""
    results = [None] * len(jobs)

    def run(i, port, files):
        results[i] = h.storescu(port, files, timeout=900)

    threads = [threading.Thread(target=run, args=(i, port, files)) for i, (port, files) in enumerate(jobs)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - started
    for (port, files), result in zip(jobs, results):
        if not result.all_succeeded(len(files)):
            raise AssertionError(result.describe())
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--studies", type=int, default=20, help="new studies per run (split over two senders)")
    parser.add_argument("--slices", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    workdir = h.make_workdir("bench-shared-keystore")
    postgres = pg_helpers.PostgresServer(workdir / "postgres")
    pacs = h.Orthanc(workdir / "pacs")
    replicas = [pg_helpers.PostgresGateway(workdir / f"replica-{i}", "", upstream_port=0, log_level="info")
                for i in (1, 2)]
    try:
        postgres.start()
        pacs.start()
        for replica in replicas:
            replica.conninfo = postgres.conninfo
            replica.upstream_port = pacs.dicom_port
        replicas[0].write_config()
        replicas[1].workdir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(replicas[0].master_key_path, replicas[1].master_key_path)
        replicas[1].master_key_path.chmod(0o600)
        for replica in replicas:
            replica.start()

        one, two = [], []
        per_run = args.studies * args.slices
        for run in range(args.runs):
            for label, sink in (("1 replica", one), ("2 replicas", two)):
                studies = make_studies(h.cache_dir() / "bench", workdir / f"files-{run}-{len(sink)}-{label[0]}",
                                       args.studies, args.slices)
                half = len(studies) // 2
                a = [f for s in studies[:half] for f in s]
                b = [f for s in studies[half:] for f in s]
                ports = (replicas[0].port, replicas[0].port) if label == "1 replica" else (replicas[0].port,
                                                                                           replicas[1].port)
                seconds = send_parallel([(ports[0], a), (ports[1], b)])
                sink.append(per_run / seconds)
                print(f"run {run + 1} {label}: {per_run} instances of {args.studies} new studies in {seconds:.2f} s "
                      f"= {per_run / seconds:.1f} instances/s", flush=True)
        keys = postgres.query("SELECT count(*) FROM pacsgw_data_keys")
        expected = 2 * args.runs * args.studies
        if int(keys) != expected:
            raise AssertionError(f"{keys} keys in the shared keystore, expected {expected}")
        m1, m2 = statistics.median(one), statistics.median(two)
        print(f"median: 1 replica {m1:.1f} instances/s, 2 replicas {m2:.1f} instances/s, ratio {m2 / m1:.2f} "
              f"({keys} keys in the shared keystore, one per study)")
        return 0
    finally:
        for replica in replicas:
            replica.stop()
        pacs.stop()
        postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
