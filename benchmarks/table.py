"""Markdown tables from a results file of ``python -m benchmarks``: ``python -m benchmarks.table results.json``."""

from __future__ import annotations

import json
import sys


def gibbs_table(results: dict) -> str:
    lines = [
        "| dtype | connectivity | chains B | engine (chain-sweeps/s) | × torch | × torch CSR | × rbms | × numpy "
        "| engine / GEMM-only | × own dense path |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results["gibbs"]:
        r = row["ratio_engine_over"]

        def fmt(key):
            return f"{r[key]:.2f}" if key in r else "–"

        lines.append(
            f"| {row['dtype']} | {row['connectivity']} | {row['n_chains']} | {row['chain_sweeps_per_s']['engine']:,.0f} "
            f"| {fmt('torch')} | {fmt('torch_csr')} | {fmt('rbms')} | {fmt('numpy')} | {fmt('gemm_only')} "
            f"| {fmt('engine_dense')} |"
        )
    return "\n".join(lines)


def other_rows(results: dict) -> str:
    lines = []
    for row in results.get("exact", []):
        lines.append(f"- exact log Z, 784 x {row['n_hidden']}: {row['seconds']:.2f} s")
    if "pcd_epoch_seconds" in results:
        secs = ", ".join(f"{k} {v:.1f} s" for k, v in results["pcd_epoch_seconds"].items())
        speed = ", ".join(f"{v:.2f}x {k}" for k, v in results.get("pcd_epoch_speedup_engine_over", {}).items())
        lines.append(f"- PCD-10 epoch, MNIST 60k, N_h = 500, batch 100, 1000 chains: {secs} (engine: {speed})")
    if "ais_seconds_500x14500" in results:
        lines.append(f"- AIS, 784 x 500, 500 chains x 14,500 betas: {results['ais_seconds_500x14500']:.0f} s")
    if "ais_checkpoint_overhead" in results:
        over = results["ais_checkpoint_overhead"]
        lines.append(f"- AIS with a checkpoint, time over time without: {over['default']:.3f} at the default "
                     f"interval, {over['every_chunk']:.3f} with a write after every chunk")
    if "memory" in results:
        m = results["memory"]
        lines.append(f"- peak RSS growth of a B = 5000 sweep: {m['rss_growth_bytes'] / 2**20:.1f} MiB "
                     f"(arrays it must hold: {m['arrays_bytes'] / 2**20:.1f} MiB)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0]) as f:
        results = json.load(f)
    print(f"{results['date']}, {results['machine']['platform']}, {results['machine']['cpus']} CPUs, "
          f"threads {results['threads']}; command: `{results['command']}`\n")
    print(gibbs_table(results))
    print()
    print(other_rows(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
