#!/usr/bin/env python3
"""Store throughput with the master key in a file versus in a PKCS#11 token (SoftHSM2), in one run.

A fresh Orthanc and two gateways are started: one with a master key file, one with its master key in a
SoftHSM2 token (private token directory). The same number of new studies (each needs a new data key, hence
one wrap and one unwrap in the token) is sent through each, alternating; every instance must reach the PACS.
Prints instances/s for both and their ratio (median of the runs). The data key wrap rate itself is measured
by build/tests/bench_master_key.

  PACSGW_BIN=build/pacsgw python3 tests/bench/bench_hsm.py [--studies 20] [--slices 4] [--runs 3]
"""

import argparse
import os
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import pacsgw_harness as h  # noqa: E402
import test_hsm_master_key as hsm  # noqa: E402
from bench_shared_keystore import make_studies, send_parallel  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--studies", type=int, default=20, help="new studies per run (split over two senders)")
    parser.add_argument("--slices", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    workdir = h.make_workdir("bench-hsm")
    tokens = workdir / "tokens"
    tokens.mkdir(mode=0o700)
    conf = workdir / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    pacs = h.Orthanc(workdir / "pacs")
    file_gw = hsm.HsmGateway(workdir / "file", key_label=None, upstream_port=0, log_level="info")
    token_gw = hsm.HsmGateway(workdir / "token", upstream_port=0, log_level="info")
    try:
        init = h.run_tool(["softhsm2-util", "--init-token", "--free", "--label", hsm.TOKEN, "--pin", hsm.PIN,
                           "--so-pin", "so-" + hsm.PIN])
        if init.returncode != 0:
            raise AssertionError(init.describe())
        pacs.start()
        for gateway in (file_gw, token_gw):
            gateway.upstream_port = pacs.dicom_port
        token_gw.write_config()
        created = token_gw.cli("keys", "hsm-init", "--config", token_gw.config_path)
        if created.returncode != 0:
            raise AssertionError(created.describe())
        file_gw.start()
        token_gw.start()

        rates = {"file": [], "pkcs11": []}
        per_run = args.studies * args.slices
        for run in range(args.runs):
            for label, gateway in (("file", file_gw), ("pkcs11", token_gw)):
                studies = make_studies(h.cache_dir() / "bench", workdir / f"files-{run}-{label}", args.studies,
                                       args.slices)
                half = len(studies) // 2
                a = [f for s in studies[:half] for f in s]
                b = [f for s in studies[half:] for f in s]
                seconds = send_parallel([(gateway.port, a), (gateway.port, b)])
                rates[label].append(per_run / seconds)
                print(f"run {run + 1} {label:6}: {per_run} instances of {args.studies} new studies in "
                      f"{seconds:.2f} s = {per_run / seconds:.1f} instances/s", flush=True)
        m_file, m_token = statistics.median(rates["file"]), statistics.median(rates["pkcs11"])
        print(f"median: master key file {m_file:.1f} instances/s, PKCS#11 token {m_token:.1f} instances/s, "
              f"ratio {m_token / m_file:.2f}")
        return 0
    finally:
        for gateway in (file_gw, token_gw):
            gateway.stop()
        pacs.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
