"""PSNR and SSIM on the Y channel with the border shaved, as SR papers report them."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from srcnn.errors import SRError


def shave(image: torch.Tensor, border: int) -> torch.Tensor:
    return image[..., border:-border, border:-border] if border > 0 else image


def psnr(a: torch.Tensor, b: torch.Tensor, *, border: int = 0) -> float:
    """PSNR in dB of two images with values in [0, 1] (peak 1)."""
    mse = F.mse_loss(shave(a.double(), border), shave(b.double(), border)).item()
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]  # (1, 1, size, size)


def ssim(a: torch.Tensor, b: torch.Tensor, *, border: int = 0) -> float:
    """Mean SSIM (Wang et al. 2004: 11x11 Gaussian, sigma 1.5, K1 0.01, K2 0.03) of single-channel
    images ``(H, W)`` or ``(1, H, W)`` with values in [0, 1]."""
    x, y = shave(a.double(), border), shave(b.double(), border)
    x, y = x.reshape(1, 1, *x.shape[-2:]), y.reshape(1, 1, *y.shape[-2:])
    if min(x.shape[-2:]) < 11:
        raise SRError(f"SSIM needs images of at least 11x11 after shaving, got {tuple(x.shape[-2:])}")
    window = _gaussian_window()
    c1, c2 = 0.01**2, 0.03**2
    mu_x, mu_y = F.conv2d(x, window), F.conv2d(y, window)
    var_x = F.conv2d(x * x, window) - mu_x**2
    var_y = F.conv2d(y * y, window) - mu_y**2
    cov = F.conv2d(x * y, window) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.mean().item()
