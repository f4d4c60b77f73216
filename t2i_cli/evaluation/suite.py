"""The metrics of ``t2i evaluate`` and of the in-run evaluation, as a registry of typed results.

A split is drawn from once (:class:`EvalSplit`: the caption picked for each real image, the two
halves, the diversity captions and class groups), so that several generators, or one run's epochs,
are measured on exactly the same draws. Each metric of :data:`METRICS` then says

- what it needs: images generated from the picked captions, Inception features, the R-precision
  image encoder (:class:`Metric`);
- whether it applies to the split at all: the colour rules read flower captions ("pink petals",
  "a yellow center"), so on a split whose captions seldom name a petal colour (birds, COCO scenes)
  they are not measured, and the report says why instead of printing a figure that means nothing;
- how to measure, returning a typed result that knows its JSON form (the flat keys of report files
  and ``metrics.jsonl``) and its report lines, each figure beside its real-image reference.

:func:`measure` runs the chosen ones and returns an :class:`EvalReport`.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar
from pathlib import Path

import numpy as np
import torch

from t2i_cli.atomic import atomic_file
from t2i_cli.cache import cache_dir
from t2i_cli.data.split import InMemorySplit
from t2i_cli.errors import T2IError
from t2i_cli.evaluation.colour import colour_match, dominant_colours, petal_colours, second_colour_match, second_colours
from t2i_cli.evaluation.inception import PREPROCESSING, InceptionFeatures
from t2i_cli.evaluation.metrics import (
    frechet_distance,
    kernel_inception_distance,
    other_captions_embeddings,
    pairwise_spreads,
    r_precision,
)
from t2i_cli.progress import progress_bar
from t2i_cli.sampling import Sampling, draw_images

R_CANDIDATES = 100
DIVERSITY_CAPTIONS = 32
DIVERSITY_SAMPLES = 8  # images per caption (noise seeds) and real images per class
# The colour rules apply where at least this share of the picked captions names a petal colour:
# 79 % of oxford102-64's valid captions and 83 % of its test captions do; bird and scene captions
# almost never tie a colour to petals or flowers.
FLOWER_CAPTION_SHARE = 0.2


# --- the split, drawn from once --------------------------------------------------------------------
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


@dataclass
class EvalSplit:
    """What the protocol fixes of a split, once: the real images, the caption picked for each, the
    two halves, the diversity captions and class groups, and (on first use) the real images'
    Inception features."""

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

    @functools.cached_property
    def petal_colours(self) -> list[tuple[str, ...]]:
        """The petal colours each picked caption names (the colour rules read them more than once)."""
        return [petal_colours(caption) for caption in self.captions]

    @property
    def halves(self) -> tuple[np.ndarray, np.ndarray]:
        half = self.count // 2
        return self.order[:half], self.order[half : 2 * half]

    def real_features(self, inception: InceptionFeatures, progress=None) -> np.ndarray:
        if self._real_features is None:
            self._real_features = _real_features(self.real, inception, progress)
        return self._real_features


def draw_for_rows(generator, embeddings: torch.Tensor, seed: int, device: torch.device, sampling: Sampling = Sampling()) -> torch.Tensor:
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
    images = draw_for_rows(generator, embeddings.repeat_interleave(samples, 0), seed, device, sampling)
    return pairwise_spreads(np.asarray(features(images)).reshape(len(embeddings), samples, -1))


# --- typed results -----------------------------------------------------------------------------------
def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


@dataclass(frozen=True)
class Spread:
    mean: float
    std: float

    def to_json(self) -> dict:
        return {"mean": self.mean, "std": self.std}


@dataclass(frozen=True)
class BesideReal:
    """One row of a per-colour or per-place table: how many captions, and the share of generated
    and of real images that show it (None where no caption names it)."""

    captions: int
    generated: float | None
    real: float | None

    def to_json(self) -> dict:
        return {"captions": self.captions, "generated": self.generated, "real": self.real}


@dataclass(frozen=True)
class FidResult:
    fid: float
    fid_floor: float
    half_size: int
    kid: Spread
    kid_floor: Spread
    kid_subset_size: int

    def to_json(self) -> dict:
        return {"half_size": self.half_size, "fid": self.fid, "fid_floor": self.fid_floor, "kid": self.kid.to_json(),
                "kid_floor": self.kid_floor.to_json(), "kid_subset_size": self.kid_subset_size}

    def lines(self) -> list[str]:
        kid, floor = self.kid, self.kid_floor
        return [f"FID {self.fid:.2f}   (floor, real vs real: {self.fid_floor:.2f}; halves of {self.half_size})",
                f"KID {kid.mean:.4f} ± {kid.std:.4f}   (floor: {floor.mean:.4f} ± {floor.std:.4f})"]


@dataclass(frozen=True)
class RPrecisionResult:
    r_precision: float
    r_precision_real: float
    r_precision_other_captions: float
    r_candidates: int

    def to_json(self) -> dict:
        return {"r_precision": self.r_precision, "r_precision_real": self.r_precision_real,
                "r_precision_other_captions": self.r_precision_other_captions, "r_candidates": self.r_candidates}

    def lines(self) -> list[str]:
        return [f"R-precision {self.r_precision:.3f}   (real images: {self.r_precision_real:.3f}; "
                f"their other captions: {self.r_precision_other_captions:.3f}; chance {1 / self.r_candidates:.3f})"]


def _table_line(rows: dict[str, BesideReal], *, decimals: int) -> str:
    def cell(name: str, row: BesideReal) -> str:
        if not row.captions:
            return f"{name} (no captions)"
        return f"{name} {row.generated:.{decimals}f}/{row.real:.{decimals}f} ({row.captions})"

    return "  " + ", ".join(cell(name, row) for name, row in rows.items()) + "   (generated/real, captions)"


@dataclass(frozen=True)
class ShareBesideReal:
    """The share of generated images that pass a caption rule, beside the real images' share on the
    same captions, over ``captions`` captions that name what the rule checks, with a table per
    colour or place. :data:`KEYS` names the four in the report's JSON."""

    share: float | None
    real: float | None
    captions: int
    table: dict[str, BesideReal]
    KEYS: ClassVar[tuple[str, str, str, str]] = ("share", "real", "captions", "table")

    def to_json(self) -> dict:
        table = {name: row.to_json() for name, row in self.table.items()}
        return dict(zip(self.KEYS, (self.share, self.real, self.captions, table)))


