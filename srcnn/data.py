"""Training pairs for SRCNN: high-resolution images and their bicubic-degraded copies."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from srcnn.errors import SRError
from srcnn.images import degrade, load_rgb, luminance, to_tensor


def is_held_out(path: Path, *, valid_fraction: float, seed: int = 0) -> bool:
    """Whether ``path`` belongs to the validation part: decided by a hash of its file name, so
    training and a later evaluation agree on the split without sharing a list."""
    digest = hashlib.sha1(f"{seed}:{Path(path).name}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < valid_fraction


def holdout_split(paths: list[Path], *, valid_fraction: float, seed: int = 0) -> tuple[list[Path], list[Path]]:
    """(train, valid) by :func:`is_held_out`; fails when either part would be empty."""
    if not 0 < valid_fraction < 1:
        raise SRError(f"valid fraction must lie in (0, 1), got {valid_fraction}")
    valid = [p for p in paths if is_held_out(p, valid_fraction=valid_fraction, seed=seed)]
    train = [p for p in paths if p not in set(valid)]
    if not valid or not train:
        raise SRError(f"{len(paths)} images are too few to hold out {valid_fraction:.0%} for validation")
    return sorted(train), sorted(valid)


def load_pair(path: Path, scale: int, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(bicubic-degraded input, high-resolution target), each ``(C, H, W)`` in [0, 1]."""
    hr, upscaled = degrade(load_rgb(path), scale)
    if mode == "y":
        return luminance(upscaled), luminance(hr)
    return to_tensor(upscaled), to_tensor(hr)


class PatchSampler:
    """Random aligned patches (with flips and 90-degree turns) from images held in memory."""

    def __init__(self, paths: list[Path], *, scale: int, patch: int, mode: str, seed: int = 0):
        self.pairs = []
        for path in paths:
            inputs, targets = load_pair(path, scale, mode)
            if min(inputs.shape[-2:]) >= patch:
                self.pairs.append((inputs.half(), targets.half()))  # half: 600 photos fit in ~0.5 GB
        if not self.pairs:
            raise SRError(f"no training image is at least {patch} px on its short side")
        areas = torch.tensor([float(p[0].shape[-1] * p[0].shape[-2]) for p in self.pairs])
        self.weights = areas / areas.sum()  # big images give proportionally more patches
        self.patch = patch
        self.generator = torch.Generator().manual_seed(seed)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.generator
        picks = torch.multinomial(self.weights, size, replacement=True, generator=g)
        inputs, targets = [], []
        for index in picks.tolist():
            source, target = self.pairs[index]
            h, w = source.shape[-2:]
            top = int(torch.randint(h - self.patch + 1, (), generator=g))
            left = int(torch.randint(w - self.patch + 1, (), generator=g))
            x = source[:, top : top + self.patch, left : left + self.patch]
            y = target[:, top : top + self.patch, left : left + self.patch]
            turns = int(torch.randint(4, (), generator=g))
            if torch.rand((), generator=g) < 0.5:
                x, y = x.flip(-1), y.flip(-1)
            inputs.append(torch.rot90(x, turns, (-2, -1)))
            targets.append(torch.rot90(y, turns, (-2, -1)))
        return torch.stack(inputs).float(), torch.stack(targets).float()
