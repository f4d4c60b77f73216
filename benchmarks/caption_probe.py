"""What the frozen caption embeddings already know about the classes, on GAN-BERT's exact split.

    python benchmarks/caption_probe.py --data flowers.h5 [--fractions 0.01 0.02 0.1] [--seeds 0]
        [--json benchmarks/caption_probe.json]

Companion to ``ganbert_labels.py``: same held-out images, same labelled images, but no fine-tuning.
It reads the caption embeddings stored in the HDF5 file (those of the encoder that embedded it,
all-MiniLM-L6-v2 by default) and scores the held-out captions with

- ``nearest_centroid``: the class whose mean labelled embedding is closest (cosine);
- ``logistic``: a linear classifier trained on the labelled captions' embeddings;
- ``self_training``: the same classifier, retrained three times on the labelled captions plus the
  half of the unlabelled captions it is most confident about (its own labels): whether the
  unlabelled captions carry signal a simple semi-supervised method can use;
- ``seeded_kmeans``: k-means over labelled + unlabelled captions from the labelled centroids, the
  labelled captions fixed to their class: whether the captions cluster by class at all.

Seconds per fraction; prints one table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from t2i_cli.data.ganbert_split import H5Selection
from t2i_cli.data.h5 import CaptionImageFile

LOGIT_SCALE = 20.0  # unit-norm embeddings: scaled so that a small linear layer can be confident
SELF_TRAINING_ROUNDS = 3
SELF_TRAINING_SHARE = 0.5
KMEANS_ROUNDS = 10


def fit_linear(features: np.ndarray, targets: np.ndarray, classes: int, *, steps: int = 300):
    """A linear softmax classifier (Adam, light L2), deterministic; returns features -> probabilities."""
    generator = torch.Generator().manual_seed(0)
    weight = (torch.randn(features.shape[1], classes, generator=generator) * 0.01).requires_grad_()
    bias = torch.zeros(classes, requires_grad=True)
    optimizer = torch.optim.Adam([weight, bias], lr=0.05)
    x, y = torch.from_numpy(features) * LOGIT_SCALE, torch.from_numpy(targets)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, y) + 1e-4 * weight.pow(2).sum()
        loss.backward()
        optimizer.step()

    def probabilities(z: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(torch.from_numpy(z) * LOGIT_SCALE @ weight + bias, dim=1).numpy()

    return probabilities


def class_centroids(features: np.ndarray, targets: np.ndarray, classes: int) -> np.ndarray:
    """Unit-norm mean embedding per class (zeros for a class with no rows)."""
    sums = np.zeros((classes, features.shape[1]), np.float32)
    np.add.at(sums, targets, features)
    return sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-9)


def probe(data: Path, fraction: float, seed: int, holdout: float) -> dict:
    with CaptionImageFile(data) as file:
        names = file.names("train")
        classes = {n: file.class_name("train", n) for n in names}
        labelled, unlabelled, held = H5Selection(fraction, holdout, seed).partition(classes)
        table = {c: i for i, c in enumerate(sorted(set(classes.values())))}

        def stack(group: list[str]) -> tuple[np.ndarray, np.ndarray]:
            rows = [file.embeddings("train", n) for n in group]
            targets = np.concatenate([[table[classes[n]]] * len(r) for n, r in zip(group, rows)])
            return np.concatenate(rows), targets.astype(np.int64)

        x_labelled, y_labelled = stack(labelled)
        x_unlabelled, _ = stack(unlabelled)
        x_held, y_held = stack(held)
    k = len(table)

    def accuracy(scores: np.ndarray) -> float:
        return round(float((scores.argmax(1) == y_held).mean()), 4)

    result = {"fraction": fraction, "seed": seed, "labelled_captions": len(y_labelled),
              "unlabelled_captions": len(x_unlabelled), "held_out_captions": len(y_held)}
    centroids = class_centroids(x_labelled, y_labelled, k)
    result["nearest_centroid"] = accuracy(x_held @ centroids.T)
    classifier = fit_linear(x_labelled, y_labelled, k)
    result["logistic"] = accuracy(classifier(x_held))
    for _ in range(SELF_TRAINING_ROUNDS):
        unlabelled_probabilities = classifier(x_unlabelled)
        confidence = unlabelled_probabilities.max(1)
        confident = confidence >= np.quantile(confidence, 1 - SELF_TRAINING_SHARE)
        classifier = fit_linear(
            np.concatenate([x_labelled, x_unlabelled[confident]]),
            np.concatenate([y_labelled, unlabelled_probabilities[confident].argmax(1)]), k,
        )
    result["self_training"] = accuracy(classifier(x_held))
    for _ in range(KMEANS_ROUNDS):
        assigned = (x_unlabelled @ centroids.T).argmax(1)
        centroids = class_centroids(np.concatenate([x_labelled, x_unlabelled]), np.concatenate([y_labelled, assigned]), k)
    result["seeded_kmeans"] = accuracy(x_held @ centroids.T)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.02, 0.1])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/caption_probe.json"))
    args = parser.parse_args()

    runs = [probe(args.data, fraction, seed, args.holdout) for fraction in args.fractions for seed in args.seeds]
    args.json.write_text(json.dumps({"data": str(args.data), "holdout": args.holdout, "runs": runs}, indent=2) + "\n")
    methods = ("nearest_centroid", "logistic", "self_training", "seeded_kmeans")
    print(f"{'labelled':>9} {'seed':>4} " + " ".join(f"{m:>16}" for m in methods))
    for run in runs:
        print(f"{run['fraction']:>9.0%} {run['seed']:>4} " + " ".join(f"{run[m]:>16.4f}" for m in methods))


if __name__ == "__main__":
    main()
