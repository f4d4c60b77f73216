"""Drawing from a generator: seeded noise (optionally truncated) and the batched draw loop.

Below the pipeline, training and evaluation alike: each of them draws through here, so one seed
gives one image everywhere. Image i's noise comes from its own generator seeded with ``seeds[i]``,
so its pixels never depend on what else is in the batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

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
        raise RequestError("truncation", f"the truncation must lie in (0, 1] (1 = none), got {psi}")


def _draw(stream: torch.Generator, noise_dim: int, threshold: float) -> torch.Tensor:
    """The next noise vector of ``stream``, entries beyond ``threshold`` drawn again from it."""
    z = torch.randn(noise_dim, generator=stream)
    outside = z.abs() > threshold
    while outside.any():
        z[outside] = torch.randn(int(outside.sum()), generator=stream)
        outside = z.abs() > threshold
    return z


def seeded_noise(noise_dim: int, seeds: list[int], *, truncation: float = NO_TRUNCATION, candidates: int = 1) -> torch.Tensor:
    """One noise vector ``(len(seeds), noise_dim)`` per seed, each from its own generator. With
    ``truncation`` < 1, entries beyond :func:`truncation_threshold` are drawn again from the same
    generator until none is (at 1 nothing is redrawn: the bits are those of an untruncated draw).
    With ``candidates`` K > 1, ``(len(seeds), K, noise_dim)``: each seed's stream goes on to K
    vectors, the first being the one drawn without candidates (what ``--rerank`` chooses among)."""
    threshold = truncation_threshold(truncation)
    rows = []
    for seed in seeds:
        stream = torch.Generator().manual_seed(seed)
        draws = [_draw(stream, noise_dim, threshold) for _ in range(candidates)]
        rows.append(draws[0] if candidates == 1 else torch.stack(draws))
    if not rows:
        return torch.empty((0, noise_dim) if candidates == 1 else (0, candidates, noise_dim))
    return torch.stack(rows)


def check_strength(strength: float) -> None:
    if not (isinstance(strength, (int, float)) and 0 <= strength <= 1):
        raise RequestError("strength", f"the variation strength must lie in [0, 1], got {strength}")


def variation_noise(noise_dim: int, base_seed: int, seeds: list[int], strength: float, *,
                    truncation: float = NO_TRUNCATION, candidates: int = 1) -> torch.Tensor:
    """Noise near seed ``base_seed``'s: ``sqrt(1 - s^2) z_base + s z_i`` with ``z_i`` the noise of
    ``seeds[i]`` and ``s`` the ``strength`` (0: the base noise itself, 1: seed i's own). The mix keeps
    the noise's spread, so a variation is as typical a draw as the flower it varies. ``candidates``
    as in :func:`seeded_noise` (each candidate varies the same base noise)."""
    check_strength(strength)
    base = seeded_noise(noise_dim, [base_seed], truncation=truncation)[0]
    fresh = seeded_noise(noise_dim, seeds, truncation=truncation, candidates=candidates)
    return math.sqrt(1 - strength**2) * base + strength * fresh


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
            raise RequestError("rerank", f"rerank must draw 1 to {MAX_RERANK} candidates an image, got {self.rerank}")


def draw_images(generator: torch.nn.Module, embeddings: torch.Tensor | None, seeds: list[int], *,
                device: torch.device, batch_size: int = 64, sampling: Sampling = Sampling(),
                variation_of: int | None = None, strength: float = 0.0,
                progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """uint8 ``(N, 3, S, S)`` images on the CPU, image i from the noise of ``seeds[i]`` (or, with
    ``variation_of``, from :func:`variation_noise` around that seed's) and row i of ``embeddings``
    (None for an unconditional generator), drawn as ``sampling`` says (truncation, reranking),
    ``batch_size`` at a time (then ``progress(n)``)."""
    sampling.check()
    noise_dim, k = generator.config.noise_dim, sampling.rerank
    if variation_of is None:
        noise = seeded_noise(noise_dim, seeds, truncation=sampling.truncation, candidates=k)
    else:
        noise = variation_noise(noise_dim, variation_of, seeds, strength, truncation=sampling.truncation, candidates=k)
    if k == 1:
        return draw_from_noise(generator, noise, embeddings, device=device, batch_size=batch_size, progress=progress)
    if embeddings is None or sampling.scorer is None:
        raise RequestError("rerank", "reranking scores images against their captions with a caption-matching model: "
                                     "it needs both")
    chosen = []
    per_batch = max(1, batch_size // k)  # images whose K candidates go through G together
    for start in range(0, len(seeds), per_batch):
        rows = slice(start, start + per_batch)
        caption = embeddings[rows].repeat_interleave(k, 0)  # (n * K, D)
        candidates = draw_from_noise(generator, noise[rows].reshape(-1, noise_dim), caption, device=device, batch_size=batch_size)
        with torch.inference_mode():
            scores = sampling.scorer(candidates, caption).reshape(-1, k)  # (n, K)
        best = scores.argmax(dim=1)  # the first candidate wins ties
        chosen.append(candidates.reshape(-1, k, *candidates.shape[1:])[torch.arange(len(best)), best])
        if progress is not None:
            progress(len(best))
    return torch.cat(chosen)


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
    generator = build_generator(info.model)
    load_weights(info.path / "generator.safetensors", generator, what="generator")
    return generator.eval().requires_grad_(False), info
