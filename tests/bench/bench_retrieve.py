#!/usr/bin/env python3
"""Retrieval throughput: C-MOVE of one CT study straight from Orthanc versus through the gateway
with decryption, in one run on the same machine.

The study (tests/data/cache/bench: >= 200 slices 512x512 16-bit, one study) is stored through the
gateway, so Orthanc holds ciphertext. The direct move sends that ciphertext as it is (same byte
size as the plaintext, so the transfer work is the same); the gateway move decrypts every slice
(AES-256-GCM) before delivering it. Each path is timed on alternating runs and the median is
reported; every run must deliver exactly the whole study.

  PACSGW_BIN=build/pacsgw python3 tests/bench/bench_retrieve.py [--runs 5] [--json out.json]
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import pacsgw_harness as h  # noqa: E402  (re-executes with the Debian python if pydicom is missing)
import retrieve_helpers as rh  # noqa: E402

TARGET_RATIO = 0.6  # gateway throughput / direct throughput


def bench_files(minimum: int) -> list:
    files = sorted((h.cache_dir() / "bench").glob("ct_*.dcm"))
    if len(files) < minimum:
        raise SystemExit(f"{h.cache_dir() / 'bench'} holds {len(files)} slices, need {minimum}: "
                         "run scripts/fetch-test-data.sh")
    return files


def one_move(port: int, called: str, calling: str, scp: rh.StoreSCP, study_uid: str, expected: int,
             originals: dict = None) -> dict:
    """One timed C-MOVE of the whole study to `scp`. With `originals` (SOP Instance UID -> file), one
    received slice must carry exactly the original pixel data (the gateway really decrypted)."""
    with scp:
        result = rh.movescu(port, scp.aet, {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": study_uid},
                            calling=calling, called=called, timeout=1800)
        files = scp.files()
    received = len(files)
    size = sum(p.stat().st_size for p in files)
    final = result.final
    if received != expected or final.status != rh.STATUS_SUCCESS or final.completed != expected:
        raise SystemExit(f"{called}: received {received} of {expected} files, final status "
                         f"0x{final.status:04X}, completed {final.completed}\n{result.describe()}\n{scp.log()}")
    if originals:
        got = h.read(files[len(files) // 2])
        want = h.read(originals[str(got.SOPInstanceUID)])
        if h.key_reference(got) or h.pixel_element_bytes(got) != h.pixel_element_bytes(want):
            raise SystemExit(f"{files[len(files) // 2]} is not the decrypted original")
    # The tool's wall time includes association set-up and release: what a workstation experiences.
    seconds = result.tool.seconds
    shutil.rmtree(scp.directory)
    return {"seconds": seconds, "instances": received, "bytes": size,
            "instances_per_s": received / seconds, "mb_per_s": size / 1e6 / seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per path (default 5)")
    parser.add_argument("--slices", type=int, default=200, help="slices in the study (default 200)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()

    files = bench_files(args.slices)[:args.slices]
    workdir = h.make_workdir("bench-retrieve")
    gateway_port, direct_port, ws_port = h.free_port(), h.free_port(), h.free_port()
    # BENCHDIRECT receives Orthanc's own C-MOVE; WS1 receives the gateway's. Both are storescp.
    orthanc = rh.RetrieveOrthanc(workdir / "orthanc", gateway_port=gateway_port,
                                 extra_modalities=[("BENCHDIRECT", direct_port)])
    gateway = rh.RetrieveGateway(workdir / "gateway", upstream_port=orthanc.dicom_port, upstream_aet=orthanc.aet,
                                 port=gateway_port, log_level=os.environ.get("PACSGW_BENCH_LOG_LEVEL", "info"),
                                 workstations=[("WS1", h.LOOPBACK, ws_port, "decrypt")])
    ok = False
    try:
        orthanc.start()
        gateway.start()

        # The slices are one study already (fresh SOP Instance UIDs, common Study Instance UID).
        staged_files = files
        study_uids = {str(h.read(p).StudyInstanceUID) for p in (files[0], files[-1])}
        if len(study_uids) != 1:
            raise SystemExit(f"bench slices belong to several studies: {study_uids}")
        study_uid = study_uids.pop()
        originals = {h.sop_instance_uid(p): p for p in files}
        started = time.monotonic()
        stored = h.dcmsend(gateway.port, staged_files, called=gateway.ae_title, calling="CT1", timeout=1800)
        store_seconds = time.monotonic() - started
        if not stored.all_succeeded(len(staged_files)):
            raise SystemExit(f"storing the study through the gateway failed\n{stored.describe()}")
        if orthanc.instance_count() != len(staged_files):
            raise SystemExit(f"Orthanc holds {orthanc.instance_count()} instances, expected {len(staged_files)}")
        sample = h.read(orthanc.download_by_uid(h.sop_instance_uid(staged_files[0]), workdir / "sample.dcm"))
        if not h.key_reference(sample):
            raise SystemExit("Orthanc holds plaintext: the benchmark would not measure decryption")

        direct, via = [], []
        load_before = os.getloadavg()
        for run in range(args.runs):
            # Alternate so background load affects both paths alike.
            direct.append(one_move(orthanc.dicom_port, orthanc.aet, "BENCHDIRECT",
                                   rh.StoreSCP("BENCHDIRECT", direct_port, workdir / f"direct-{run}"),
                                   study_uid, len(staged_files)))
            via.append(one_move(gateway.port, gateway.ae_title, "WS1",
                                rh.StoreSCP("WS1", ws_port, workdir / f"gateway-{run}"),
                                study_uid, len(staged_files), originals))

        def summary(runs):
            seconds = statistics.median(r["seconds"] for r in runs)
            best = min(r["seconds"] for r in runs)
            instances, size = runs[0]["instances"], runs[0]["bytes"]
            return {"median_seconds": seconds, "best_seconds": best, "instances": instances, "bytes": size,
                    "instances_per_s": instances / seconds, "mb_per_s": size / 1e6 / seconds,
                    "best_instances_per_s": instances / best, "runs_seconds": [round(r["seconds"], 3) for r in runs]}

        d, g = summary(direct), summary(via)
        # The verdict uses medians; best-of-N is printed too, as a hint of background load.
        ratio = g["instances_per_s"] / d["instances_per_s"]
        best_ratio = g["best_instances_per_s"] / d["best_instances_per_s"]
        print(f"study: {len(staged_files)} CT slices 512x512 16-bit, {d['bytes'] / 1e6:.1f} MB as received; "
              f"stored through the gateway in {store_seconds:.1f} s; {args.runs} alternating runs per path")
        for name, s in (("direct (Orthanc -> storescp)", d), ("gateway (Orthanc -> pacsgw decrypt -> storescp)", g)):
            print(f"{name:50s} median {s['median_seconds']:6.2f} s  {s['instances_per_s']:7.1f} instances/s  "
                  f"{s['mb_per_s']:6.1f} MB/s  best {s['best_seconds']:.2f} s  runs {s['runs_seconds']}")
        print(f"load average before / after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f} "
              f"on {os.cpu_count()} CPUs")
        print(f"ratio gateway/direct: {ratio:.2f} median, {best_ratio:.2f} best-of-{args.runs} "
              f"(target >= {TARGET_RATIO})")
        if args.json:
            args.json.write_text(json.dumps({"direct": d, "gateway": g, "ratio": ratio, "best_ratio": best_ratio,
                                             "target": TARGET_RATIO, "store_seconds": store_seconds,
                                             "load_average": [load_before[0], os.getloadavg()[0]]}, indent=2))
        ok = ratio >= TARGET_RATIO
        return 0 if ok else 1
    finally:
        gateway.stop()
        orthanc.stop()
        if ok and not h.keep_temp_dirs():
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"files kept in {workdir}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
