#!/usr/bin/env python3
"""One large uncompressed multi-frame object: storescu -> storescp directly against storescu -> pacsgw ->
storescp, in the same run. Reports seconds, MiB/s and the ratio, and the peak RSS of the receiving
process (storescp directly, pacsgw through the gateway; sampled every 50 ms). The gateway streams the
object (limits.stream_above_mb) and, for comparison, holds it whole (stream_above_mb: 0). Every run must
deliver the object; through the gateway it must carry the key-reference block.

  PACSGW_BIN=build/pacsgw python3 tests/bench/bench_large_object.py [--frames 2048] [--repeat 3]
"""

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import pacsgw_harness as h  # noqa: E402
import large_object_helpers as lo  # noqa: E402
from bench_store import PACS_AET, StoreScp  # noqa: E402

import pydicom  # noqa: E402


class BenchGateway(h.Gateway):
    stream_above_mb = 64

    def config_yaml(self) -> str:
        base = super().config_yaml().replace("gateway:\n", "gateway:\n  dimse_timeout_s: 600\n", 1)
        return base + (f"limits:\n  stream_above_mb: {self.stream_above_mb}\n  max_object_mb: 4000\n"
                       "  max_association_mb: 4000\n  max_in_flight_mb: 8000\n")


def timed_send(port: int, called: str, source: Path, pid: int) -> tuple:
    with lo.RssSampler(pid) as sampler:
        started = time.monotonic()
        result = h.storescu(port, [source], called=called, timeout=1800)
        seconds = time.monotonic() - started
    if not result.all_succeeded(1):
        raise SystemExit(f"store failed: {result.describe()}")
    return seconds, sampler.peak_mib


def received_one(scp: StoreScp, encrypted: bool):
    files = scp.received_files()
    if len(files) != 1:
        raise SystemExit(f"storescp received {len(files)} files, expected 1")
    has_block = bool(h.key_reference(pydicom.dcmread(str(files[0]), stop_before_pixels=True)))
    if has_block != encrypted:
        raise SystemExit(f"received object {'lacks' if encrypted else 'has'} a key-reference block")
    files[0].unlink()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=2048, help="512 x 512 x 16-bit frames (2048 = 1 GiB)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    workdir = h.make_workdir("bench-large-object")
    try:
        source = workdir / "large.dcm"
        lo.write_multiframe(source, args.frames)
        mib = source.stat().st_size / 2**20
        rows = {"direct": [], "streamed": [], "in memory": []}
        for repetition in range(args.repeat):
            scp = StoreScp(workdir / f"direct-{repetition}", ignore=False).start()
            try:
                rows["direct"].append(timed_send(scp.port, PACS_AET, source, scp.proc.pid))
                received_one(scp, encrypted=False)
            finally:
                scp.stop()
            for label, threshold in (("streamed", 64), ("in memory", 0)):
                scp = StoreScp(workdir / f"{label.replace(' ', '-')}-{repetition}", ignore=False).start()
                gateway = BenchGateway(workdir / f"gw-{label.replace(' ', '-')}-{repetition}", upstream_port=scp.port,
                                       upstream_aet=PACS_AET, log_level="info")
                gateway.stream_above_mb = threshold
                try:
                    gateway.start()
                    rows[label].append(timed_send(gateway.port, "GATEWAY", source, gateway.proc.pid))
                    received_one(scp, encrypted=True)
                finally:
                    gateway.stop()
                    scp.stop()
                    shutil.rmtree(gateway.workdir, ignore_errors=True)
        print(f"\none object of {mib:.0f} MiB ({args.frames} frames 512 x 512 x 16 bit, Explicit VR LE), "
              f"storescp writing files, {args.repeat} repetitions, median:")
        print("| path | seconds | MiB/s | time vs direct | peak RSS of the receiver |")
        print("|---|---|---|---|---|")
        direct = statistics.median(s for s, _ in rows["direct"])
        for label, runs in rows.items():
            seconds = statistics.median(s for s, _ in runs)
            rss = statistics.median(r for _, r in runs)
            receiver = "storescp" if label == "direct" else "pacsgw"
            print(f"| {label} | {seconds:.1f} | {mib / seconds:.0f} | {seconds / direct:.2f} | "
                  f"{rss:.0f} MiB ({receiver}) |")
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
