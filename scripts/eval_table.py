#!/usr/bin/env python3
"""Prints the cross-backend table of docs/evaluation.md from a `pacsgw eval` JSON file (scripts/eval-table.sh)."""
import json
import sys


def fmt(value, digits=2, suffix=""):
    if value is None:
        return "∞" if suffix == " dB" else "—"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    return f"{value:,.{digits}f}{suffix}".replace(",", " ")


def pair(b, a, c, digits=2, suffix=""):
    return f"{fmt(b.get(a), digits, suffix)} / {fmt(b.get(c), digits)}"


def main(path):
    report = json.load(open(path))
    backends = report["backends"]
    rows = [
        ("Entropy of the cipher image, 8-bit view (top byte) / full", lambda b: pair(b, "entropy", "entropy_full", 4)),
        ("Correlation h / v / d, all adjacent pairs (8-bit)",
         lambda b: " / ".join(fmt(b.get(k), 4) for k in ("corr_h_all", "corr_v_all", "corr_d_all"))),
        ("NPCR % / UACI %, one sample changed, same key and nonce",
         lambda b: pair(b, "npcr", "uaci", 3)),
        ("… Wu α = 0.05 pass rate NPCR / UACI (repeated runs)",
         lambda b: pair(b, "npcr_runs_pass_rate", "uaci_runs_pass_rate", 2)),
        ("NPCR % / UACI %, fresh nonce (as deployed)", lambda b: pair(b, "npcr_fresh_nonce", "uaci_fresh_nonce", 3)),
        ("Key sensitivity, one key bit: NPCR % / UACI %",
         lambda b: pair(b, "key_sensitivity_npcr", "key_sensitivity_uaci", 3)),
        ("Decryption PSNR dB / SSIM, 8-bit view (frame min–max window), model's own",
         lambda b: pair(b, "decrypt_psnr", "decrypt_ssim", 2, " dB")),
        ("Decryption PSNR dB / SSIM, full range (F = 2^BitsStored − 1)",
         lambda b: pair(b, "decrypt_psnr_full_range", "decrypt_ssim_full_range", 2, " dB")),
        ("Wrong key (unverified decryption), PSNR 8-bit", lambda b: fmt(b.get("wrong_key_psnr"), 2, " dB")),
        ("Crop ¼ × ¼ of the cipher image, unverified decryption PSNR", lambda b: fmt(b.get("crop_psnr"), 2, " dB")),
        ("Salt & pepper 0.02 %, unverified decryption PSNR", lambda b: fmt(b.get("salt_pepper_psnr"), 2, " dB")),
        ("Gaussian noise var 0.0005, unverified decryption PSNR", lambda b: fmt(b.get("gaussian_psnr"), 2, " dB")),
        ("Wrong key / tampering refused by the product", lambda b: pair(b, "wrong_key_rejected", "tamper_detected")),
        ("Encrypt / decrypt images/s, one core (thread CPU)",
         lambda b: pair(b, "encrypt_images_per_s", "decrypt_images_per_s", 2)),
        ("Encrypt / decrypt images/s, wall clock", lambda b: pair(b, "encrypt_images_per_s_wall", "decrypt_images_per_s_wall", 2)),
        ("Model file (bytes)", lambda b: fmt(b.get("model_size_bytes"), 0)),
        ("Exact-retrieval envelope, mean bytes per image", lambda b: fmt(b.get("envelope_bytes_mean"), 0)),
        ("**Bit-exact through the gateway**", lambda b: fmt(b.get("bit_exact"))),
    ]
    print("| Metric | " + " | ".join(f"`{b['backend']}`" for b in backends) + " |")
    print("|---|" + "---|" * len(backends))
    for label, cell in rows:
        print(f"| {label} | " + " | ".join(cell(b) for b in backends) + " |")
    inputs = ", ".join(p.split("/")[-1] for p in report["inputs"])
    print(f"\nInputs: {inputs}; generated {report['generated']}, seed {int(report['seed'])}, "
          f"{report['tensor_threads']} tensor thread(s), device {report['device']}.")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: eval_table.py EVAL.json")
    main(sys.argv[1])