@dataclass(frozen=True)
class ColourResult(ShareBesideReal):
    KEYS: ClassVar[tuple[str, str, str, str]] = ("colour_match", "colour_match_real", "colour_captions", "colour_match_per_colour")

    def lines(self) -> list[str]:
        lines = [f"Colour match {_share(self.share)}   (real images, same captions: {_share(self.real)}; "
                 f"{self.captions} captions name a petal colour)"]
        if self.table:
            lines.append(_table_line(self.table, decimals=2))
        return lines


@dataclass(frozen=True)
class SecondColourResult(ShareBesideReal):
    KEYS: ClassVar[tuple[str, str, str, str]] = ("second_colour", "second_colour_real", "second_colour_captions", "second_colour_per_place")

    def lines(self) -> list[str]:
        return [f"Second colours {_share(self.share)}   (real images, same captions: {_share(self.real)}; "
                f"{self.captions} captions name a centre colour or two petal colours)",
                _table_line(self.table, decimals=3)]


@dataclass(frozen=True)
class DiversityResult:
    diversity: float
    diversity_real: float | None
    # The captions least varied: a collapse onto one flower for some captions shows here first,
    # while the mean can still look healthy.
    diversity_lowest_tenth: float
    diversity_real_lowest_tenth: float | None
    diversity_captions: int
    diversity_samples: int
    diversity_classes: int

    def to_json(self) -> dict:
        return {"diversity": self.diversity, "diversity_real": self.diversity_real,
                "diversity_lowest_tenth": self.diversity_lowest_tenth, "diversity_real_lowest_tenth": self.diversity_real_lowest_tenth,
                "diversity_captions": self.diversity_captions, "diversity_samples": self.diversity_samples,
                "diversity_classes": self.diversity_classes}

    def lines(self) -> list[str]:
        real = "n/a" if self.diversity_real is None else f"{self.diversity_real:.2f}"
        real_tenth = "n/a" if self.diversity_real_lowest_tenth is None else f"{self.diversity_real_lowest_tenth:.2f}"
        return [f"Diversity {self.diversity:.2f}, least varied tenth of captions {self.diversity_lowest_tenth:.2f}   "
                f"(real images of one class: {real}, least varied tenth of classes {real_tenth}; "
                f"{self.diversity_samples} noise seeds x {self.diversity_captions} captions; 0 = the same image whatever the noise)"]


MetricResult = FidResult | RPrecisionResult | ColourResult | SecondColourResult | DiversityResult


