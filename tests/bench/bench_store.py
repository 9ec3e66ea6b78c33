#!/usr/bin/env python3
"""C-STORE throughput and latency: a modality sending straight to a PACS, against the same modality
sending through `pacsgw serve` to the same kind of PACS, in one run on one machine. The gateway is
measured in both forwarding modes: `sync` (the modality waits for the PACS) and `queued` (the modality
gets Success once the encrypted instance is fsync'd into the spool; the forwarder delivers after).

  python3 tests/bench/bench_store.py                  # storescp as the PACS, 3 repetitions
  python3 tests/bench/bench_store.py --ignore         # storescp --ignore (no disk writes) in both paths
  python3 tests/bench/bench_store.py --orthanc        # also Orthanc as the PACS
  python3 tests/bench/bench_store.py --min-ratio 0.6  # exit 1 when sync gateway/direct falls below 0.6
  python3 tests/bench/bench_store.py --min-queued-ratio 0.5
  python3 tests/bench/bench_store.py --reference-bin /opt/pacsgw-1.0/bin/pacsgw  # also an earlier build, sync

Every measured run is verified: the PACS must have received every instance (files counted, or
storescp's log parsed with --ignore), and through the gateway the received objects must carry the
key-reference block. In queued mode the run ends when the modality has every Success; delivery to the
PACS is then awaited (bounded) and reported as its own figure. Latency is per C-STORE as the
modality sees it: from storescu sending the request to the response, from its timestamped log. Needs scripts/fetch-test-data.sh (tests/data/cache/bench/) and a built pacsgw.
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


LOG_CONFIG = """log4cplus.rootLogger = INFO, console
log4cplus.appender.console = log4cplus::ConsoleAppender
log4cplus.appender.console.layout = log4cplus::PatternLayout
log4cplus.appender.console.layout.ConversionPattern = %D{%H:%M:%S.%Q} %m%n
"""


def _seconds(stamp: str) -> float:
    hours, minutes, rest = stamp.split(":")
    seconds, millis, micros = rest.split(".")
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds) + int(millis) / 1e3 + int(micros) / 1e6


def store_latencies(output: str) -> list:
    """Seconds from each 'Sending Store Request' to its 'Received Store Response' in storescu's log."""
    latencies, sent_at = [], None
    for line in output.splitlines():
        stamp, _, message = line.partition(" ")
        if message.startswith("Sending Store Request"):
            sent_at = _seconds(stamp)
        elif message.startswith("Received Store Response") and sent_at is not None:
            latency = _seconds(stamp) - sent_at
            latencies.append(latency + 86400 if latency < 0 else latency)  # across midnight
            sent_at = None
    return latencies


