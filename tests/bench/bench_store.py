#!/usr/bin/env python3
"""C-STORE throughput: a modality sending straight to a PACS, against the same modality sending
through `pacsgw serve` to the same kind of PACS, in one run on one machine.

  python3 tests/bench/bench_store.py                  # storescp as the PACS, 3 repetitions
  python3 tests/bench/bench_store.py --ignore         # storescp --ignore (no disk writes) in both paths
  python3 tests/bench/bench_store.py --orthanc        # also Orthanc as the PACS
  python3 tests/bench/bench_store.py --min-ratio 0.6  # exit 1 when gateway/direct falls below 0.6

Every measured run is verified: the PACS must have received every instance (files counted, or
storescp's log parsed with --ignore), and through the gateway the received objects must carry the
key-reference block. Needs scripts/fetch-test-data.sh (tests/data/cache/bench/) and a built pacsgw.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
import pacsgw_harness as h  # noqa: E402

PACS_AET = "BENCHPACS"


class StoreScp:
    """storescp acting as the PACS; one process per measured run, writing into a fresh directory."""

    def __init__(self, workdir: Path, ignore: bool):
        self.workdir = workdir
        self.port = h.free_port()
        self.out = workdir / "received"
        self.log_path = workdir / "storescp.log"
        self.ignore = ignore
        self.proc = None

    def start(self):
        self.out.mkdir(parents=True)
        args = ["storescp", "-v", "-aet", PACS_AET, "-od", self.out]
        if self.ignore:
            args.append("--ignore")
        args.append(self.port)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([str(a) for a in args], stdout=log, stderr=subprocess.STDOUT,
                                         env=h.tool_env())
        deadline = time.monotonic() + 10
        while not h.port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"storescp did not start\n{h.tail(self.log_path)}")
            time.sleep(0.05)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def received(self) -> int:
        if self.ignore:
            return h.tail(self.log_path, 10**7).count("Received Store Request")
        return sum(1 for _ in self.out.iterdir())

    def received_files(self):
        return sorted(self.out.iterdir())


def send(port: int, files, called: str) -> (float, h.StoreResult):
    started = time.monotonic()
    result = h.storescu(port, files, called=called, calling="CT1", timeout=600)
    return time.monotonic() - started, result


def verify(label: str, result: h.StoreResult, received: int, expected: int):
    if not result.all_succeeded(expected):
        raise SystemExit(f"{label}: {result.successes}/{expected} Success statuses\n{result.output[-3000:]}")
    if received != expected:
        raise SystemExit(f"{label}: the PACS received {received} instances, expected {expected}")


def verify_ciphertext(files, sample: int = 200):
    missing = [f.name for f in files[:sample] if not h.key_reference(h.read(f))]
    if missing:
        raise SystemExit(f"{len(missing)} objects received through the gateway carry no key reference, "
                         f"e.g. {missing[:3]}")


def run_storescp_pair(args, files, workdir: Path, repetition: int) -> dict:
    n = len(files)
    # Direct: modality -> storescp.
    scp = StoreScp(workdir / f"direct-{repetition}", args.ignore).start()
    try:
        direct_s, result = send(scp.port, files, PACS_AET)
        time.sleep(0.2 if args.ignore else 0)  # let storescp log the last request
        verify("direct", result, scp.received(), n)
    finally:
        scp.stop()
    # Through the gateway: modality -> pacsgw -> a fresh storescp.
    scp = StoreScp(workdir / f"gateway-{repetition}", args.ignore).start()
    gateway = h.Gateway(workdir / f"gw-{repetition}", upstream_port=scp.port, upstream_aet=PACS_AET,
                        log_level=args.gateway_log_level)
    try:
        gateway.start()
        gateway_s, result = send(gateway.port, files, "GATEWAY")
        time.sleep(0.2 if args.ignore else 0)
        verify("through pacsgw", result, scp.received(), n)
        if not args.ignore:
            verify_ciphertext(scp.received_files())
        if not gateway.alive():
            raise SystemExit(f"pacsgw died during the benchmark\n{h.tail(gateway.log_path)}")
    except BaseException:
        sys.stderr.write(f"\npacsgw log:\n{h.tail(gateway.log_path)}\n")
        raise
    finally:
        gateway.stop()
        scp.stop()
    return {"direct_s": direct_s, "gateway_s": gateway_s}


def run_orthanc_pair(args, files, workdir: Path, repetition: int) -> dict:
    n = len(files)
    results = {}
    for path in ("direct", "gateway"):
        gw_port = h.free_port()
        pacs = h.Orthanc(workdir / f"orthanc-{path}-{repetition}", gateway_port=gw_port).start()
        gateway = None
        try:
            if path == "direct":
                seconds, result = send(pacs.dicom_port, files, pacs.aet)
            else:
                gateway = h.Gateway(workdir / f"gw-orthanc-{repetition}", upstream_port=pacs.dicom_port,
                                    upstream_aet=pacs.aet, port=gw_port, log_level=args.gateway_log_level).start()
                seconds, result = send(gateway.port, files, "GATEWAY")
            verify(f"{path} to Orthanc", result, pacs.instance_count(), n)
            results[f"{path}_s"] = seconds
        finally:
            if gateway:
                gateway.stop()
            pacs.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200, help="instances per run (default 200)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions; medians are reported (default 3)")
    parser.add_argument("--ignore", action="store_true", help="storescp --ignore in both paths (no disk writes)")
    parser.add_argument("--orthanc", action="store_true", help="also measure with Orthanc as the PACS")
    parser.add_argument("--min-ratio", type=float, default=None, help="exit 1 if gateway/direct is below this")
    parser.add_argument("--gateway-log-level", default="info")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    args = parser.parse_args()

    files = sorted((h.cache_dir() / "bench").glob("ct_*.dcm"))[:args.count]
    if len(files) < args.count:
        raise SystemExit(f"need {args.count} files in {h.cache_dir() / 'bench'}: run scripts/fetch-test-data.sh")
    total_bytes = sum(f.stat().st_size for f in files)
    workdir = h.make_workdir("bench")
    print(f"pacsgw: {h.pacsgw_bin()}")
    print(f"{len(files)} instances, {total_bytes / 1e6:.1f} MB; storescp {'--ignore' if args.ignore else 'writing files'};"
          f" TCP_NODELAY=1 for every peer; {args.repeat} repetitions; {os.cpu_count()} cores")

    rows = {}
    try:
        runs = [run_storescp_pair(args, files, workdir, i) for i in range(args.repeat)]
        rows["storescp"] = runs
        if args.orthanc:
            rows["orthanc"] = [run_orthanc_pair(args, files, workdir, i) for i in range(args.repeat)]
    finally:
        if not h.keep_temp_dirs():
            shutil.rmtree(workdir, ignore_errors=True)

    report = {"instances": len(files), "bytes": total_bytes, "ignore": args.ignore, "targets": {}}
    print()
    print(f"{'PACS':<10} {'path':<16} {'median s':>9} {'inst/s':>8} {'MB/s':>8}   all runs (s)")
    worst_ratio = None
    for target, runs in rows.items():
        medians = {}
        for path in ("direct", "gateway"):
            times = [r[f"{path}_s"] for r in runs]
            med = statistics.median(times)
            medians[path] = med
            print(f"{target:<10} {('direct' if path == 'direct' else 'via pacsgw'):<16} {med:9.2f} "
                  f"{len(files) / med:8.0f} {total_bytes / 1e6 / med:8.1f}   {', '.join(f'{t:.2f}' for t in times)}")
        ratio = medians["direct"] / medians["gateway"]  # throughput ratio gateway/direct
        worst_ratio = ratio if worst_ratio is None else min(worst_ratio, ratio)
        print(f"{target:<10} {'ratio':<16} throughput via pacsgw / direct = {ratio:.2f} (target >= 0.6)")
        report["targets"][target] = {"runs": runs, "median_direct_s": medians["direct"],
                                     "median_gateway_s": medians["gateway"], "ratio": ratio}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if args.min_ratio is not None and worst_ratio < args.min_ratio:
        print(f"FAIL: ratio {worst_ratio:.2f} below {args.min_ratio}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
