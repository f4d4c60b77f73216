"""Bicubic and SR networks side by side on held-out images: PSNR and SSIM of the Y channel,
border shaved by the scale."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from srcnn.errors import SRError
from srcnn.images import bicubic, load_rgb, luminance, shrink
from srcnn.metrics import psnr, ssim
from srcnn.upscale import Upscaler


@dataclass
class MethodScore:
    method: str  # "bicubic", or what upscaled (Upscaler.describe())
    psnr: float
    ssim: float


@dataclass
class SREvaluation:
    scale: int
    images: int
    scores: list[MethodScore]  # bicubic first, then each upscaler in the order given

    @property
    def bicubic(self) -> MethodScore:
        return self.scores[0]

    def to_dict(self) -> dict:
        return {"scale": self.scale, "images": self.images, "scores": [
            {**asdict(s), "gain_db": s.psnr - self.bicubic.psnr} for s in self.scores
        ]}


def evaluate(paths: list[Path], upscalers: list[Upscaler]) -> SREvaluation:
    """Each image is cropped to a multiple of the scale, shrunk bicubically, and enlarged back
    bicubically and by each upscaler; the final RGB outputs (as a user gets them) are compared
    with the original."""
    scales = {u.scale for u in upscalers}
    if len(scales) != 1:
        raise SRError(f"upscalers to compare must share one scale, got x{sorted(scales)}")
    if not paths:
        raise SRError("no images to evaluate on")
    scale = scales.pop()
    names = ["bicubic", *(u.describe() for u in upscalers)]
    totals = [[0.0, 0.0] for _ in names]
    for path in paths:
        hr, low = shrink(load_rgb(path), scale)
        bicubic_up = bicubic(low, hr.size)
        target = luminance(hr)[0]
        outputs = [bicubic_up, *(u.upscale_images([low])[0] for u in upscalers)]
        for total, image in zip(totals, outputs):
            y = luminance(image)[0]
            total[0] += psnr(y, target, border=scale)
            total[1] += ssim(y, target, border=scale)
    n = len(paths)
    return SREvaluation(scale, n, [MethodScore(name, p / n, s / n) for name, (p, s) in zip(names, totals)])
