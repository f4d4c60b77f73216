"""DiffAugment (Zhao et al. 2020): differentiable augmentations of every image D sees.

With 4,842 training images D soon memorises the real set; augmenting real *and* generated images
alike, with operations G's gradients pass through, lets D see more variety without G learning to
draw the augmentations. Only geometric ones are offered: a colour jitter would teach D to ignore
the very colours the captions name.

- ``translation``: each image shifted by a whole number of pixels, up to ``ratio`` (1/8) of its
  side in each direction; uncovered pixels become 0 (mid-grey in the [-1, 1] range).
- ``cutout``: a square of ``ratio`` (1/2) of the side, centred anywhere in the image, set to 0.

Draws come from ``generator`` (on the images' device) or torch's global generator, whose state
a resumed run restores (and which the trainer re-seeds per epoch with in-memory batches), so a
resumed run augments exactly as an uninterrupted one.
"""

from __future__ import annotations

import torch

TRANSLATION_RATIO = 1 / 8
CUTOUT_RATIO = 1 / 2


def translate(images: torch.Tensor, *, ratio: float = TRANSLATION_RATIO, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each image by (dy, dx) in [-ratio * S, ratio * S]; (B, C, H, W) -> same shape."""
    b, _, h, w = images.shape
    max_y, max_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dev = images.device
    dy = torch.randint(-max_y, max_y + 1, (b, 1, 1), device=dev, generator=generator)
    dx = torch.randint(-max_x, max_x + 1, (b, 1, 1), device=dev, generator=generator)
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


def cutout(images: torch.Tensor, *, ratio: float = CUTOUT_RATIO, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero one (ratio * H) x (ratio * W) box per image, centred at a uniform position (it may be
    clipped by the border, as in the paper); (B, C, H, W) -> same shape."""
    b, _, h, w = images.shape
    size_y, size_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dev = images.device
    top = torch.randint(0, h + (1 - size_y % 2), (b, 1, 1), device=dev, generator=generator) - size_y // 2
    left = torch.randint(0, w + (1 - size_x % 2), (b, 1, 1), device=dev, generator=generator) - size_x // 2
    ys = torch.arange(h, device=dev)[None, :, None]
    xs = torch.arange(w, device=dev)[None, None, :]
    inside = (ys >= top) & (ys < top + size_y) & (xs >= left) & (xs < left + size_x)  # (B, H, W)
    return images * (~inside)[:, None].to(images.dtype)


_OPERATIONS = {"translation": translate, "cutout": cutout}


def diff_augment(images: torch.Tensor, policy: tuple[str, ...], *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply the named operations in order (an empty policy returns ``images`` itself, drawing nothing)."""
    for name in policy:
        images = _OPERATIONS[name](images, generator=generator)
    return images
