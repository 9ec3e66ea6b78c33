#!/usr/bin/env python3
"""Memory of the gateway for one large uncompressed multi-frame object, stored through it (sync and
queued) and retrieved through it with C-GET by a workstation allowed to decrypt. Prints the seconds and
the peak RSS of `pacsgw serve` (sampled every 100 ms) for each step, and checks that the retrieved pixels
are the original ones bit for bit. Both the store paths and retrieval keep the object out of memory
(limits.stream_above_mb): on retrieval the ciphertext waits in a file, its tag is verified, and it is
decrypted piece by piece while it is sent. `--stream-above-mb 0` measures the in-memory path for
comparison (the object held whole on the way in and on the way out).

  PACSGW_BIN=build/pacsgw python3 tests/bench/bench_large_retrieve.py [--frames 1024]
"""

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
import pacsgw_harness as h  # noqa: E402
import retrieve_helpers as rh  # noqa: E402
import large_object_helpers as lo  # noqa: E402

import pydicom  # noqa: E402


class BenchGateway(rh.RetrieveGateway):
    stream_above_mb = 16

    def config_yaml(self) -> str:
        base = super().config_yaml().replace("gateway:\n", "gateway:\n  dimse_timeout_s: 600\n", 1)
        return base + (f"limits:\n  stream_above_mb: {self.stream_above_mb}\n  max_object_mb: 4000\n"
                       "  max_association_mb: 8000\n  max_in_flight_mb: 8000\n")


def run(mode: str, frames: int, workdir: Path) -> dict:
    gateway_port = h.free_port()
    ws_port = h.free_port()
    pacs = rh.RetrieveOrthanc(workdir / "pacs", gateway_port=gateway_port)
    spool = {"retry_initial_s": 1, "retry_max_s": 2} if mode == "queued" else None
    gateway = BenchGateway(workdir / "gateway", upstream_port=pacs.dicom_port, upstream_aet=pacs.aet,
                           port=gateway_port, log_level="info", forward=mode if mode == "queued" else None,
                           spool=spool, workstations=[("WS1", h.LOOPBACK, ws_port, "decrypt")])
    pacs.start()
    gateway.start()
    try:
        source = workdir / "large.dcm"
        plain_sha = lo.write_multiframe(source, frames)
        ds = pydicom.dcmread(str(source), stop_before_pixels=True)
        size_mib = source.stat().st_size / 2**20
        pid = gateway.proc.pid
        idle = lo.rss_kib(pid)["VmRSS"] / 1024
        t0 = time.monotonic()
        with lo.RssSampler(pid) as storing:
            stored = h.storescu(gateway.port, [source], timeout=900)
            if not stored.all_succeeded(1):
                raise SystemExit(f"{mode}: store failed: {stored.describe()}")
            deadline = time.monotonic() + 600
            while pacs.find_instance(ds.SOPInstanceUID) is None:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{mode}: the object never reached the PACS")
                time.sleep(0.25)
        store_s = time.monotonic() - t0
        source.unlink()
        out = workdir / "retrieved"
        keys = {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": ds.StudyInstanceUID}
        t1 = time.monotonic()
        with lo.RssSampler(pid) as retrieving:
            result = rh.getscu(gateway.port, out, keys, calling="WS1", timeout=900)
        retrieve_s = time.monotonic() - t1
        files = sorted(out.glob("*"))
        if len(files) != 1:
            raise SystemExit(f"{mode}: C-GET delivered {len(files)} files\n{result.describe()}")
        if lo.pixel_sha256(files[0]) != plain_sha:
            raise SystemExit(f"{mode}: retrieved pixels differ from the original")
        files[0].unlink()
        return {"mode": mode, "size_mib": size_mib, "idle": idle, "store_s": store_s, "store_peak": storing.peak_mib,
                "retrieve_s": retrieve_s, "retrieve_peak": retrieving.peak_mib}
    finally:
        gateway.stop()
        pacs.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=1024, help="512 x 512 x 16-bit frames (1024 = 512 MiB)")
    parser.add_argument("--stream-above-mb", type=int, default=16,
                        help="limits.stream_above_mb of the gateway (0: every object held in memory)")
    args = parser.parse_args()
    BenchGateway.stream_above_mb = args.stream_above_mb
    rows = []
    for mode in ("sync", "queued"):
        workdir = h.make_workdir(f"bench-large-retrieve-{mode}")
        rows.append(run(mode, args.frames, workdir))
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{'mode':8} {'object':>8} {'idle RSS':>9} {'store (to PACS)':>16} {'peak RSS':>9} "
          f"{'C-GET':>8} {'peak RSS':>9} {'RSS/object':>10}")
    for r in rows:
        print(f"{r['mode']:8} {r['size_mib']:6.0f} MiB {r['idle']:5.0f} MiB {r['store_s']:14.1f} s "
              f"{r['store_peak']:5.0f} MiB {r['retrieve_s']:6.1f} s {r['retrieve_peak']:5.0f} MiB "
              f"{r['retrieve_peak'] / r['size_mib']:10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
