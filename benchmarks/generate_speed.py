"""Generation speed and memory with the shipped weights.

    python benchmarks/generate_speed.py [--repeats 20] [--cold-repeats 5] [--json benchmarks/generate_speed.json]

- warm pipeline latency (median and p95 over ``--repeats``; the first call is a warm-up): one
  caption at 64 px, one caption upscaled x4 by the shipped SR network, 64 different captions in one batch at 64 px
  (caption encoding included in every figure);
- cold: the wall time of the command ``t2i generate "pink petals" --upscale 4`` in a fresh process,
  median over ``--cold-repeats``, and that process's peak resident memory.

Targets (issue 8, 2-core CPU): 1 caption + x4 <= 100 ms; 64 captions <= 300 ms; cold <= 4 s;
generation peak memory <= 1.5 GB. Prints one table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CAPTIONS = [
    f"this flower has {colour} petals and a {centre} center"
    for colour in ("pink", "white", "yellow", "red", "purple", "orange", "blue", "lavender")
    for centre in ("yellow", "green", "dark", "white", "orange", "black", "brown", "red")
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(fn, repeats: int) -> dict:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - start))
    return {"median_ms": round(statistics.median(times), 1), "p95_ms": round(percentile(times, 0.95), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--cold-repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/generate_speed.json"))
    args = parser.parse_args()

    t2i = shutil.which("t2i") or sys.exit("the t2i command is not on PATH: pip install -e .")
    cold, peak_kb = [], 0
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.cold_repeats):
            start = time.perf_counter()
            subprocess.run([t2i, "generate", "pink petals", "--upscale", "4", "--out", os.path.join(folder, "p.png"), "--force"],
                           check=True, capture_output=True)
            cold.append(time.perf_counter() - start)
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss

    import torch

    from t2i_cli.pipeline import T2IPipeline

    pipeline = T2IPipeline.from_pretrained(device="cpu")
    rows = {
        "1 caption, 64 px": timed(lambda: pipeline("this flower has pink petals", seed=1), args.repeats),
        "1 caption, x4 shipped SR (256 px)": timed(lambda: pipeline("this flower has pink petals", seed=1, upscale=4), args.repeats),
        "64 captions, 64 px": timed(lambda: pipeline(CAPTIONS, seed=1), args.repeats),
    }
    warm_peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report = {
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "warm": rows,
        "cold_generate_upscale4_s": {"median": round(statistics.median(cold), 2), "all": [round(c, 2) for c in cold]},
        "cold_peak_rss_mb": round(peak_kb / 1024), "warm_process_peak_rss_mb": round(warm_peak_mb),
    }
    print(f"\n{'warm pipeline':<32} {'median':>9} {'p95':>9}")
    for name, row in rows.items():
        print(f"{name:<32} {row['median_ms']:>7.1f}ms {row['p95_ms']:>7.1f}ms")
    print(f"\ncold `t2i generate \"pink petals\" --upscale 4`: median {report['cold_generate_upscale4_s']['median']:.2f} s "
          f"(runs: {', '.join(f'{c:.2f}' for c in cold)}), peak RSS {report['cold_peak_rss_mb']} MB")
    print(f"warm benchmark process peak RSS: {report['warm_process_peak_rss_mb']} MB")
    args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
