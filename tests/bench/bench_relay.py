#!/usr/bin/env python3
"""Relay throughput: one CT study moved from site A to site B through the two gateways (ciphertext plus
a key capsule per object, verified and imported at B) versus a plain C-MOVE from PACS A straight to
PACS B, in one run on the same machine.

Two Orthancs and two gateways on loopback (site A's relay key EC P-256, site B's RSA-3072, made with the
openssl command line). The study is stored through gateway A, so PACS A holds ciphertext; both paths
then carry the same bytes into PACS B. Between runs the study is deleted from PACS B, so every run
stores it anew. Runs alternate; medians are reported.

  PACSGW_BIN=build/pacsgw python3 tests/bench/bench_relay.py [--runs 3] [--slices 100] [--json out.json]
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

import pacsgw_harness as h  # noqa: E402
import retrieve_helpers as rh  # noqa: E402
import test_relay as tr  # noqa: E402  (module only: its fixtures)


def delete_study(pacs: h.Orthanc, study_uid: str):
    hits = [x for x in pacs.post_json("/tools/lookup", study_uid) if x.get("Type") == "Study"]
    for hit in hits:
        pacs._request(f"/studies/{hit['ID']}", method="DELETE")
    if pacs.instance_count() != 0:
        raise SystemExit("PACS B still holds instances after deleting the study")


def timed_move(port: int, called: str, calling: str, destination: str, study_uid: str, expected: int,
               pacs_b: h.Orthanc) -> float:
    result = rh.movescu(port, destination, {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": study_uid},
                        calling=calling, called=called, timeout=1800)
    final = result.final
    if final.status != rh.STATUS_SUCCESS or final.completed != expected or pacs_b.instance_count() != expected:
        raise SystemExit(f"{called} -> {destination}: final 0x{final.status:04X}, completed {final.completed}, "
                         f"PACS B holds {pacs_b.instance_count()} of {expected}\n{result.describe()}")
    return result.tool.seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    files = sorted((h.cache_dir() / "bench").glob("ct_*.dcm"))[:args.slices]
    if len(files) < args.slices:
        raise SystemExit("not enough bench slices: run scripts/fetch-test-data.sh")
    workdir = h.make_workdir("bench-relay")
    (workdir / "certs").mkdir()
    cert_a, key_a = tr.make_certificate(workdir / "certs", "site-a", "ec")
    cert_b, key_b = tr.make_certificate(workdir / "certs", "site-b", "rsa")
    port_a, port_b = h.free_port(), h.free_port()
    pacs_b = h.Orthanc(workdir / "pacs-b", aet="PACSB", gateway_aet="GATEWAY_B", gateway_port=port_b)
    pacs_a = rh.RetrieveOrthanc(workdir / "pacs-a", aet="PACSA", gateway_aet="GATEWAY_A", gateway_port=port_a,
                                extra_modalities=[("PACSB", pacs_b.dicom_port)])
    level = os.environ.get("PACSGW_BENCH_LOG_LEVEL", "info")
    gateway_a = tr.RelayGateway(
        workdir / "gateway-a", ae_title="GATEWAY_A", port=port_a, upstream_port=pacs_a.dicom_port,
        upstream_aet="PACSA", log_level=level, workstations=[("WSA", h.LOOPBACK, h.free_port(), "ciphertext")],
        relay={"certificate": cert_a, "private_key": key_a,
               "peers": [{"name": "site-b", "ae_title": "GATEWAY_B", "port": port_b, "certificate": cert_b}]})
    gateway_b = tr.RelayGateway(
        workdir / "gateway-b", ae_title="GATEWAY_B", port=port_b, upstream_port=pacs_b.dicom_port,
        upstream_aet="PACSB", log_level=level, workstations=[],
        relay={"certificate": cert_b, "private_key": key_b,
               "peers": [{"name": "site-a", "ae_title": "GATEWAY_A", "port": port_a, "certificate": cert_a}]})
    peers = [pacs_a, pacs_b, gateway_a, gateway_b]
    ok = False
    try:
        for peer in peers:
            peer.start()
        study_uid = str(h.read(files[0]).StudyInstanceUID)
        stored = h.dcmsend(gateway_a.port, files, called="GATEWAY_A", calling="CT1", timeout=1800)
        if not stored.all_succeeded(len(files)):
            raise SystemExit(f"storing at site A failed\n{stored.describe()}")
        direct, relay = [], []
        load_before = os.getloadavg()
        for _ in range(args.runs):
            direct.append(timed_move(pacs_a.dicom_port, "PACSA", "PACSB", "PACSB", study_uid, len(files), pacs_b))
            delete_study(pacs_b, study_uid)
            relay.append(timed_move(gateway_a.port, "GATEWAY_A", "WSA", "GATEWAY_B", study_uid, len(files), pacs_b))
            sample = h.read(pacs_b.download_by_uid(h.sop_instance_uid(files[0]), workdir / "sample.dcm"))
            if not h.key_reference(sample) or tr.capsule_elements(sample):
                raise SystemExit("PACS B does not hold the ciphertext without capsule")
            delete_study(pacs_b, study_uid)
        d, r = statistics.median(direct), statistics.median(relay)
        n = len(files)
        print(f"study: {n} CT slices 512x512 16-bit; {args.runs} alternating runs per path; "
              f"load average {load_before[0]:.2f} -> {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        print(f"direct C-MOVE PACS A -> PACS B      median {d:6.2f} s  {n / d:7.1f} instances/s  "
              f"runs {[round(x, 2) for x in direct]}")
        print(f"relay PACS A -> gw A -> gw B -> PACS B median {r:6.2f} s  {n / r:7.1f} instances/s  "
              f"runs {[round(x, 2) for x in relay]}")
        print(f"ratio relay/direct: {d / r:.2f}")
        if args.json:
            args.json.write_text(json.dumps({"instances": n, "direct_seconds": direct, "relay_seconds": relay,
                                             "direct_instances_per_s": n / d, "relay_instances_per_s": n / r,
                                             "ratio": d / r}, indent=2))
        ok = True
        return 0
    finally:
        for peer in reversed(peers):
            peer.stop()
        if ok and not h.keep_temp_dirs():
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"files kept in {workdir}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
