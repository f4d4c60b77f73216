"""The style encoder S of Reed et al. (2016, §4.4 and §5.3): an image -> the noise z a generator
would need to draw it.

The noise carries what the caption does not say (pose, size and place of the flower, background),
so ``G(S(photo), new caption)`` draws the photo's layout with the new caption's content. S sees the
image only; it is the same network for either generator architecture, since both take a
``noise_dim`` vector.

Layout: stages of (4x4 stride-2 convolution, 3x3 convolution), LeakyReLU, halving the side from the
image size down to 4x4 (widths 1/2/4/8 x ``width`` at 64 px, capped at 8 x), then one Linear layer to
``noise_dim``. No normalisation across the batch, so one photo's noise never depends on another's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from t2i_cli.config import MAX_IMAGE_SIZE, MAX_WIDTH
from t2i_cli.errors import T2IError


@dataclass
class StyleConfig:
    image_size: int = 64  # the generator's
    noise_dim: int = 100  # the generator's
    width: int = 32

    def validate(self) -> None:
        size = self.image_size
        if size < 16 or size > MAX_IMAGE_SIZE or size & (size - 1):
            raise T2IError(f"image size must be a power of two from 16 to {MAX_IMAGE_SIZE}, got {size}")
        for name in ("noise_dim", "width"):
            if not 1 <= getattr(self, name) <= MAX_WIDTH:
                raise T2IError(f"{name} must lie in 1..{MAX_WIDTH}, got {getattr(self, name)}")


class StyleEncoder(nn.Module):
    def __init__(self, config: StyleConfig):
        super().__init__()
        config.validate()
        self.config = config
        stages = int(math.log2(config.image_size)) - 2  # 64 px -> 4 stages to 4x4
        widths = [3] + [config.width * min(2**i, 8) for i in range(stages)]
        layers: list[nn.Module] = []
        for w_in, w_out in zip(widths, widths[1:]):
            layers += [
                nn.Conv2d(w_in, w_out, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(w_out, w_out, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
            ]
        self.features = nn.Sequential(*layers)
        self.to_noise = nn.Linear(widths[-1] * 16, config.noise_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) images in [-1, 1] -> (B, noise_dim) noise."""
        return self.to_noise(self.features(images).flatten(1))
