"""SRCNN speed on this machine: a 64x64 image upscaled x2/x3/x4 (the generator's output size), and
throughput in output megapixels per second on a batch of 256x256 images.

    python benchmarks/sr_speed.py [--weights-dir weights] [--repeats 30] [--json out.json]

Prints one table and writes JSON. Uses the shipped weights (bicubic where a scale has none, which
the table says). Target (issue 4): x4 of a 64x64 image under 20 ms on the 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from PIL import Image

from srcnn.upscale import Upscaler


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up: first-call allocations and kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights-dir", type=Path, default=Path(__file__).resolve().parent.parent / "weights")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/sr_speed.json"))
    args = parser.parse_args()

    torch.manual_seed(0)
    small = Image.fromarray((torch.rand(64, 64, 3) * 255).byte().numpy())
    batch = [Image.fromarray((torch.rand(256, 256, 3) * 255).byte().numpy()) for _ in range(8)]
    rows = []
    for scale in (2, 3, 4):
        upscaler = Upscaler.load(scale, weights_dir=args.weights_dir)
        single = timed(lambda: upscaler.upscale_images([small]), args.repeats)
        bulk = timed(lambda: upscaler.upscale_images(batch), max(3, args.repeats // 10))
        megapixels = len(batch) * (256 * scale) ** 2 / 1e6
        rows.append({
            "scale": scale,
            "method": upscaler.describe(),
            "ms_64px_median": statistics.median(single) * 1000,
            "ms_64px_p95": sorted(single)[int(0.95 * (len(single) - 1))] * 1000,
            "output_megapixels_per_s": megapixels / statistics.median(bulk),
        })
    machine = f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
    print(f"SRCNN speed ({machine})")
    print(f"{'scale':>5}  {'64px median ms':>14}  {'p95 ms':>7}  {'out MP/s':>8}  method")
    for r in rows:
        print(f"{r['scale']:>5}  {r['ms_64px_median']:>14.1f}  {r['ms_64px_p95']:>7.1f}  {r['output_megapixels_per_s']:>8.2f}  {r['method']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
