"""Training throughput: t2i's trainer against a reference-style loop, in the same run.

    python benchmarks/train_speed.py --data flowers.h5 [--steps 20] [--repeats 3] [--json benchmarks/train_speed.json]
    python benchmarks/train_speed.py --data flowers.h5 --arch dfgan --width 32 --diffaug translation,cutout --variants "t2i (defaults)"

Fixed model and batch: by default ngf = ndf = 64, batch 64, GAN-INT-CLS; ``--arch dfgan`` times
DF-GAN with its own recipe (hinge + MA-GP, batch 32) at ``--width`` (ngf = ndf), with
``--gp-every`` and ``--diffaug`` as in training. Each variant runs in
its own process (so its peak memory is its own), warms up for 3 steps, then times ``--steps``;
the variants run in ``--repeats`` interleaved rounds and the median counts:

- ``reference``: fp32, NCHW, each sample's JPEG decoded from the HDF5 in a DataLoader and its
  batch copied in per step, as the reference port trains;
- ``t2i``: the trainer's defaults -- the split decoded once into memory and batches drawn there,
  bfloat16 autocast where the hardware has it (``--amp auto``), channels-last where it helps;
- ablations: the in-memory batches with fp32 / NCHW, to show what each change buys, and
  ``--compile`` (its compile time is outside the timed steps: 3 warm-up steps compile it).

Prints one table (images/s, ratio to the reference, peak resident memory) and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = {
    # name: (in-memory batches, channels_last, amp, torch.compile)
    "reference": (False, "off", "off", False),
    "in-memory fp32 NCHW": (True, "off", "off", False),
    "in-memory fp32 channels-last": (True, "on", "off", False),
    "in-memory bf16 channels-last": (True, "on", "bf16", False),
    "in-memory bf16 NCHW": (True, "off", "bf16", False),
    "t2i (defaults)": (True, "auto", "auto", False),
    "t2i --compile": (True, "auto", "auto", True),
}


def measure(data: Path, variant: str, steps: int, device: str, model: dict, profile: int = 0) -> dict:
    """Run in a child process: build the trainer for ``variant`` and time ``steps`` steps."""
    import torch

    from t2i_cli.config import ModelConfig, TrainConfig, arch_defaults, run_model
    from t2i_cli.data.batches import Batch, InMemoryBatches
    from t2i_cli.data.dataset import CaptionImageDataset
    from t2i_cli.data.split import InMemorySplit
    from t2i_cli.devices import resolve_device
    from t2i_cli.models import build_models
    from t2i_cli.training.run import pick_sample_captions
    from t2i_cli.training.trainer import Trainer

    in_memory, channels_last, amp, compiled = VARIANTS[variant]
    if variant != "reference":  # as every t2i command does (the reference port's process keeps glibc's defaults)
        from t2i_cli.devices import keep_freed_memory

        keep_freed_memory()
    torch.manual_seed(0)
    _, preset = arch_defaults(model["arch"])
    preset.update(diffaug=model["diffaug"], **({"gp_every": model["gp_every"]} if model["gp_every"] else {}))
    batch_size = preset.pop("batch_size", 64)
    config = TrainConfig(
        data=str(data), batch_size=batch_size, amp=amp, channels_last=channels_last, preload=in_memory, compile=compiled,
        device=device, **preset,
    )
    device_ = resolve_device(device)
    if in_memory:
        source = InMemorySplit.load(data, "train", image_size=64, augment=True)
        loader = InMemoryBatches(source, batch_size=batch_size, device=device_, seed=0)
    else:
        source = CaptionImageDataset(data, "train", image_size=64, augment=True)
        loader = torch.utils.data.DataLoader(source, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=0,
                                             collate_fn=Batch.collate)
    sample = next(iter(loader))
    model_preset, _ = arch_defaults(model["arch"])
    if model["width"]:
        model_preset.update(ngf=model["width"], ndf=model["width"])
    # As t2i train builds it (per-sample norms in a dcgan D wherever a per-sample penalty is taken).
    model_config = run_model(ModelConfig(arch=model["arch"], **model_preset), config, embedding_dim=int(sample.embedding.shape[-1]))
    generator, discriminator = build_models(model_config)
    trainer = Trainer(
        generator=generator, discriminator=discriminator, loader=loader, loader_generator=torch.Generator(),
        config=config, model_config=model_config, run_dir=Path("/nonexistent"), device=device_, encoder=None,
        samples=pick_sample_captions(source),
    )
    trainer.G.train(), trainer.D.train()
    batches = iter(loader)

    def step() -> None:
        nonlocal batches
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(loader)
            batch = next(batches)
        trainer.train_step(batch)

    for _ in range(3):
        step()
    if device_.type == "cuda":
        torch.cuda.synchronize()
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as profiler

        with profiler(activities=[ProfilerActivity.CPU]) as recorded:
            for _ in range(steps):
                step()
        print(recorded.key_averages().table(sort_by="self_cpu_time_total", row_limit=profile), file=sys.stderr)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    float(trainer._diverged)  # waits for the device
    seconds = time.perf_counter() - start
    return {
        "variant": variant, "images_per_s": round(batch_size * steps / seconds, 1), "seconds_per_step": round(seconds / steps, 4),
        "amp": str(trainer.amp_dtype), "channels_last": trainer.memory_format == torch.channels_last, "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--variants", nargs="+", default=[v for v in VARIANTS if v != "t2i --compile"], choices=list(VARIANTS))
    parser.add_argument("--repeats", type=int, default=3, help="Rounds over the variants (interleaved); the median counts.")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/train_speed.json"))
    parser.add_argument("--arch", default="dcgan", choices=["dcgan", "dfgan"])
    parser.add_argument("--width", type=int, default=0, help="ngf = ndf (default 64 for dcgan, 32 for dfgan).")
    parser.add_argument("--diffaug", default="", help="DiffAugment policy, as t2i train --diffaug.")
    parser.add_argument("--gp-every", type=int, default=0, help="dfgan: the penalty every N steps (default: the preset's, 4).")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="Also profile --steps steps of each variant (torch.profiler) and print its N costliest operators.")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    model = {"arch": args.arch, "width": args.width, "diffaug": args.diffaug, "gp_every": args.gp_every}
    if args.child:
        print(json.dumps(measure(args.data, args.child, args.steps, args.device, model, args.profile)))
        return

    import torch

    runs: dict[str, list[dict]] = {variant: [] for variant in args.variants}
    for round_ in range(args.repeats):  # interleaved, so a slow spell of the machine hits every variant
        for variant in args.variants:
            command = [
                sys.executable, __file__, "--data", str(args.data), "--steps", str(args.steps), "--device", args.device,
                "--arch", args.arch, "--width", str(args.width), "--diffaug", args.diffaug, "--gp-every", str(args.gp_every),
                "--profile", str(args.profile), "--child", variant,
            ]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                sys.exit(f"{variant} failed:\n{result.stderr[-2000:]}")
            runs[variant].append(json.loads(result.stdout.strip().splitlines()[-1]))
            if args.profile:
                print(result.stderr, file=sys.stderr)
            print(f"  round {round_ + 1}: {variant}: {runs[variant][-1]['images_per_s']} img/s", file=sys.stderr, flush=True)
    rows = []
    for variant, measured in runs.items():
        speeds = sorted(r["images_per_s"] for r in measured)
        median = sorted(measured, key=lambda r: r["images_per_s"])[len(measured) // 2]
        row = dict(median, all_images_per_s=speeds)
        row["peak_rss_mb"] = max(r["peak_rss_mb"] for r in measured)
        rows.append(row)
    reference = next((r["images_per_s"] for r in rows if r["variant"] == "reference"), None)
    print(f"\n{'variant':<30} {'img/s':>8} {'vs ref':>7} {'s/step':>8} {'peak RSS':>9}  runs")
    for row in rows:
        ratio = row["images_per_s"] / reference if reference else None
        row["ratio_to_reference"] = round(ratio, 2) if ratio else None
        shown = f"{ratio:>6.2f}x" if ratio else f"{'-':>7}"  # no reference variant in this run
        print(f"{row['variant']:<30} {row['images_per_s']:>8.1f} {shown} {row['seconds_per_step']:>8.3f} {row['peak_rss_mb']:>6} MB  {row['all_images_per_s']}")
    report = {
        "machine": platform.processor() or platform.machine(), "cpus": __import__("os").cpu_count(),
        "torch": torch.__version__, "device": args.device, "steps": args.steps, "repeats": args.repeats, "model": model, "rows": rows,
    }
    args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
