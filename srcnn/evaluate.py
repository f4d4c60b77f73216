"""Bicubic vs SRCNN on held-out images: PSNR and SSIM of the Y channel, border shaved by the scale."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from srcnn.images import degrade, load_rgb, luminance
from srcnn.metrics import psnr, ssim
from srcnn.upscale import Upscaler


@dataclass
class SREvaluation:
    scale: int
    images: int
    bicubic_psnr: float
    bicubic_ssim: float
    srcnn_psnr: float
    srcnn_ssim: float

    @property
    def gain_db(self) -> float:
        return self.srcnn_psnr - self.bicubic_psnr


def evaluate(paths: list[Path], upscaler: Upscaler) -> SREvaluation:
    """Each image is cropped to a multiple of the scale, shrunk bicubically, and enlarged back
    both ways; the final RGB outputs (as a user gets them) are compared with the original."""
    scale = upscaler.scale
    totals = [0.0, 0.0, 0.0, 0.0]
    for path in paths:
        hr, bicubic_up = degrade(load_rgb(path), scale)
        low = hr.resize((hr.width // scale, hr.height // scale), resample=3)  # 3 = BICUBIC
        restored = upscaler.upscale_images([low])[0]
        target = luminance(hr)[0]
        for i, image in enumerate((bicubic_up, restored)):
            y = luminance(image)[0]
            totals[2 * i] += psnr(y, target, border=scale)
            totals[2 * i + 1] += ssim(y, target, border=scale)
    n = len(paths)
    return SREvaluation(scale, n, totals[0] / n, totals[1] / n, totals[2] / n, totals[3] / n)
