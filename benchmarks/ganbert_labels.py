"""GAN-BERT against the supervised baseline at a few labelled fractions (issue 5's table).

The figures behind the README's MiniLM paragraph; here a seed also moves the held-out images. The
comparison for users (several backbones, TSV files, the same held-out images for every seed) is
``t2i ganbert compare``.

    python benchmarks/ganbert_labels.py --data flowers.h5 [--fractions 0.01 0.02 0.1]
        [--steps 600] [--seeds 0] [--batching paired|mixed] [--eval-every 100]
        [--json benchmarks/ganbert_labels.json]

The flowers train split's classes are the labels; 20 % of its images (all their captions) are held
out for evaluation, a fraction of the rest is labelled and the remaining captions are unlabelled,
exactly as ``t2i ganbert train --data`` does. Both modes get the same backbone, steps, batch size,
rate and seed. Prints one table (accuracy and macro-F1 on the held-out captions) and writes JSON
after every run, so an interrupted sweep keeps what it finished. ``--eval-every N`` also records
each run's learning curve (held-out accuracy and macro-F1 every N steps); the final figures are
the same with or without it.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from ganbert.model import GanBertConfig
from ganbert.train import train_ganbert
from t2i_cli.data.ganbert_split import H5Selection


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.02, 0.1])
    parser.add_argument("--modes", nargs="+", default=["baseline", "ganbert"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batching", default="paired", choices=["paired", "mixed"])
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument("--eval-every", type=int, default=0, help="learning curve: score the held-out set every N steps")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/ganbert_labels.json"))
    args = parser.parse_args()

    report = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "steps": args.steps, "batch_size": args.batch_size,
              "holdout": args.holdout, "batching": args.batching, "runs": []}
    for fraction in args.fractions:
        for seed in args.seeds:
            training, evaluation, labels = H5Selection(fraction, args.holdout, seed).split(args.data)
            labelled = sum(e.label is not None for e in training)
            for mode in args.modes:
                config = GanBertConfig(mode=mode, steps=args.steps, batch_size=args.batch_size, seed=seed, batching=args.batching)
                curve, last_scored = [], {}

                def on_evaluate(step, metrics):
                    last_scored.update(metrics)  # the last call scores the final model
                    curve.append({"step": step, "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]})
                    print(json.dumps({"mode": mode, **curve[-1]}), flush=True)

                start = time.perf_counter()
                model = train_ganbert(training, config, labels=labels, evaluation=evaluation,
                                      evaluate_every=args.eval_every, on_evaluate=on_evaluate)
                seconds = time.perf_counter() - start  # includes the curve's evaluations
                metrics = dict(last_scored) if curve else model.evaluate(evaluation)
                run = {"fraction": fraction, "seed": seed, "mode": mode, "labelled_sentences": labelled,
                       "sentences": len(training), "train_seconds": round(seconds, 1), **metrics}
                if curve:
                    run["curve"] = curve
                report["runs"].append(run)
                print(json.dumps(run), flush=True)
                args.json.write_text(json.dumps(report, indent=2) + "\n")

    print(f"\n{'labelled':>9} {'seed':>4} {'mode':>9} {'accuracy':>9} {'macro-F1':>9}")
    for run in report["runs"]:
        print(f"{run['fraction']:>9.0%} {run['seed']:>4} {run['mode']:>9} {run['accuracy']:>9.4f} {run['macro_f1']:>9.4f}")


if __name__ == "__main__":
    main()
