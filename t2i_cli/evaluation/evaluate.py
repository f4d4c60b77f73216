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

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from t2i_cli.atomic import atomic_file
from t2i_cli.cache import cache_dir
from t2i_cli.data.h5 import CaptionImageFile
from t2i_cli.data.split import InMemorySplit
from t2i_cli.errors import T2IError
from t2i_cli.evaluation.colour import colour_match, dominant_colours, petal_colours, second_colour_match, second_colours
from t2i_cli.evaluation.image_encoder import (
    ImageEncoderConfig,
    cache_key,
    load_image_encoder,
    save_image_encoder,
    train_image_encoder,
)
from t2i_cli.evaluation.inception import PREPROCESSING, InceptionFeatures
from t2i_cli.evaluation.metrics import (
    frechet_distance,
    kernel_inception_distance,
    pairwise_spreads,
    other_captions_embeddings,
    r_precision,
)
from t2i_cli.grid import captioned_grid, to_pil
from t2i_cli.sampling import Sampling, draw_images, load_generator
from t2i_cli.progress import progress_bar

log = logging.getLogger(__name__)

R_CANDIDATES = 100
SHEET_ROWS = 12
SHEET_SAMPLES = 4
DIVERSITY_CAPTIONS = 32
DIVERSITY_SAMPLES = 8  # images per caption (noise seeds) and real images per class


def eval_image_encoder(data: Path, *, image_size: int, device: torch.device, config: ImageEncoderConfig | None = None,
                       folder: Path | None = None, show_progress: bool = False):
    """The R-precision image encoder for ``data``: loaded from ``folder`` or the cache, else trained
    on the train split (and cached). Returns ``(model, description)``."""
    if folder is not None:
        return load_image_encoder(folder, device=device)
    train = InMemorySplit.load(data, "train", image_size=image_size)
    config = config or ImageEncoderConfig(dim=int(train.embeddings.shape[-1]))
    cached = cache_dir() / "eval-image-encoders" / cache_key(train.identity, config)
    if (cached / "image_encoder.json").is_file():
        return load_image_encoder(cached, device=device)
    log.info("training the evaluation image encoder on %d train images (once; cached in %s)", len(train.images), cached)
    with progress_bar("image encoder (once)", total=config.steps, enabled=show_progress) as advance:
        model = train_image_encoder(train.images, train.embeddings, train.counts, config, device=device, progress=advance)
    cached.parent.mkdir(parents=True, exist_ok=True)
    save_image_encoder(model, cached, config=config, data_identity=train.identity)
    return load_image_encoder(cached, device=device)


