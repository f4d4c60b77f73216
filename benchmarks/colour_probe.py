"""How much of a caption's petal colour its stored embedding still carries, on classes never trained on.

    python benchmarks/colour_probe.py --data flowers.h5 --data flowers-ganbert.h5 [--json FILE]

The generator can only draw the colour a caption asks for if the caption encoder keeps it. This reads
the embeddings stored in each data file (one file per encoder: `t2i data embed` makes them) and
trains a colour classifier on the train split's captions that name exactly one petal colour (the
names of `t2i evaluate`'s colour metric), then scores it on the valid split's such captions, whose
flower classes the train split does not hold. An encoder fine-tuned to tell the train classes apart
(GAN-BERT's objective) may keep the class and drop the colour: this shows whether it did.

- ``nearest_centroid``: the colour whose mean train embedding is closest (cosine);
- ``linear``: a linear softmax classifier on the train embeddings (caption_probe's);
- ``majority``: the share of the commonest colour among the scored captions, the floor to beat.

Seconds per file; prints one table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from caption_probe import class_centroids, fit_linear
from t2i_cli.data.h5 import CaptionImageFile
from t2i_cli.errors import T2IError
from t2i_cli.evaluation.colour import COLOURS, petal_colours


def one_colour_captions(file: CaptionImageFile, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm embeddings of the captions of ``split`` that name exactly one petal colour, and
    that colour's index in :data:`COLOURS`."""
    rows, targets = [], []
    for name in file.names(split):
        embeddings = file.embeddings(split, name)
        for caption, embedding in zip(file.captions(split, name), embeddings):
            named = petal_colours(caption)
            if len(named) == 1:
                rows.append(embedding)
                targets.append(COLOURS.index(named[0]))
    if not rows:
        raise T2IError(f"{file.path}'s {split} split has no caption that names one petal colour: nothing to probe")
    features = np.asarray(rows, np.float32)
    features /= np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-9)
    return features, np.asarray(targets, np.int64)


def probe(data: Path, eval_split: str) -> dict:
    with CaptionImageFile(data) as file:
        encoder = str(file.encoder) if file.encoder else "unrecorded"
        x_train, y_train = one_colour_captions(file, "train")
        x_eval, y_eval = one_colour_captions(file, eval_split)
    k = len(COLOURS)

    def accuracy(scores: np.ndarray) -> float:
        return round(float((scores.argmax(1) == y_eval).mean()), 4)

    return {
        "data": str(data), "encoder": encoder, "eval_split": eval_split,
        "train_captions": len(y_train), "eval_captions": len(y_eval),
        "nearest_centroid": accuracy(x_eval @ class_centroids(x_train, y_train, k).T),
        "linear": accuracy(fit_linear(x_train, y_train, k)(x_eval)),
        "majority": round(float(np.bincount(y_eval, minlength=k).max() / len(y_eval)), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, action="append", required=True, help="A data file; repeat for several encoders.")
    parser.add_argument("--eval-split", default="valid", choices=("valid", "test"))
    parser.add_argument("--json", type=Path, default=Path("benchmarks/colour_probe.json"))
    args = parser.parse_args()

    try:
        runs = [probe(path, args.eval_split) for path in args.data]
    except T2IError as exc:
        raise SystemExit(f"Error: {exc}") from None
    args.json.write_text(json.dumps({"eval_split": args.eval_split, "runs": runs}, indent=2) + "\n")
    methods = ("nearest_centroid", "linear", "majority")
    print(f"{'encoder':<58} {'scored':>6} " + " ".join(f"{m:>16}" for m in methods))
    for run in runs:
        print(f"{run['encoder'][:58]:<58} {run['eval_captions']:>6} " + " ".join(f"{run[m]:>16.4f}" for m in methods))


if __name__ == "__main__":
    main()
