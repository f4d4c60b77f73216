"""Drawing from a generator: seeded noise (optionally truncated) and the batched draw loop.

Below the pipeline, training and evaluation alike: each of them draws through here, so one seed
gives one image everywhere. Image i's noise comes from its own generator seeded with ``seeds[i]``
(or from a :class:`NoiseRecipe` built on such draws), so its noise never depends on what else is in
the batch. Its pixels can, by a grey level here and there: a convolution's arithmetic depends on the
batch's size. So a drawing is repeated bit for bit by drawing it in a batch of the same shape.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import torch

from t2i_cli.building import no_initialisation
from t2i_cli.checkpoint import CheckpointInfo, load_weights, read_checkpoint
from t2i_cli.errors import RequestError
from t2i_cli.grid import to_uint8
from t2i_cli.models import build_generator

NO_TRUNCATION = 1.0


def truncation_threshold(psi: float) -> float:
    """The |z| beyond which a noise entry is drawn again, for truncation ``psi``: the share of the
    standard normal's mass that is kept (BigGAN's truncation trick, parameterised so that 1 keeps
    everything: psi 0.9 cuts at 1.64, 0.5 at 0.67)."""
    check_truncation(psi)
    return math.inf if psi >= NO_TRUNCATION else math.sqrt(2) * torch.erfinv(torch.tensor(psi, dtype=torch.float64)).item()


def check_truncation(psi: float) -> None:
    if not (isinstance(psi, (int, float)) and 0 < psi <= NO_TRUNCATION):
        raise RequestError(f"the truncation must lie in (0, 1] (1 = none), got {psi}", parameter="truncation")


def _draw(stream: torch.Generator, noise_dim: int, threshold: float) -> torch.Tensor:
    """The next noise vector of ``stream``, entries beyond ``threshold`` drawn again from it."""
    z = torch.randn(noise_dim, generator=stream)
    outside = z.abs() > threshold
    while outside.any():
        z[outside] = torch.randn(int(outside.sum()), generator=stream)
        outside = z.abs() > threshold
    return z


def seeded_noise(noise_dim: int, seeds: list[int], *, truncation: float = NO_TRUNCATION) -> torch.Tensor:
    """One noise vector ``(len(seeds), noise_dim)`` per seed, each from its own generator. With
    ``truncation`` < 1, entries beyond :func:`truncation_threshold` are drawn again from the same
    generator until none is (at 1 nothing is redrawn: the bits are those of an untruncated draw).
    The stream goes on to the candidates ``--rerank`` draws (:class:`Draw`)."""
    return recipe_noise(noise_dim, [Draw(seed) for seed in seeds], truncation=truncation)


def check_strength(strength: float) -> None:
    if not (isinstance(strength, (int, float)) and 0 <= strength <= 1):
        raise RequestError(f"the variation strength must lie in [0, 1], got {strength}", parameter="strength")


MAX_SEED = 2**63 - 1
_DRAW = re.compile(r"(\d+)(?:c(\d+))?")
_STEP = re.compile(r"~([0-9.]+(?:e[-+]?\d+)?):(\d+(?:c\d+)?)")  # a strength as repr() writes it, 0.3 or 1e-05


@dataclass(frozen=True)
class Draw:
    """The ``candidate``-th vector (from 0) of seed ``seed``'s noise stream: 0 is the plain draw,
    1 to K - 1 the other candidates ``--rerank K`` looks at."""

    seed: int
    candidate: int = 0

    def __str__(self) -> str:
        return f"{self.seed}c{self.candidate}" if self.candidate else str(self.seed)


@dataclass(frozen=True)
class NoiseRecipe:
    """How one image's noise is drawn, as text a user can pass back (``--noise-from``): a seed's
    draw (``12``, or ``12c3`` for its reranking candidate 3), then any number of variation steps,
    each moving the noise by a strength towards another draw (``12~0.3:40``: seed 12's noise moved
    0.3 towards seed 40's; steps chain, ``12~0.3:40~0.2:7``). Each step is
    ``sqrt(1 - s^2) z + s z_draw``, which keeps the noise's spread: a variation is as typical a
    draw as the flower it varies."""

    start: Draw
    steps: tuple[tuple[float, Draw], ...] = ()

    @classmethod
    def of(cls, value: "int | str | NoiseRecipe") -> "NoiseRecipe":
        """A recipe from a seed, its text or itself; text that is not one is refused."""
        if isinstance(value, NoiseRecipe):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            text = str(value)
        elif isinstance(value, str):
            text = value.strip()
        else:
            raise RequestError(f"a noise recipe is a seed or text like 12~0.3:40, got {value!r}", parameter="noise_from")
        first = _DRAW.match(text)
        problem = f"{text!r} is not a noise recipe: a seed (12), a candidate (12c3), then any variations (~0.3:40)"
        if first is None:
            raise RequestError(problem, parameter="noise_from")
        steps, at = [], first.end()
        while at < len(text):
            step = _STEP.match(text, at)
            if step is None:
                raise RequestError(problem, parameter="noise_from")
            try:
                strength = float(step.group(1))
            except ValueError:
                raise RequestError(problem, parameter="noise_from") from None
            if not 0 <= strength <= 1:
                raise RequestError(f"in noise {text!r}, a variation's strength must lie in [0, 1], got {strength}", parameter="noise_from")
            steps.append((strength, _parse_draw(step.group(2))))
            at = step.end()
        return cls(_parse_draw(first.group(0)), tuple(steps))

    def __str__(self) -> str:
        return str(self.start) + "".join(f"~{strength!r}:{draw}" for strength, draw in self.steps)

    @property
    def last(self) -> Draw:
        return self.steps[-1][1] if self.steps else self.start

    def vary(self, strength: float, seed: int) -> "NoiseRecipe":
        """This noise moved by ``strength`` towards seed ``seed``'s."""
        check_strength(strength)
        return NoiseRecipe(self.start, (*self.steps, (float(strength), Draw(seed))))

    def with_candidate(self, candidate: int) -> "NoiseRecipe":
        """The recipe with its last draw replaced by that seed's ``candidate``-th vector."""
        if not self.steps:
            return NoiseRecipe(Draw(self.start.seed, candidate))
        return NoiseRecipe(self.start, (*self.steps[:-1], (self.steps[-1][0], Draw(self.last.seed, candidate))))

    def vector(self, noise_dim: int, *, truncation: float = NO_TRUNCATION) -> torch.Tensor:
        """The noise ``(noise_dim,)``; a seed's recipe gives :func:`seeded_noise`'s vector bit for bit."""
        return self._vector(noise_dim, truncation_threshold(truncation))

    def _vector(self, noise_dim: int, threshold: float) -> torch.Tensor:
        z = _draw_vector(self.start, noise_dim, threshold)
        for strength, draw in self.steps:
            z = math.sqrt(1 - strength**2) * z + strength * _draw_vector(draw, noise_dim, threshold)
        return z

    def check_unchosen(self) -> None:
        """Refuse reranking a recipe whose last draw names its candidate already (``12c3``)."""
        if self.last.candidate:
            raise RequestError(f"noise {self} names its reranking candidate already: draw it without --rerank", parameter="rerank")


def _parse_draw(text: str) -> Draw:
    seed, _, candidate = text.partition("c")
    draw = Draw(int(seed), int(candidate or 0))
    if draw.seed > MAX_SEED:
        raise RequestError(f"a seed is at most 2^63 - 1, got {draw.seed}", parameter="noise_from")
    if draw.candidate >= MAX_RERANK:
        raise RequestError(f"reranking draws at most {MAX_RERANK} candidates, so c{draw.candidate} is none of them", parameter="noise_from")
    return draw


def _draw_vector(draw: Draw, noise_dim: int, threshold: float) -> torch.Tensor:
    stream = torch.Generator().manual_seed(draw.seed)
    for _ in range(draw.candidate + 1):
        z = _draw(stream, noise_dim, threshold)
    return z


def recipe_noise(noise_dim: int, recipes: Sequence["int | Draw | NoiseRecipe"], *, truncation: float = NO_TRUNCATION) -> torch.Tensor:
    """``(len(recipes), noise_dim)``: each recipe's vector (a plain int is a seed's)."""
    if not recipes:
        return torch.empty((0, noise_dim))
    threshold = truncation_threshold(truncation)  # once for the batch, not once a vector
    return torch.stack([_draw_vector(r, noise_dim, threshold) if isinstance(r, Draw) else
                        NoiseRecipe.of(r)._vector(noise_dim, threshold) for r in recipes])


MAX_RERANK = 32


@dataclass(frozen=True)
class Sampling:
    """How each image's noise is drawn: ``truncation`` (:func:`truncation_threshold`), and with
    ``rerank`` K > 1, K candidates of which ``scorer(images, embeddings)`` (uint8 images and their
    caption embeddings -> a score per image, higher is better) picks one; K = 1 is the plain draw."""

    truncation: float = NO_TRUNCATION
    rerank: int = 1
    scorer: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None

    def check(self) -> None:
        check_truncation(self.truncation)
        if not (isinstance(self.rerank, int) and 1 <= self.rerank <= MAX_RERANK):
            raise RequestError(f"rerank must draw 1 to {MAX_RERANK} candidates an image, got {self.rerank}", parameter="rerank")


class Drawn(NamedTuple):
    images: torch.Tensor  # uint8 (N, 3, S, S) on the CPU
    noise: list[NoiseRecipe]  # each image's noise, with the candidate reranking chose


def draw(generator: torch.nn.Module, embeddings: torch.Tensor | None, noise: Sequence[int | NoiseRecipe], *,
         device: torch.device, batch_size: int = 64, sampling: Sampling = Sampling(),
         progress: Callable[[int], None] | None = None) -> Drawn:
    """Image i from the noise of ``noise[i]`` (a seed, or a :class:`NoiseRecipe`) and row i of
    ``embeddings`` (None for an unconditional generator), drawn as ``sampling`` says (truncation,
    reranking among candidates of each recipe's last draw), ``batch_size`` at a time (then
    ``progress(n)``)."""
    sampling.check()
    recipes = [NoiseRecipe.of(r) for r in noise]
    noise_dim, k = generator.config.noise_dim, sampling.rerank
    if k == 1:
        images = draw_from_noise(generator, recipe_noise(noise_dim, recipes, truncation=sampling.truncation), embeddings,
                                 device=device, batch_size=batch_size, progress=progress)
        return Drawn(images, recipes)
    if embeddings is None or sampling.scorer is None:
        raise RequestError("reranking scores images against their captions with a caption-matching model: it needs both",
                           parameter="rerank")
    for recipe in recipes:
        recipe.check_unchosen()
    chosen, picked = [], []
    per_batch = max(1, batch_size // k)  # images whose K candidates go through G together
    for start in range(0, len(recipes), per_batch):
        rows = slice(start, start + per_batch)
        candidates = [r.with_candidate(j) for r in recipes[rows] for j in range(k)]  # the first is the plain draw
        caption = embeddings[rows].repeat_interleave(k, 0)  # (n * K, D)
        images = draw_from_noise(generator, recipe_noise(noise_dim, candidates, truncation=sampling.truncation), caption,
                                 device=device, batch_size=batch_size)
        with torch.inference_mode():
            scores = sampling.scorer(images, caption).reshape(-1, k)  # (n, K)
        best = scores.argmax(dim=1)  # the first candidate wins ties
        chosen.append(images.reshape(-1, k, *images.shape[1:])[torch.arange(len(best)), best])
        picked += [candidates[i * k + int(b)] for i, b in enumerate(best)]
        if progress is not None:
            progress(len(best))
    return Drawn(torch.cat(chosen), picked)


def draw_images(generator: torch.nn.Module, embeddings: torch.Tensor | None, noise: Sequence[int | NoiseRecipe], *,
                device: torch.device, batch_size: int = 64, sampling: Sampling = Sampling(),
                progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """:func:`draw`'s images: uint8 ``(N, 3, S, S)`` on the CPU."""
    return draw(generator, embeddings, noise, device=device, batch_size=batch_size, sampling=sampling, progress=progress).images


@torch.inference_mode()
def draw_from_noise(generator: torch.nn.Module, noise: torch.Tensor, embeddings: torch.Tensor | None, *,
                    device: torch.device, batch_size: int = 64, progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """:func:`draw_images` for given noise rows ``(N, Z)`` (a style encoder's, or seeded)."""
    out = []
    for start in range(0, len(noise), batch_size):
        rows = slice(start, start + batch_size)
        batch, _ = generator(noise[rows].to(device), None if embeddings is None else embeddings[rows].to(device))
        out.append(to_uint8(batch).cpu())
        if progress is not None:
            progress(len(out[-1]))
    return torch.cat(out)


def load_generator(path: str | Path) -> tuple[torch.nn.Module, CheckpointInfo]:
    """The (EMA) generator of a checkpoint folder or run, on the CPU in eval mode, and its info."""
    info = read_checkpoint(path)
    with no_initialisation():  # load_weights below sets every weight, strictly
        generator = build_generator(info.model)
    load_weights(info.path / "generator.safetensors", generator, what="generator")
    return generator.eval().requires_grad_(False), info
