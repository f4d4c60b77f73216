"""20 concurrent gradio_client calls against the demo: every one must succeed with its own caption
and seed, and the latency percentiles are reported.

    python benchmarks/demo_concurrency.py [--checkpoint RUN] [--calls 20] [--upscale 4]

Starts the demo in-process on a free loopback port, fires the calls from a thread pool at once,
checks each answer (seeds, sizes, and pixels equal to a sequential call with the same request),
prints one table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gradio_client import Client
from PIL import Image

from t2i_cli.pipeline import T2IPipeline
from t2i_cli.web import build_demo

CAPTIONS = ["pink petals", "white petals with a yellow center", "a red ruffled flower", "purple bell-shaped flowers"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--upscale", type=int, default=4)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/demo_concurrency.json"))
    args = parser.parse_args()

    pipeline = T2IPipeline.from_pretrained(args.checkpoint, device="cpu")
    demo = build_demo(pipeline)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    requests = [(CAPTIONS[i % len(CAPTIONS)], 1000 + i) for i in range(args.calls)]

    def call(request):
        caption, seed = request
        client = Client(url, verbose=False)
        start = time.perf_counter()
        items, info = client.predict(caption, 1, seed, False, args.upscale, "srcnn", api_name="/generate")
        elapsed = time.perf_counter() - start
        return request, elapsed, items, info

    wall = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.calls) as pool:
        answers = list(pool.map(call, requests))
    wall = time.perf_counter() - wall

    failures = 0
    for (caption, seed), _, items, info in answers:
        expected = pipeline(caption, num_images=1, seed=seed, upscale=args.upscale)
        got = Image.open(items[-1]["image"]).convert("RGB")
        ok = info["caption"] == caption and info["seeds"] == [seed] and got.tobytes() == expected.final[0].tobytes()
        failures += not ok
    latencies = sorted(a[1] for a in answers)
    result = {
        "machine": f"{platform.machine()}, torch threads default",
        "calls": args.calls,
        "upscale": args.upscale,
        "succeeded_and_matched": args.calls - failures,
        "p50_s": statistics.median(latencies),
        "p95_s": latencies[int(0.95 * (len(latencies) - 1))],
        "wall_s": wall,
    }
    demo.close()
    print(f"{args.calls} concurrent /generate calls (1 image, x{args.upscale}): "
          f"{result['succeeded_and_matched']}/{args.calls} correct, p50 {result['p50_s']:.2f} s, "
          f"p95 {result['p95_s']:.2f} s, all done in {wall:.2f} s")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    if failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
