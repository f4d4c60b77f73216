"""Generation speed and memory with the shipped weights.

    python benchmarks/generate_speed.py [--repeats 20] [--cold-repeats 5] [--device cpu] [--profile 15] [--json benchmarks/generate_speed.json]

- warm pipeline latency (median and p95 over ``--repeats``; the first call is a warm-up): one
  caption at 64 px, one caption upscaled x4 by the shipped SR network, 64 different captions in one batch at 64 px
  (caption encoding included in every figure);
- cold: the wall time of the command ``t2i generate "pink petals" --upscale 4`` in a fresh process,
  median over ``--cold-repeats``, and that process's peak resident memory.

``--cold-repeats 0`` skips the cold runs (the GPU script does: they would time the CPU's start);
``--profile N`` prints the N costliest operators of one 64-caption draw (torch.profiler).
Prints one table and writes JSON; benchmarks/README.md has the targets and the latest figures.
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


AFTER_TORCH = """
import sys, time
import torch
start = time.perf_counter()
out = sys.argv[1]
sys.argv = ["t2i", "generate", "pink petals", "--upscale", "4", "--out", out, "--force"]
from t2i_cli.cli import main
try:
    main()
except SystemExit as exit:
    assert not exit.code, exit.code
print(time.perf_counter() - start)
"""


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
    parser.add_argument("--device", default="cpu", help="Where the warm pipeline runs (cpu, cuda, ...).")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="Print the N costliest operators of a 64-caption draw.")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/generate_speed.json"))
    args = parser.parse_args()

    cold, torch_alone, after_torch, peak_kb = [], [], [], 0
    if args.cold_repeats:
        t2i = shutil.which("t2i") or sys.exit("the t2i command is not on PATH: pip install -e .")
        with tempfile.TemporaryDirectory() as folder:
            out = os.path.join(folder, "p.png")
            for _ in range(args.cold_repeats):
                start = time.perf_counter()
                subprocess.run([t2i, "generate", "pink petals", "--upscale", "4", "--out", out, "--force"], check=True, capture_output=True)
                cold.append(time.perf_counter() - start)
                peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
                start = time.perf_counter()
                subprocess.run([sys.executable, "-c", "import torch"], check=True)
                torch_alone.append(time.perf_counter() - start)
                # The same command in one process, timed from just after `import torch`: what the
                # project adds to torch's own start, without the noise of two processes' starts.
                timed_run = subprocess.run([sys.executable, "-c", AFTER_TORCH, out], check=True, capture_output=True, text=True)
                after_torch.append(float(timed_run.stdout.strip().splitlines()[-1]))

    import torch

    from t2i_cli.devices import keep_freed_memory
    from t2i_cli.pipeline import T2IPipeline

    keep_freed_memory()  # as the t2i command does for its process

    pipeline = T2IPipeline.from_pretrained(device=args.device)
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        pipeline(CAPTIONS, seed=1)
        with profile(activities=[ProfilerActivity.CPU]) as recorded:
            pipeline(CAPTIONS, seed=1)
        print(recorded.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile))
    rows = {
        "1 caption, 64 px": timed(lambda: pipeline("this flower has pink petals", seed=1), args.repeats),
        "1 caption, x4 shipped SR (256 px)": timed(lambda: pipeline("this flower has pink petals", seed=1, upscale=4), args.repeats),
        "64 captions, 64 px": timed(lambda: pipeline(CAPTIONS, seed=1), args.repeats),
    }
    warm_peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report = {
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "warm": rows,
        "device": str(pipeline.device),
        "cold_generate_upscale4_s": {"median": round(statistics.median(cold), 2), "all": [round(c, 2) for c in cold]} if cold else None,
        "cold_import_torch_s": round(statistics.median(torch_alone), 2) if cold else None,
        "cold_after_import_torch_s": round(statistics.median(after_torch), 3) if cold else None,
        "cold_peak_rss_mb": round(peak_kb / 1024) if cold else None, "warm_process_peak_rss_mb": round(warm_peak_mb),
    }
    print(f"\n{'warm pipeline':<32} {'median':>9} {'p95':>9}")
    for name, row in rows.items():
        print(f"{name:<32} {row['median_ms']:>7.1f}ms {row['p95_ms']:>7.1f}ms")
    if cold:
        print(f"\ncold `t2i generate \"pink petals\" --upscale 4`: median {report['cold_generate_upscale4_s']['median']:.2f} s "
              f"(runs: {', '.join(f'{c:.2f}' for c in cold)}), peak RSS {report['cold_peak_rss_mb']} MB; "
              f"`python -c 'import torch'` {report['cold_import_torch_s']:.2f} s; "
              f"the command after `import torch`, in one process: {report['cold_after_import_torch_s']:.3f} s")
    print(f"warm benchmark process peak RSS: {report['warm_process_peak_rss_mb']} MB")
    args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