def percentile(values, fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def send(port: int, files, called: str, log_config: Path) -> (float, h.StoreResult, list):
    # storescu -v, but through a log configuration that timestamps every line (the two cannot be combined).
    args = ["storescu", "-lc", log_config, "-ta", "30", "-td", "120", "-aec", called, "-aet", "CT1",
            h.LOOPBACK, port, *files]
    started = time.monotonic()
    tool = h.run_tool(args, timeout=600)
    seconds = time.monotonic() - started
    result = h.StoreResult(tool, h._parse_store_statuses(tool.output))
    return seconds, result, store_latencies(tool.output)


def wait_received(scp, expected: int, timeout: float = 600) -> float:
    started = time.monotonic()
    while scp.received() < expected:
        if time.monotonic() - started > timeout:
            raise SystemExit(f"queued: the PACS holds {scp.received()} of {expected} instances after {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - started


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


def warm_spool(args, gateway, files, workdir: Path, log_config: Path):
    """A gateway that has run for a while reuses its spool segments; a new spool first pre-allocates them
    (64 MiB written and synced each), in the background while the first instances arrive. Unless
    --cold-spool, the measured queued run uses a spool that one earlier send through the same data
    directory has set up, as after any restart."""
    scp = StoreScp(workdir, args.ignore).start()
    upstream = gateway.upstream_port
    gateway.upstream_port = scp.port
    try:
        gateway.start()
        _, result, _ = send(gateway.port, files, "GATEWAY", log_config)
        if not result.all_succeeded(len(files)):
            verify("queued warm-up via pacsgw", result, len(files), len(files))
        wait_received(scp, len(files))
    finally:
        gateway.stop()
        scp.stop()
        gateway.upstream_port = upstream


def run_storescp_pair(args, files, workdir: Path, repetition: int) -> dict:
    n = len(files)
    log_config = workdir / "storescu-log.cfg"
    log_config.write_text(LOG_CONFIG)
    out = {}
    # The order of the paths alternates between repetitions, so that a load that drifts during an
    # invocation does not always favour the same path.
    order = ["direct", "sync", "queued"] + (["reference"] if args.reference_bin else [])
    for path in (order if repetition % 2 == 0 else list(reversed(order))):
        scp = StoreScp(workdir / f"{path}-{repetition}", args.ignore).start()
        if path == "direct":
            # Modality -> storescp.
            try:
                out["direct_s"], result, out["direct_lat"] = send(scp.port, files, PACS_AET, log_config)
                time.sleep(0.2 if args.ignore else 0)  # let storescp log the last request
                verify("direct", result, scp.received(), n)
            finally:
                scp.stop()
            continue
        # Through the gateway: modality -> pacsgw -> a fresh storescp. The reference build runs in its
        # default (synchronous) mode, so that a build from before queued forwarding existed can be measured.
        reference = path == "reference"
        gateway = h.Gateway(workdir / f"gw-{path}-{repetition}", upstream_port=scp.port, upstream_aet=PACS_AET,
                            log_level=args.gateway_log_level, forward=None if reference else path,
                            binary=args.reference_bin if reference else None)
        try:
            if path == "queued" and not args.cold_spool:
                warm_spool(args, gateway, files, workdir / f"warm-{repetition}", log_config)
            gateway.start()
            seconds, result, latencies = send(gateway.port, files, "GATEWAY", log_config)
            if not result.all_succeeded(n):
                verify(f"{path} via pacsgw", result, n, n)
            if path == "queued":
                # Counted from the end of the send: how long the backlog took to reach the PACS.
                out["queued_drain_s"] = wait_received(scp, n)
            time.sleep(0.2 if args.ignore else 0)
            verify(f"{path} via pacsgw", result, scp.received(), n)
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
        out[f"{path}_s"], out[f"{path}_lat"] = seconds, latencies
    return out


def run_orthanc_pair(args, files, workdir: Path, repetition: int) -> dict:
    n = len(files)
    results = {}
    log_config = workdir / "storescu-log.cfg"
    log_config.write_text(LOG_CONFIG)
    for path in ("direct", "sync", "queued"):
        gw_port = h.free_port()
        pacs = h.Orthanc(workdir / f"orthanc-{path}-{repetition}", gateway_port=gw_port).start()
        gateway = None
        try:
            if path == "direct":
                seconds, result, latencies = send(pacs.dicom_port, files, pacs.aet, log_config)
            else:
                gateway = h.Gateway(workdir / f"gw-orthanc-{path}-{repetition}", upstream_port=pacs.dicom_port,
                                    upstream_aet=pacs.aet, port=gw_port, log_level=args.gateway_log_level,
                                    forward=path).start()
                seconds, result, latencies = send(gateway.port, files, "GATEWAY", log_config)
                if path == "queued" and result.all_succeeded(n):
                    started = time.monotonic()
                    while pacs.instance_count() < n:
                        if time.monotonic() - started > 600:
                            raise SystemExit(f"queued: Orthanc holds {pacs.instance_count()} of {n} after 600 s")
                        time.sleep(0.1)
                    results["queued_drain_s"] = time.monotonic() - started
            verify(f"{path} to Orthanc", result, pacs.instance_count(), n)
            results[f"{path}_s"] = seconds
            results[f"{path}_lat"] = latencies
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
    parser.add_argument("--min-ratio", type=float, default=None,
                        help="exit 1 if sync gateway/direct throughput is below this")
    parser.add_argument("--min-queued-ratio", type=float, default=None,
                        help="exit 1 if queued gateway/direct throughput (until the last Success) is below this")
    parser.add_argument("--gateway-log-level", default="info")
    parser.add_argument("--cold-spool", action="store_true",
                        help="measure queued on a new spool (segments pre-allocated during the run) instead of "
                             "one set up by an earlier send")
    parser.add_argument("--reference-bin", type=Path,
                        help="also send through this pacsgw build (an earlier release, say) in its synchronous mode, "
                             "in the same repetitions: its ratio, and this build's against it, are printed")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    args = parser.parse_args()

    files = sorted((h.cache_dir() / "bench").glob("ct_*.dcm"))[:args.count]
    if len(files) < args.count:
        raise SystemExit(f"need {args.count} files in {h.cache_dir() / 'bench'}: run scripts/fetch-test-data.sh")
    total_bytes = sum(f.stat().st_size for f in files)
    workdir = h.make_workdir("bench")
    print(f"pacsgw: {h.pacsgw_bin()}")
    if args.reference_bin:
        if not os.access(args.reference_bin, os.X_OK):
            raise SystemExit(f"--reference-bin {args.reference_bin} is not an executable")
        print(f"reference build (sync): {args.reference_bin.resolve()}")
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
    labels = {"direct": "direct", "sync": "via pacsgw sync", "queued": "via pacsgw queued",
              "reference": "via reference sync"}
    print()
    print(f"{'PACS':<10} {'path':<19} {'median s':>9} {'inst/s':>8} {'MB/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
          f"   all runs (s)")
    failures = []
    for target, runs in rows.items():
        medians, entry = {}, {"runs": runs}
        for path in ("direct", "sync", "queued", "reference"):
            if f"{path}_s" not in runs[0]:
                continue
            times = [r[f"{path}_s"] for r in runs]
            latencies = [x for r in runs for x in r[f"{path}_lat"]]
            med = statistics.median(times)
            medians[path] = med
            p50, p99 = percentile(latencies, 0.50) * 1e3, percentile(latencies, 0.99) * 1e3
            entry[f"median_{path}_s"], entry[f"{path}_p50_ms"], entry[f"{path}_p99_ms"] = med, p50, p99
            print(f"{target:<10} {labels[path]:<19} {med:9.2f} {len(files) / med:8.0f} {total_bytes / 1e6 / med:8.1f} "
                  f"{p50:8.2f} {p99:8.2f}   {', '.join(f'{t:.2f}' for t in times)}")
        if "queued_drain_s" in runs[0]:
            drain = statistics.median(r["queued_drain_s"] for r in runs)
            entry["median_queued_drain_s"] = drain
            print(f"{target:<10} {'queued: delivered':<19} the PACS had every instance {drain:.2f} s after the "
                  f"last Success (median)")
        for path, minimum in (("sync", args.min_ratio), ("queued", args.min_queued_ratio), ("reference", None)):
            if path not in medians:
                continue
            # Each repetition runs direct and through the gateway back to back: its own ratio is the pair
            # least affected by other load on the machine; the median of the pairs is the figure judged.
            pairs = [r["direct_s"] / r[f"{path}_s"] for r in runs]
            ratio = statistics.median(pairs)
            entry[f"{path}_ratio"] = ratio
            entry[f"{path}_pair_ratios"] = pairs
            entry[f"{path}_ratio_of_medians"] = medians["direct"] / medians[path]
            target_text = f" (target >= {minimum})" if minimum is not None else ""
            print(f"{target:<10} {path + ' ratio':<19} throughput via pacsgw / direct = {ratio:.2f}{target_text}"
                  f"   pairs: {', '.join(f'{p:.2f}' for p in pairs)}; ratio of medians {medians['direct'] / medians[path]:.2f}")
            if minimum is not None and ratio < minimum:
                failures.append(f"{target} {path} ratio {ratio:.2f} below {minimum}")
        if "reference" in medians:
            # This build's sync against the reference build's, repetition by repetition (>1: faster).
            pairs = [r["reference_s"] / r["sync_s"] for r in runs]
            entry["sync_vs_reference"] = statistics.median(pairs)
            print(f"{target:<10} {'sync vs reference':<19} throughput this build / reference build = "
                  f"{statistics.median(pairs):.2f}   pairs: {', '.join(f'{p:.2f}' for p in pairs)}")
        report["targets"][target] = entry
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    for failure in failures:
        print(f"FAIL: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
