"""DiffAugment (Zhao et al. 2020): differentiable augmentations of every image D sees.

With 4,842 training images D soon memorises the real set; augmenting real *and* generated images
alike, with operations G's gradients pass through, lets D see more variety without G learning to
draw the augmentations. Only geometric ones are offered: a colour jitter would teach D to ignore
the very colours the captions name.

- ``translation``: each image shifted by a whole number of pixels, up to ``ratio`` (1/8) of its
  side in each direction; uncovered pixels become 0 (mid-grey in the [-1, 1] range).
- ``cutout``: a square of ``ratio`` (1/2) of the side, centred anywhere in the image, set to 0.

A pyramid of images (MSG-GAN, ``models/pyramid.py``) is augmented with one draw for all its levels.

Draws come from ``generator`` (on the images' device) or torch's global generator, whose state
a resumed run restores (and which the trainer re-seeds per epoch with in-memory batches), so a
resumed run augments exactly as an uninterrupted one.
"""

from __future__ import annotations

import torch

TRANSLATION_RATIO = 1 / 8
CUTOUT_RATIO = 1 / 2


def _draw_shift(images: torch.Tensor, ratio: float, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(dy, dx), each (B, 1, 1), uniform integers in [-ratio * side, ratio * side]."""
    b, _, h, w = images.shape
    max_y, max_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dev = images.device
    dy = torch.randint(-max_y, max_y + 1, (b, 1, 1), device=dev, generator=generator)
    dx = torch.randint(-max_x, max_x + 1, (b, 1, 1), device=dev, generator=generator)
    return dy, dx


def _shift(images: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    b, _, h, w = images.shape
    dev = images.device
    # Gather from a copy with a one-pixel zero border: source positions outside the image are
    # clamped onto that border, so they read 0.
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1))
    rows = (torch.arange(h, device=dev)[None, :, None] - dy + 1).clamp(0, h + 1)  # (B, H, 1)
    cols = (torch.arange(w, device=dev)[None, None, :] - dx + 1).clamp(0, w + 1)  # (B, 1, W)
    batch = torch.arange(b, device=dev)[:, None, None]
    shifted = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)  # NHWC strides
    # Back to the input's layout, so D's convolutions see the layout the trainer chose.
    channels_last = images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous()
    return shifted.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def translate(images: torch.Tensor, *, ratio: float = TRANSLATION_RATIO, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each image by (dy, dx) in [-ratio * S, ratio * S]; (B, C, H, W) -> same shape."""
    return _shift(images, *_draw_shift(images, ratio, generator))


def _draw_box(images: torch.Tensor, ratio: float, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """(top, left) of each image's box, each (B, 1, 1), and its (height, width)."""
    b, _, h, w = images.shape
    size_y, size_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dev = images.device
    top = torch.randint(0, h + (1 - size_y % 2), (b, 1, 1), device=dev, generator=generator) - size_y // 2
    left = torch.randint(0, w + (1 - size_x % 2), (b, 1, 1), device=dev, generator=generator) - size_x // 2
    return top, left, size_y, size_x


def _cut(images: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size_y: int, size_x: int) -> torch.Tensor:
    _, _, h, w = images.shape
    ys = torch.arange(h, device=images.device)[None, :, None]
    xs = torch.arange(w, device=images.device)[None, None, :]
    inside = (ys >= top) & (ys < top + size_y) & (xs >= left) & (xs < left + size_x)  # (B, H, W)
    return images * (~inside)[:, None].to(images.dtype)


def cutout(images: torch.Tensor, *, ratio: float = CUTOUT_RATIO, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero one (ratio * H) x (ratio * W) box per image, centred at a uniform position (it may be
    clipped by the border, as in the paper); (B, C, H, W) -> same shape."""
    return _cut(images, *_draw_box(images, ratio, generator))


def _translate_pyramid(levels: list[torch.Tensor], generator: torch.Generator | None) -> list[torch.Tensor]:
    """One draw on the finest level; each level shifted by it scaled to its side, rounded towards
    zero (symmetric, and each coarse shift comes from about as many fine ones)."""
    dy, dx = _draw_shift(levels[0], TRANSLATION_RATIO, generator)
    full = levels[0].shape[-1]
    return [_shift(level, torch.div(dy * level.shape[-1], full, rounding_mode="trunc"),
                   torch.div(dx * level.shape[-1], full, rounding_mode="trunc")) for level in levels]


def _cutout_pyramid(levels: list[torch.Tensor], generator: torch.Generator | None) -> list[torch.Tensor]:
    """One box drawn on the finest level; each level cut by it scaled to its side."""
    top, left, size_y, size_x = _draw_box(levels[0], CUTOUT_RATIO, generator)
    full = levels[0].shape[-1]
    out = []
    for level in levels:
        side = level.shape[-1]
        out.append(_cut(level, torch.div(top * side, full, rounding_mode="floor"), torch.div(left * side, full, rounding_mode="floor"),
                        max(1, round(size_y * side / full)), max(1, round(size_x * side / full))))
    return out


_OPERATIONS = {"translation": translate, "cutout": cutout}
_PYRAMID_OPERATIONS = {"translation": _translate_pyramid, "cutout": _cutout_pyramid}


def diff_augment(images, policy: tuple[str, ...], *, generator: torch.Generator | None = None):
    """Apply the named operations in order (an empty policy returns ``images`` itself, drawing
    nothing). A pyramid (a list of levels, finest first: MSG-GAN) is augmented as one picture: each
    draw is made once, on the finest level, and applied to every level scaled to its side, so that
    D sees the same shift and the same hole at every scale, for real and generated pyramids alike."""
    pyramid = isinstance(images, (list, tuple))
    for name in policy:
        images = _PYRAMID_OPERATIONS[name](list(images), generator) if pyramid else _OPERATIONS[name](images, generator=generator)
    return images
