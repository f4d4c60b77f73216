"""SR speed and memory on this machine, per architecture and scale: a 64x64 image (the generator's
output size) upscaled, throughput in output megapixels per second at 256 px and 1024 px outputs,
and the peak memory of one 4096x4096 output (measured in a fresh process each, so one case's
allocations do not hide another's): the process's peak, and (+MB) what the upscale added to it.

    python benchmarks/sr_speed.py [--weights-dir weights] [--repeats 30] [--json benchmarks/sr_speed.json]

Uses every shipped network (FSRCNN and SRCNN files in the weights folder) and bicubic. Target
(issue 15): x4 of a 64 px image in at most 5 ms median with the network `t2i generate` uses.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from PIL import Image

from srcnn.upscale import PREFERENCE, Upscaler, shipped_weights

TARGET_MS_X4 = 5.0
BIG_OUTPUT = 4096


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up: first-call allocations and kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def noise_image(side: int, seed: int = 0) -> Image.Image:
    generator = torch.Generator().manual_seed(seed)
    return Image.fromarray((torch.rand(side, side, 3, generator=generator) * 255).byte().numpy())


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not getrusage: ru_maxrss survives exec, so a
    child started by a big parent would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load(method: str, scale: int, weights_dir: Path) -> Upscaler:
    if method == "bicubic":
        return Upscaler.load(scale, method="bicubic")
    return Upscaler.load(scale, weights=shipped_weights(weights_dir, scale, method))


def peak_memory_child(method: str, scale: int, weights_dir: Path) -> None:
    """Run in a fresh process: print the peak resident memory (MB) of one BIG_OUTPUT-square upscale
    above what loading the upscaler and the input took."""
    upscaler = load(method, scale, weights_dir)
    image = noise_image(BIG_OUTPUT // scale)
    upscaler.upscale_images([noise_image(64)])  # warm-up, so the figure is the big image's own cost
    before = peak_rss_mb()
    start = time.perf_counter()
    out = upscaler.upscale_images([image])[0]
    seconds = time.perf_counter() - start
    after = peak_rss_mb()
    print(json.dumps({"peak_mb": round(after, 1), "extra_mb": round(after - before, 1),
                      "seconds": round(seconds, 2), "size": list(out.size)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights-dir", type=Path, default=Path(__file__).resolve().parent.parent / "weights")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/sr_speed.json"))
    parser.add_argument("--peak-memory-of", nargs=2, metavar=("METHOD", "SCALE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak_memory_of:
        peak_memory_child(args.peak_memory_of[0], int(args.peak_memory_of[1]), args.weights_dir)
        return

    small = noise_image(64)
    rows = []
    for scale in (2, 3, 4):
        methods = [arch for arch in PREFERENCE if shipped_weights(args.weights_dir, scale, arch)] + ["bicubic"]
        for method in methods:
            upscaler = load(method, scale, args.weights_dir)
            single = timed(lambda: upscaler.upscale_images([small]), args.repeats)
            row = {"scale": scale, "method": upscaler.describe(),
                   "ms_64px_median": statistics.median(single) * 1000,
                   "ms_64px_p95": sorted(single)[int(0.95 * (len(single) - 1))] * 1000}
            for out_side, count in ((256, 8), (1024, 1)):
                images = [noise_image(out_side // scale, seed=i) for i in range(count)]
                bulk = timed(lambda: upscaler.upscale_images(images), max(3, args.repeats // 10))
                row[f"mp_per_s_{out_side}px"] = count * (out_side // scale * scale) ** 2 / 1e6 / statistics.median(bulk)
            child = subprocess.run(
                [sys.executable, __file__, "--weights-dir", str(args.weights_dir), "--peak-memory-of", method, str(scale)],
                capture_output=True, text=True, check=True,
            )
            row[f"peak_{BIG_OUTPUT}px"] = json.loads(child.stdout.strip().splitlines()[-1])
            rows.append(row)
    machine = f"{platform.machine()} {platform.processor() or ''}".strip() + f", {torch.get_num_threads()} torch threads, torch {torch.__version__}"
    print(f"SR speed ({machine})")
    print(f"{'scale':>5}  {'64px ms':>8}  {'p95':>6}  {'MP/s 256':>8}  {'MP/s 1024':>9}  {'4096px: s':>9}  {'peak MB':>7}  {'(+MB)':>6}  method")
    for r in rows:
        big = r[f"peak_{BIG_OUTPUT}px"]
        print(f"{r['scale']:>5}  {r['ms_64px_median']:>8.2f}  {r['ms_64px_p95']:>6.2f}  {r['mp_per_s_256px']:>8.2f}  "
              f"{r['mp_per_s_1024px']:>9.2f}  {big['seconds']:>9.2f}  {big['peak_mb']:>7.0f}  {big['extra_mb']:>6.0f}  {r['method']}")
    shipped_x4 = next(r for r in rows if r["scale"] == 4)
    verdict = "met" if shipped_x4["ms_64px_median"] <= TARGET_MS_X4 else "MISSED"
    print(f"x4 of a 64 px image with {shipped_x4['method']}: {shipped_x4['ms_64px_median']:.2f} ms median "
          f"(target <= {TARGET_MS_X4} ms: {verdict})")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
