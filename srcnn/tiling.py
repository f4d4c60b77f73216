"""Running a convolutional network over an image in tiles, with no seams and bounded memory.

A network whose output pixel depends on input pixels at most ``halo`` away (its receptive radius)
gives, on a tile cut with ``halo`` pixels of context on every side that has neighbours, exactly the
values it gives on the whole image for the tile's inner part: the padding at the tile's cut edges
only reaches the context, which is thrown away. At the image's own edges the tile and the whole
image are padded alike. So the tiled result equals the untiled one (up to float summation order),
while memory follows the tile, not the image.

``out_scale`` serves networks that enlarge (an LR-space network: output = ``out_scale`` x input);
SRCNN, which runs on the already enlarged image, has ``out_scale`` 1.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch


def tile_boxes(height: int, width: int, tile: int, halo: int) -> Iterator[tuple[tuple[int, int, int, int], tuple[int, int, int, int]]]:
    """``((top, left, bottom, right) of the input with context, (top, left, bottom, right) of the
    part to keep)`` for tiles of ``tile`` x ``tile`` input pixels covering ``height`` x ``width``."""
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(top + tile, height), min(left + tile, width)
            yield (max(0, top - halo), max(0, left - halo), min(height, bottom + halo), min(width, right + halo)), (top, left, bottom, right)


def run_tiled(network: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, *, tile: int, halo: int,
              out_scale: int = 1, out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """``network`` over ``images`` ``(B, C, H, W)`` tile by tile; returns ``(B, C', H * s, W * s)``.

    ``network`` takes a tile of ``images`` (its dtype) and returns the output tile (``out_dtype``,
    default the input's): a caller keeping images as uint8 converts inside it, so only a tile is
    ever held in float.
    """
    if tile < 1 or halo < 0:
        raise ValueError(f"tile must be >= 1 and halo >= 0, got {tile} and {halo}")
    height, width = images.shape[-2:]
    out = None
    for (top, left, bottom, right), (keep_top, keep_left, keep_bottom, keep_right) in tile_boxes(height, width, tile, halo):
        result = network(images[..., top:bottom, left:right])
        if out is None:
            out = torch.empty((*images.shape[:-3], result.shape[-3], height * out_scale, width * out_scale),
                              dtype=out_dtype or result.dtype, device=result.device)
        s = out_scale
        out[..., keep_top * s : keep_bottom * s, keep_left * s : keep_right * s] = result[
            ..., (keep_top - top) * s : (keep_bottom - top) * s, (keep_left - left) * s : (keep_right - left) * s
        ]
    return out