def _real_features(split: InMemorySplit, inception: InceptionFeatures, progress) -> np.ndarray:
    key = hashlib.sha256(json.dumps([split.identity, PREPROCESSING], sort_keys=True).encode()).hexdigest()[:20]
    path = cache_dir() / "inception-features" / f"{key}.npy"
    if path.is_file():
        return np.load(path)
    features = inception(split.images, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as partial, open(partial, "wb") as stream:
        np.save(stream, features)  # to a stream: given a path, np.save would append .npy
    return features


def _generate(generator, embeddings: torch.Tensor, seed: int, device: torch.device, sampling: Sampling = Sampling()) -> torch.Tensor:
    """uint8 images, row i from noise seed ``seed + i``: the pipeline's own drawing."""
    return draw_images(generator, embeddings, list(range(seed, seed + len(embeddings))), device=device, batch_size=256,
                       sampling=sampling)


def caption_spreads(generator, embeddings: torch.Tensor, features, *, seed: int, device: torch.device,
                    samples: int | None = None, sampling: Sampling = Sampling()) -> np.ndarray:
    """Per row of ``embeddings`` (K, D), the mean pairwise feature distance within the ``samples``
    images (default :data:`DIVERSITY_SAMPLES`) drawn from it: ``(K,)``. ``features``: uint8 images
    (M, 3, S, S) -> (M, F) array (Inception pool features). Only ``generator(noise, embeddings)``
    and ``generator.config.noise_dim`` are used."""
    samples = samples or DIVERSITY_SAMPLES
    # Caption k's images are rows k*samples ... k*samples + samples - 1; every row has its own noise
    # seed (seed + row), so the images of one caption differ by their noise only.
    images = _generate(generator, embeddings.repeat_interleave(samples, 0), seed, device, sampling)
    return pairwise_spreads(np.asarray(features(images)).reshape(len(embeddings), samples, -1))


def _class_groups(class_indices: np.ndarray | None, size: int, rng: np.random.Generator) -> np.ndarray:
    """(G, size) image indices: ``size`` images drawn without replacement from each class that has
    that many (classes in sorted order, so the draw depends on the seed only); (0, size) if none."""
    groups = []
    if class_indices is not None:
        for label in np.unique(class_indices):
            members = np.flatnonzero(class_indices == label)
            if label >= 0 and len(members) >= size:
                groups.append(np.sort(rng.choice(members, size, replace=False)))
    return np.array(groups, dtype=np.int64).reshape(-1, size)


METRICS = ("fid", "r_precision", "colour", "second_colour", "diversity")


def parse_metrics(names: str | Sequence[str]) -> tuple[str, ...]:
    """``"fid,colour"`` (or a sequence; ``"all"``: every one) -> the chosen metrics in :data:`METRICS`
    order; unknown names refused."""
    if names == "all":
        return METRICS
    chosen = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
    chosen = [n for n in chosen if n]
    unknown = [n for n in chosen if n not in METRICS]
    if unknown or not chosen:
        raise T2IError(f"metrics are a comma-separated choice of {', '.join(METRICS)}, got {','.join(chosen) or 'none'}",
                       parameter="metrics")
    return tuple(n for n in METRICS if n in chosen)


@dataclass
class EvalSplit:
    """What the protocol fixes of a split, once: the real images, the caption picked for each, the
    two halves, the diversity captions and class groups, and (on first use) the real images'
    Inception features. Measuring several generators (or one run's epochs) against one
    ``EvalSplit`` compares them on exactly the same draws."""

    data: Path
    split: str
    seed: int
    real: InMemorySplit
    pick: torch.Tensor  # (N,) which caption of image i is its own
    caption_embeddings: torch.Tensor  # (N, D)
    captions: list[str]
    order: np.ndarray  # a seeded permutation; halves A and B are its two first halves
    diversity_rows: np.ndarray  # the images whose captions the diversity figures draw
    class_groups: np.ndarray  # (G, DIVERSITY_SAMPLES) real images of one class each
    _real_features: np.ndarray | None = None

    @classmethod
    def load(cls, data: Path, split: str, *, image_size: int, seed: int = 0) -> "EvalSplit":
        real = InMemorySplit.load(data, split, image_size=image_size)
        count = len(real.images)
        if count < 4:
            raise T2IError(f"the {split} split of {data} has {count} images; evaluation needs at least 4")
        rng = np.random.default_rng(seed)
        pick = torch.from_numpy((rng.random(count) * real.counts.numpy()).astype(np.int64))
        captions = [real.captions[i][int(pick[i])] if int(pick[i]) < len(real.captions[i]) else "" for i in range(count)]
        order = rng.permutation(count)
        # A stream of its own, so that the draws above (and their figures) do not depend on it.
        diversity_rng = np.random.default_rng([seed, 5])
        rows = np.sort(diversity_rng.choice(count, min(DIVERSITY_CAPTIONS, count), replace=False))
        groups = _class_groups(real.class_indices, DIVERSITY_SAMPLES, diversity_rng)
        return cls(Path(data), split, seed, real, pick, real.embeddings[torch.arange(count), pick], captions, order, rows, groups)

    @property
    def count(self) -> int:
        return len(self.real.images)

    @property
    def halves(self) -> tuple[np.ndarray, np.ndarray]:
        half = self.count // 2
        return self.order[:half], self.order[half : 2 * half]

    def real_features(self, inception: InceptionFeatures, progress=None) -> np.ndarray:
        if self._real_features is None:
            self._real_features = _real_features(self.real, inception, progress)
        return self._real_features


def measure(generator, evals: EvalSplit, *, device: torch.device, inception: InceptionFeatures | None = None,
            metrics: Sequence[str] = METRICS, image_encoder=None, sampling: Sampling = Sampling(),
            show_progress: bool = False) -> dict:
    """The chosen ``metrics`` of ``generator`` on ``evals``, as a JSON-ready dict (figures beside the
    real images' own). ``inception`` is needed for fid and diversity, ``image_encoder`` for r_precision."""
    metrics = parse_metrics(metrics)
    seed, count = evals.seed, evals.count
    report: dict = {"images": count, "truncation": sampling.truncation, "rerank": sampling.rerank}
    needs_drawing = any(m in metrics for m in ("fid", "r_precision", "colour", "second_colour"))
    fake = _generate(generator, evals.caption_embeddings, seed, device, sampling) if needs_drawing else None
    if "fid" in metrics:
        with progress_bar("Inception, real images", total=count, enabled=show_progress) as advance:
            real_features = evals.real_features(inception, advance)
        with progress_bar("Inception, generated", total=count, enabled=show_progress) as advance:
            fake_features = inception(fake, progress=advance)
        half_a, half_b = evals.halves
        # Subsets of half the half (at most 1,000, as Bińkowski et al.): the spread over them then says
        # how much the figure moves with the sample; subsets of all of it would all be the same set.
        subset = min(1000, max(2, len(half_a) // 2))
        kid = kernel_inception_distance(real_features[half_a], fake_features[half_b], subset_size=subset, seed=seed)
        kid_floor = kernel_inception_distance(real_features[half_a], real_features[half_b], subset_size=subset, seed=seed)
        report.update(
            half_size=len(half_a),
            fid=round(frechet_distance(real_features[half_a], fake_features[half_b]), 3),
            fid_floor=round(frechet_distance(real_features[half_a], real_features[half_b]), 3),
            kid={"mean": kid[0], "std": kid[1]}, kid_floor={"mean": kid_floor[0], "std": kid_floor[1]}, kid_subset_size=subset,
        )
    if "r_precision" in metrics:
        candidates = min(R_CANDIDATES, count)
        text = evals.caption_embeddings.numpy()
        other_captions = other_captions_embeddings(evals.real.embeddings.numpy(), evals.real.counts.numpy(), evals.pick.numpy())
        report.update(
            r_precision=round(r_precision(image_encoder.embed(fake).numpy(), text, candidates=candidates, seed=seed), 4),
            r_precision_real=round(r_precision(image_encoder.embed(evals.real.images).numpy(), text, candidates=candidates, seed=seed), 4),
            r_precision_other_captions=round(r_precision(other_captions, text, candidates=candidates, seed=seed), 4),
            r_candidates=candidates,
        )
    if "colour" in metrics:
        # Generated image i and real image i are judged against the same caption, the one picked for i.
        named = [petal_colours(caption) for caption in evals.captions]
        colour_fake = colour_match(dominant_colours(fake.numpy()), named)
        colour_real = colour_match(dominant_colours(evals.real.images.numpy()), named)
        report.update(
            colour_match=_rounded(colour_fake["match"]), colour_match_real=_rounded(colour_real["match"]),
            colour_captions=colour_fake["captions"],
            colour_match_per_colour={
                name: {"captions": row["captions"], "generated": round(row["match"], 4),
                       "real": round(colour_real["per_colour"][name]["match"], 4)}
                for name, row in colour_fake["per_colour"].items()
            },
        )
    if "second_colour" in metrics:
        wanted = [second_colours(caption) for caption in evals.captions]
        fake_hits = second_colour_match(fake.numpy(), wanted)
        real_hits = second_colour_match(evals.real.images.numpy(), wanted)
        report.update(
            second_colour=_rounded(fake_hits["match"]), second_colour_real=_rounded(real_hits["match"]),
            second_colour_captions=fake_hits["captions"],
            second_colour_per_place={
                place: {"captions": row["captions"], "generated": _rounded(row["match"]),
                        "real": _rounded(real_hits["per_place"][place]["match"])}
                for place, row in fake_hits["per_place"].items()
            },
        )
    if "diversity" in metrics:
        rows = torch.from_numpy(evals.diversity_rows)
        with progress_bar("diversity", total=len(rows) * DIVERSITY_SAMPLES, enabled=show_progress) as advance:
            spreads = caption_spreads(
                generator, evals.caption_embeddings[rows], lambda images: inception(images, progress=advance),
                seed=seed, device=device, sampling=sampling,
            )
        real_spreads = pairwise_spreads(evals.real_features(inception)[evals.class_groups]) if len(evals.class_groups) else None
        report.update(
            diversity=round(float(spreads.mean()), 3),
            diversity_real=None if real_spreads is None else round(float(real_spreads.mean()), 3),
            # The captions least varied: a collapse onto one flower for some captions shows here
            # first, while the mean above can still look healthy.
            diversity_lowest_tenth=round(float(np.quantile(spreads, 0.1)), 3),
            diversity_real_lowest_tenth=None if real_spreads is None else round(float(np.quantile(real_spreads, 0.1)), 3),
            diversity_captions=len(rows), diversity_samples=DIVERSITY_SAMPLES, diversity_classes=len(evals.class_groups),
        )
    return report


class SplitEvaluator:
    """Measures generators on one split, prepared once (the in-run evaluation of ``t2i train
    --eval-every``): ``evaluator(generator)`` -> the figures of :func:`measure` plus ``seconds``."""

    def __init__(self, data: Path, split: str, *, image_size: int, device: torch.device,
                 metrics: str | Sequence[str], seed: int = 0):
        self.metrics = parse_metrics(metrics)
        if "r_precision" in self.metrics:
            raise T2IError("R-precision is for t2i evaluate (its image encoder is trained first); leave it out of the in-run metrics",
                           parameter="eval_metrics")
        self.split, self.device = split, device
        self.evals = EvalSplit.load(data, split, image_size=image_size, seed=seed)
        self.inception = InceptionFeatures(device) if ("fid" in self.metrics or "diversity" in self.metrics) else None

    def __call__(self, generator: torch.nn.Module) -> dict:
        started = time.perf_counter()
        figures = measure(generator, self.evals, device=self.device, inception=self.inception, metrics=self.metrics)
        return {**figures, "seconds": round(time.perf_counter() - started, 1)}


def evaluate(checkpoint: Path, data: Path, split: str, *, seed: int = 0, device: torch.device,
             image_encoder: Path | None = None, metrics: Sequence[str] = METRICS, truncation: float = 1.0, rerank: int = 1,
             show_progress: bool = False) -> tuple[dict, Image.Image]:
    """Run the protocol; returns the JSON-ready report and the sample sheet."""
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
    inception = InceptionFeatures(device) if ("fid" in metrics or "diversity" in metrics) else None
    generator.to(device)
    figures = measure(generator, evals, device=device, inception=inception, metrics=metrics, image_encoder=encoder,
                      sampling=sampling, show_progress=show_progress)
    log.debug("figures %s, %.0f s so far", figures, time.perf_counter() - started)
    protocol = {
        "fid_kid": "real half A vs images generated from half B's captions; floor: real A vs real B",
        "inception": PREPROCESSING,
        "colour": "dominant flower colour (centre-weighted HSV rule, t2i_cli/evaluation/colour.py) "
                  "is a petal colour the picked caption names; real: the split's images, same captions",
        "second_colour": "a centre colour the picked caption names covers the centre, or its second petal colour "
                         "a share of the petals (t2i_cli/evaluation/colour.py); real: the split's images, same captions",
        "diversity": f"mean pairwise Inception pool3 distance within {DIVERSITY_SAMPLES} images of one caption "
                     f"(noise seeds), over {len(evals.diversity_rows)} seeded captions; real: {DIVERSITY_SAMPLES} real "
                     f"images of one class, over {len(evals.class_groups)} classes",
    }
    if "r_precision" in metrics:
        protocol["r_precision"] = f"own caption ranked first among {figures['r_candidates']} (cosine, eval image encoder)"
        protocol["image_encoder"] = {k: description[k] for k in ("config", "data") if k in description}
    report = {"checkpoint": str(checkpoint), "epoch": info.epoch, "data": str(data), "split": split, "seed": seed,
              "metrics": list(metrics), **figures, "protocol": protocol, "seconds": round(time.perf_counter() - started, 1)}
    rows = []
    for i in evals.order[:SHEET_ROWS]:
        samples = _generate(generator, evals.caption_embeddings[i : i + 1].repeat(SHEET_SAMPLES, 1), seed, device, sampling)
        rows.append((evals.captions[i], to_pil(evals.real.images[i : i + 1]) + to_pil(samples)))
    return report, captioned_grid(rows)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
