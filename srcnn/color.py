"""RGB <-> YCbCr as SRCNN papers measure it (ITU-R BT.601, MATLAB's rgb2ycbcr; values in [0, 1])."""

from __future__ import annotations

import torch

# Y = 16/255 + (65.481 R + 128.553 G + 24.966 B) / 255, etc., for R, G, B in [0, 1].
_RGB_TO_YCBCR = torch.tensor(
    [[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]
) / 255.0
_OFFSET = torch.tensor([16.0, 128.0, 128.0]) / 255.0
_YCBCR_TO_RGB = torch.linalg.inv(_RGB_TO_YCBCR)
# How much R, G and B move when Y moves by 1 with Cb, Cr held (255/219 each): a network's luminance
# detail added to an RGB image.
Y_TO_RGB = _YCBCR_TO_RGB[:, 0].clone()


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """``(..., 3, H, W)`` RGB in [0, 1] -> YCbCr (Y in [16/255, 235/255])."""
    matrix = _RGB_TO_YCBCR.to(rgb)
    return torch.einsum("ij,...jhw->...ihw", matrix, rgb) + _OFFSET.to(rgb)[:, None, None]


def ycbcr_to_rgb(ycbcr: torch.Tensor) -> torch.Tensor:
    matrix = _YCBCR_TO_RGB.to(ycbcr)
    return torch.einsum("ij,...jhw->...ihw", matrix, ycbcr - _OFFSET.to(ycbcr)[:, None, None])
