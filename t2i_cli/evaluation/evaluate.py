"""``t2i evaluate``: how good a generator is on one split of a data file, by a fixed protocol.

1. Every real image of the split gets one of its captions (seeded); the generator draws one image
   from that caption's stored embedding (noise seed ``seed + i`` for image i).
2. The real images are split in two seeded halves A and B of equal size. FID and KID compare the
   real half A with the images generated from half B's captions; the floor is the same metric
   between real A and real B. Same sizes on both sides, so the floor is what a perfect generator
   would score under this protocol (small sets bias FID upwards; the floor shows by how much).
3. R-precision: each generated image, in the shared image-text space (see
   :mod:`~t2i_cli.evaluation.image_encoder`), must rank its own caption first among it and
   ``candidates - 1`` captions of other images of the split; the same on the real images is the
   reference (not a hard ceiling: a generated image is drawn from its very caption's embedding).
   Beside both, the R-precision of each image's *other* captions (their mean embedding): how
   distinctive the split's captions are at all.
4. Colour faithfulness (:mod:`~t2i_cli.evaluation.colour`): of the images whose caption names a
   petal colour, the share whose dominant flower colour (a fixed pixel rule) is that colour; the
   same rule on the real images with the same captions is the reference (what the rule and the
   captions allow at best, about 9 in 10 on oxford102-64).
5. Diversity: the mean pairwise Inception-feature distance between images of one caption drawn
   with different noise seeds, averaged over a seeded set of the split's captions; beside it, the
   same between real images of one class, averaged over the split's classes. A generator that
   ignores its noise scores 0. One class is wider than one caption (captions also fix a colour),
   so the real figure is a scale, not a target.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from t2i_cli.cache import cache_dir
from t2i_cli.data.h5 import CaptionImageFile
from t2i_cli.data.split import InMemorySplit
from t2i_cli.errors import T2IError
from t2i_cli.evaluation.image_encoder import (
    ImageEncoderConfig,
    cache_key,
    is_image_encoder,
    load_image_encoder,
    save_image_encoder,
    train_image_encoder,
)
from t2i_cli.evaluation.inception import PREPROCESSING, InceptionFeatures
from t2i_cli.evaluation.suite import (
    METRICS,
    EvalReport,
    EvalSplit,
    draw_for_rows,
    measure,
    needs_inception,
    parse_metrics,
)
from t2i_cli.grid import captioned_grid, to_pil
from t2i_cli.progress import progress_bar
from t2i_cli.sampling import Sampling, load_generator

log = logging.getLogger(__name__)

SHEET_ROWS = 12
SHEET_SAMPLES = 4


def eval_image_encoder(data: Path, *, image_size: int, device: torch.device, config: ImageEncoderConfig | None = None,
                       folder: Path | None = None, show_progress: bool = False):
    """The R-precision image encoder for ``data``: loaded from ``folder`` or the cache, else trained
    on the train split (and cached). Returns ``(model, description)``."""
    if folder is not None:
        return load_image_encoder(folder, device=device)
    train = InMemorySplit.load(data, "train", image_size=image_size)
    config = config or ImageEncoderConfig(dim=int(train.embeddings.shape[-1]))
    cached = cache_dir() / "eval-image-encoders" / cache_key(train.identity, config)
    if is_image_encoder(cached):
        return load_image_encoder(cached, device=device)
    log.info("training the evaluation image encoder on %d train images (once; cached in %s)", len(train.images), cached)
    with progress_bar("image encoder (once)", total=config.steps, enabled=show_progress) as advance:
        model = train_image_encoder(train.images, train.embeddings, train.counts, config, device=device, progress=advance)
    cached.parent.mkdir(parents=True, exist_ok=True)
    save_image_encoder(model, cached, config=config, data_identity=train.identity)
    return load_image_encoder(cached, device=device)


class SplitEvaluator:
    """Measures generators on one split, prepared once (the in-run evaluation of ``t2i train
    --eval-every``): ``evaluator(generator)`` -> the JSON figures of :func:`measure` plus ``seconds``."""

    def __init__(self, data: Path, split: str, *, image_size: int, device: torch.device,
                 metrics: str | Sequence[str], seed: int = 0):
        self.metrics = parse_metrics(metrics)
        if "r_precision" in self.metrics:
            raise T2IError("R-precision is for t2i evaluate (its image encoder is trained first); leave it out of the in-run metrics",
                           parameter="eval_metrics")
        self.split, self.device = split, device
        self.evals = EvalSplit.load(data, split, image_size=image_size, seed=seed)
        self.inception = InceptionFeatures(device) if needs_inception(self.metrics) else None

    def __call__(self, generator: torch.nn.Module) -> dict:
        started = time.perf_counter()
        report = measure(generator, self.evals, device=self.device, inception=self.inception, metrics=self.metrics)
        return {**report.to_json(), "seconds": round(time.perf_counter() - started, 1)}


@dataclass
class Evaluation:
    """What ``t2i evaluate`` measured, of which generator, on what, and how (``protocol``)."""

    checkpoint: str
    epoch: int
    data: str
    split: str
    seed: int
    metrics: tuple[str, ...]  # the metrics asked for; the report says which did not apply
    report: EvalReport
    protocol: dict
    seconds: float

    def to_json(self) -> dict:
        return {"checkpoint": self.checkpoint, "epoch": self.epoch, "data": self.data, "split": self.split, "seed": self.seed,
                "metrics": list(self.metrics), **self.report.to_json(), "protocol": self.protocol, "seconds": self.seconds}


def protocol(report: EvalReport, image_encoder: dict | None) -> dict:
    """How each measured figure was taken, for the report file."""
    measured = report.results
    described = {}
    if "fid" in measured:
        described["fid_kid"] = "real half A vs images generated from half B's captions; floor: real A vs real B"
    if "fid" in measured or "diversity" in measured:
        described["inception"] = PREPROCESSING
    if "r_precision" in measured:
        described["r_precision"] = f"own caption ranked first among {measured['r_precision'].r_candidates} (cosine, eval image encoder)"
        described["image_encoder"] = {k: image_encoder[k] for k in ("config", "data") if k in image_encoder}
    if "colour" in measured:
        described["colour"] = ("dominant flower colour (centre-weighted HSV rule, t2i_cli/evaluation/colour.py) "
                               "is a petal colour the picked caption names; real: the split's images, same captions")
    if "second_colour" in measured:
        described["second_colour"] = ("a centre colour the picked caption names covers the centre, or its second petal colour "
                                      "a share of the petals (t2i_cli/evaluation/colour.py); real: the split's images, same captions")
    if (diversity := measured.get("diversity")) is not None:
        described["diversity"] = (f"mean pairwise Inception pool3 distance within {diversity.diversity_samples} images of one caption "
                                  f"(noise seeds), over {diversity.diversity_captions} seeded captions; real: "
                                  f"{diversity.diversity_samples} real images of one class, over {diversity.diversity_classes} classes")
    return described


def evaluate(checkpoint: Path, data: Path, split: str, *, seed: int = 0, device: torch.device,
             image_encoder: Path | None = None, metrics: Sequence[str] = tuple(METRICS), truncation: float = 1.0, rerank: int = 1,
             show_progress: bool = False) -> tuple[Evaluation, Image.Image]:
    """Run the protocol; returns the evaluation and the sample sheet."""
    started = time.perf_counter()
    metrics = parse_metrics(metrics)
    Sampling(truncation=truncation, rerank=rerank).check()
    generator, info = load_generator(checkpoint)
    if not info.model.conditional:
        raise T2IError(f"{checkpoint} is unconditional; t2i evaluate measures caption-conditioned generators")
    with CaptionImageFile(data) as file:
        if file.encoder != info.encoder:
            raise T2IError(
                f"{data} is embedded with {file.encoder}, but {checkpoint} was trained with {info.encoder}; "
                f"re-embed a copy with that encoder (t2i data embed)"
            )
    evals = EvalSplit.load(data, split, image_size=info.model.image_size, seed=seed)
    encoder = description = None
    if "r_precision" in metrics:
        # The image encoder first: a wrong one fails before minutes of Inception features.
        encoder, description = eval_image_encoder(data, image_size=info.model.image_size, device=device, folder=image_encoder,
                                                  show_progress=show_progress)
        if description.get("data", {}).get("encoder") != evals.real.identity["encoder"]:
            raise T2IError("the evaluation image encoder was trained against another caption encoder's embeddings")
    scorer = None
    if rerank > 1:  # the generator's own caption-matching model: not R-precision's encoder, not Inception
        from t2i_cli.training.matching import checkpoint_scorer

        scorer = checkpoint_scorer(info.path, device=device, encoder=evals.real.identity["encoder"])
    sampling = Sampling(truncation=truncation, rerank=rerank, scorer=scorer)
    inception = InceptionFeatures(device) if needs_inception(metrics) else None
    generator.to(device)
    report = measure(generator, evals, device=device, inception=inception, metrics=metrics, image_encoder=encoder,
                     sampling=sampling, show_progress=show_progress)
    evaluation = Evaluation(str(checkpoint), info.epoch, str(data), split, seed, metrics, report,
                            protocol(report, description), round(time.perf_counter() - started, 1))
    rows = []
    for i in evals.order[:SHEET_ROWS]:
        samples = draw_for_rows(generator, evals.caption_embeddings[i : i + 1].repeat(SHEET_SAMPLES, 1), seed, device, sampling)
        rows.append((evals.captions[i], to_pil(evals.real.images[i : i + 1]) + to_pil(samples)))
    return evaluation, captioned_grid(rows)