# --- the metrics ---------------------------------------------------------------------------------------
@dataclass
class Measuring:
    """What a metric measures with: the split, the generator and how it samples, and the tools the
    chosen metrics need (``fake``: images drawn from the picked captions, drawn once for all)."""

    generator: torch.nn.Module
    evals: EvalSplit
    device: torch.device
    sampling: Sampling
    inception: InceptionFeatures | None = None
    image_encoder: object | None = None
    show_progress: bool = False
    fake: torch.Tensor | None = None


def _fid(m: Measuring) -> FidResult:
    evals = m.evals
    with progress_bar("Inception, real images", total=evals.count, enabled=m.show_progress) as advance:
        real = evals.real_features(m.inception, advance)
    with progress_bar("Inception, generated", total=evals.count, enabled=m.show_progress) as advance:
        fake = m.inception(m.fake, progress=advance)
    half_a, half_b = evals.halves
    # Subsets of half the half (at most 1,000, as Bińkowski et al.): the spread over them then says
    # how much the figure moves with the sample; subsets of all of it would all be the same set.
    subset = min(1000, max(2, len(half_a) // 2))
    kid = kernel_inception_distance(real[half_a], fake[half_b], subset_size=subset, seed=evals.seed)
    kid_floor = kernel_inception_distance(real[half_a], real[half_b], subset_size=subset, seed=evals.seed)
    return FidResult(
        fid=round(frechet_distance(real[half_a], fake[half_b]), 3), fid_floor=round(frechet_distance(real[half_a], real[half_b]), 3),
        half_size=len(half_a), kid=Spread(*kid), kid_floor=Spread(*kid_floor), kid_subset_size=subset,
    )


def _r_precision(m: Measuring) -> RPrecisionResult:
    evals, seed = m.evals, m.evals.seed
    candidates = min(R_CANDIDATES, evals.count)
    text = evals.caption_embeddings.numpy()
    other_captions = other_captions_embeddings(evals.real.embeddings.numpy(), evals.real.counts.numpy(), evals.pick.numpy())
    return RPrecisionResult(
        r_precision=round(r_precision(m.image_encoder.embed(m.fake).numpy(), text, candidates=candidates, seed=seed), 4),
        r_precision_real=round(r_precision(m.image_encoder.embed(evals.real.images).numpy(), text, candidates=candidates, seed=seed), 4),
        r_precision_other_captions=round(r_precision(other_captions, text, candidates=candidates, seed=seed), 4),
        r_candidates=candidates,
    )


def _colour(m: Measuring) -> ColourResult:
    # Generated image i and real image i are judged against the same caption, the one picked for i.
    named = m.evals.petal_colours
    fake = colour_match(dominant_colours(m.fake.numpy()), named)
    real = colour_match(dominant_colours(m.evals.real.images.numpy()), named)
    return ColourResult(
        share=_rounded(fake["match"]), real=_rounded(real["match"]), captions=fake["captions"],
        table={name: BesideReal(row["captions"], round(row["match"], 4), round(real["per_colour"][name]["match"], 4))
               for name, row in fake["per_colour"].items()},
    )


def _second_colour(m: Measuring) -> SecondColourResult:
    wanted = [second_colours(caption) for caption in m.evals.captions]
    fake = second_colour_match(m.fake.numpy(), wanted)
    real = second_colour_match(m.evals.real.images.numpy(), wanted)
    return SecondColourResult(
        share=_rounded(fake["match"]), real=_rounded(real["match"]), captions=fake["captions"],
        table={place: BesideReal(row["captions"], _rounded(row["match"]), _rounded(real["per_place"][place]["match"]))
               for place, row in fake["per_place"].items()},
    )


def _diversity(m: Measuring) -> DiversityResult:
    evals = m.evals
    rows = torch.from_numpy(evals.diversity_rows)
    with progress_bar("diversity", total=len(rows) * DIVERSITY_SAMPLES, enabled=m.show_progress) as advance:
        spreads = caption_spreads(m.generator, evals.caption_embeddings[rows], lambda images: m.inception(images, progress=advance),
                                  seed=evals.seed, device=m.device, sampling=m.sampling)
    real = pairwise_spreads(evals.real_features(m.inception)[evals.class_groups]) if len(evals.class_groups) else None
    return DiversityResult(
        diversity=round(float(spreads.mean()), 3),
        diversity_real=None if real is None else round(float(real.mean()), 3),
        diversity_lowest_tenth=round(float(np.quantile(spreads, 0.1)), 3),
        diversity_real_lowest_tenth=None if real is None else round(float(np.quantile(real, 0.1)), 3),
        diversity_captions=len(rows), diversity_samples=DIVERSITY_SAMPLES, diversity_classes=len(evals.class_groups),
    )


def flower_captions(evals: EvalSplit) -> str | None:
    """None where the colour rules apply to ``evals``' captions, else why they do not."""
    share = sum(bool(named) for named in evals.petal_colours) / evals.count
    if share >= FLOWER_CAPTION_SHARE:
        return None
    return (f"{share:.0%} of the {evals.split} split's captions name a petal colour (the colour rules read flower captions; "
            f"they apply from {FLOWER_CAPTION_SHARE:.0%})")


@dataclass(frozen=True)
class Metric:
    name: str
    measure: Callable[[Measuring], MetricResult]
    draws_captions: bool = True  # needs images generated from the picked captions
    inception: bool = False
    image_encoder: bool = False
    applies: Callable[[EvalSplit], str | None] = lambda evals: None  # None, or why it is not measured here


METRICS: dict[str, Metric] = {metric.name: metric for metric in (
    Metric("fid", _fid, inception=True),
    Metric("r_precision", _r_precision, image_encoder=True),
    Metric("colour", _colour, applies=flower_captions),
    Metric("second_colour", _second_colour, applies=flower_captions),
    Metric("diversity", _diversity, draws_captions=False, inception=True),
)}


def parse_metrics(names: str | Sequence[str]) -> tuple[str, ...]:
    """``"fid,colour"`` (or a sequence; ``"all"``: every one) -> the chosen metrics in :data:`METRICS`
    order; unknown names refused."""
    if names == "all":
        return tuple(METRICS)
    chosen = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
    chosen = [n for n in chosen if n]
    unknown = [n for n in chosen if n not in METRICS]
    if unknown or not chosen:
        raise T2IError(f"metrics are a comma-separated choice of {', '.join(METRICS)}, got {','.join(chosen) or 'none'}",
                       parameter="metrics")
    return tuple(n for n in METRICS if n in chosen)


def needs_inception(metrics: Sequence[str]) -> bool:
    return any(METRICS[name].inception for name in metrics)


@dataclass
class EvalReport:
    """The figures of one measurement: a typed result per metric measured, and why any chosen
    metric was not (it does not apply to the split)."""

    images: int
    truncation: float
    rerank: int
    results: dict[str, MetricResult]
    not_measured: dict[str, str] = field(default_factory=dict)

    @property
    def fid(self) -> FidResult | None:
        return self.results.get("fid")  # type: ignore[return-value]

    def to_json(self) -> dict:
        """The flat JSON of report files and ``metrics.jsonl`` (unchanged since the first reports)."""
        figures: dict = {"images": self.images, "truncation": self.truncation, "rerank": self.rerank}
        for result in self.results.values():
            figures.update(result.to_json())
        if self.not_measured:
            figures["not_measured"] = dict(self.not_measured)
        return figures

    def lines(self) -> list[str]:
        """A line or two per figure, each beside its real-image reference."""
        lines = [line for result in self.results.values() for line in result.lines()]
        return lines + [f"{name}: not measured, {why}" for name, why in self.not_measured.items()]


def measure(generator, evals: EvalSplit, *, device: torch.device, inception: InceptionFeatures | None = None,
            metrics: Sequence[str] = tuple(METRICS), image_encoder=None, sampling: Sampling = Sampling(),
            show_progress: bool = False) -> EvalReport:
    """The chosen ``metrics`` of ``generator`` on ``evals`` (those that apply to it). ``inception``
    is needed for fid and diversity, ``image_encoder`` for r_precision."""
    chosen = [METRICS[name] for name in parse_metrics(metrics)]
    not_measured = {metric.name: why for metric in chosen if (why := metric.applies(evals)) is not None}
    chosen = [metric for metric in chosen if metric.name not in not_measured]
    measuring = Measuring(generator, evals, device, sampling, inception, image_encoder, show_progress)
    if any(metric.draws_captions for metric in chosen):
        measuring.fake = draw_for_rows(generator, evals.caption_embeddings, evals.seed, device, sampling)
    results = {metric.name: metric.measure(measuring) for metric in chosen}
    return EvalReport(evals.count, sampling.truncation, sampling.rerank, results, not_measured)
