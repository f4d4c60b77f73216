"""SRCNN (Dong et al., 2014/2016): patch extraction, non-linear mapping, reconstruction.

The input is the bicubic-upscaled image (its Y channel, or RGB); the output has the same size.
``residual`` adds the input back at the end, so the network learns only the detail bicubic
misses -- the same 9-5-5 layers, converging far faster (the VDSR observation).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import torch
from torch import nn

from srcnn.errors import SRError

SCALES = (2, 3, 4)


class NetworkConfig:
    """What every SR network's config shares (each is a frozen dataclass with ``scale`` and
    ``mode`` fields and an ``arch`` name): the checks of those two, channels, JSON."""

    arch: str
    scale: int
    mode: str

    def check_scale_and_mode(self, name: str) -> None:
        if self.scale not in SCALES:
            raise SRError(f"{name} scale must be 2, 3 or 4, got {self.scale}")
        if self.mode not in ("y", "rgb"):
            raise SRError(f"{name} mode must be y or rgb, got {self.mode!r}")

    @property
    def channels(self) -> int:
        return 1 if self.mode == "y" else 3

    def to_json(self) -> str:
        return json.dumps({"arch": self.arch, **asdict(self)})


@dataclass(frozen=True)
class SRConfig(NetworkConfig):
    scale: int = 2
    kernels: tuple[int, int, int] = (9, 5, 5)  # (9, 1, 5) is the paper's lighter variant
    widths: tuple[int, int] = (64, 32)
    mode: str = "y"  # y: the network sees luminance, Cb/Cr are bicubic; rgb: all three channels
    residual: bool = True

    arch = "srcnn"

    def validate(self) -> None:
        self.check_scale_and_mode("SRCNN")
        if any(k % 2 == 0 or k < 1 for k in self.kernels):
            raise SRError(f"SRCNN kernels must be odd, got {self.kernels}")

    @classmethod
    def from_dict(cls, data: dict) -> "SRConfig":
        return cls(
            scale=int(data["scale"]), kernels=tuple(data["kernels"]), widths=tuple(data["widths"]),
            mode=data["mode"], residual=bool(data["residual"]),
        )


class SRCNN(nn.Module):
    """``(B, C, H, W)`` bicubic-upscaled input in [0, 1] -> restored ``(B, C, H, W)``."""

    input_is_low_resolution = False  # the upscaler feeds the bicubic enlargement

    def __init__(self, config: SRConfig):
        super().__init__()
        config.validate()
        self.config = config
        (k1, k2, k3), (n1, n2) = config.kernels, config.widths
        c = config.channels
        # Replicate padding keeps the output the input's size without dark borders.
        self.extract = nn.Conv2d(c, n1, k1, padding=k1 // 2, padding_mode="replicate")
        self.map = nn.Conv2d(n1, n2, k2, padding=k2 // 2, padding_mode="replicate")
        self.reconstruct = nn.Conv2d(n2, c, k3, padding=k3 // 2, padding_mode="replicate")
        self.act = nn.ReLU(inplace=True)
        for conv in (self.extract, self.map):
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        nn.init.normal_(self.reconstruct.weight, std=1e-3)  # starts as "bicubic + ~0" in residual mode
        nn.init.zeros_(self.reconstruct.bias)

    @property
    def receptive_radius(self) -> int:
        """How far (in pixels) an output pixel looks: the sum of the kernels' half-widths."""
        return sum(k // 2 for k in self.config.kernels)

    def output_layer(self) -> nn.Module:
        """The reconstruction layer, trained at a tenth of the rate (Dong et al.)."""
        return self.reconstruct

    def forward(self, upscaled: torch.Tensor) -> torch.Tensor:
        out = self.reconstruct(self.act(self.map(self.act(self.extract(upscaled)))))
        return upscaled + out if self.config.residual else out
