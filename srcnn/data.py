"""Training pairs for the SR networks: high-resolution images and their bicubic-degraded copies."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from PIL import Image

from srcnn.errors import SRError
from srcnn.images import bicubic, load_rgb, luminance, shrink, to_tensor


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


# FSRCNN's augmentation (Dong et al. 2016): every training image also at these fractions of its size.
# Rotations by 90/180/270 degrees (and flips) are drawn per patch by PatchSampler.
AUGMENT_SIZES = (1.0, 0.9, 0.8, 0.7, 0.6)


def make_pair(hr: Image.Image, scale: int, mode: str, *, low_resolution_input: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(network input, high-resolution target), each ``(C, h, w)`` in [0, 1]. The input is the
    bicubic reduction of ``hr`` by ``scale`` (``low_resolution_input``, for FSRCNN), or that
    reduction enlarged back bicubically (for SRCNN)."""
    hr, low = shrink(hr, scale)
    source = low if low_resolution_input else bicubic(low, hr.size)
    if mode == "y":
        return luminance(source), luminance(hr)
    return to_tensor(source), to_tensor(hr)


def resized_copies(image: Image.Image, sizes: tuple[float, ...]) -> list[Image.Image]:
    """``image`` at each fraction of its size in ``sizes`` (bicubic, antialiased when shrinking)."""
    copies = []
    for fraction in sizes:
        if fraction == 1:
            copies.append(image)
        else:
            copies.append(bicubic(image, (max(1, round(image.width * fraction)), max(1, round(image.height * fraction)))))
    return copies


class PatchSampler:
    """Random aligned patches (with flips and 90-degree turns) from images held in memory.

    ``patch`` is the target's side; a network with ``low_resolution_input`` gets the matching
    ``patch // scale`` input patch (and the target is cut to ``scale`` times that). ``sizes`` adds
    smaller copies of every image (:data:`AUGMENT_SIZES`).
    """

    def __init__(self, paths: list[Path], *, scale: int, patch: int, mode: str, seed: int = 0,
                 low_resolution_input: bool = False, sizes: tuple[float, ...] = (1.0,)):
        if not sizes or any(not 0 < f <= 1 for f in sizes):
            raise SRError(f"augmentation sizes must lie in (0, 1], got {sizes}")
        self.factor = scale if low_resolution_input else 1  # target pixels per input pixel
        self.patch = patch // self.factor  # input patch side
        if self.patch < 3:
            raise SRError(f"patch {patch} is too small for x{scale}: the input patch would be {self.patch} px")
        self.pairs = []
        for path in paths:
            for image in resized_copies(load_rgb(path), sizes):
                if min(image.size) < 4 * scale:
                    continue
                inputs, targets = make_pair(image, scale, mode, low_resolution_input=low_resolution_input)
                if min(inputs.shape[-2:]) >= self.patch:
                    self.pairs.append((inputs.half(), targets.half()))  # half: 600 photos fit in ~0.5 GB
        if not self.pairs:
            raise SRError(f"no training image is at least {patch} px on its short side")
        areas = torch.tensor([float(p[0].shape[-1] * p[0].shape[-2]) for p in self.pairs])
        self.weights = areas / areas.sum()  # big images give proportionally more patches
        self.generator = torch.Generator().manual_seed(seed)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        g, p, k = self.generator, self.patch, self.factor
        picks = torch.multinomial(self.weights, size, replacement=True, generator=g)
        inputs, targets = [], []
        for index in picks.tolist():
            source, target = self.pairs[index]
            h, w = source.shape[-2:]
            top = int(torch.randint(h - p + 1, (), generator=g))
            left = int(torch.randint(w - p + 1, (), generator=g))
            x = source[:, top : top + p, left : left + p]
            y = target[:, top * k : (top + p) * k, left * k : (left + p) * k]
            turns = int(torch.randint(4, (), generator=g))
            if torch.rand((), generator=g) < 0.5:
                x, y = x.flip(-1), y.flip(-1)
            inputs.append(torch.rot90(x, turns, (-2, -1)))
            targets.append(torch.rot90(y, turns, (-2, -1)))
        return torch.stack(inputs).float(), torch.stack(targets).float()
