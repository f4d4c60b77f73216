"""FSRCNN (Dong, Loy, Tang, ECCV 2016): SRCNN's successor, working in low-resolution space.

5x5 feature extraction (d filters) -> 1x1 shrinking (s) -> m x 3x3 mapping (s) -> 1x1 expanding (d),
PReLU after each, then one layer that enlarges. Every layer but the last runs on the small image,
so the cost is about scale^2 times lower than SRCNN's, which runs every layer after bicubic
enlargement. The body is the same at every scale, so x3 and x4 start from the x2 network.

The enlarging layer (``output``) is the paper's 9x9 transposed convolution at stride = scale
(``deconv``), or, by default, the sub-pixel convolution of ESPCN (Shi et al. 2016): a convolution
in low-resolution space to scale^2 channels per colour, then a pixel shuffle. A 9x9 kernel at
stride s reaches ceil(9 / s) low-resolution pixels, so a 5x5 (x2) or 3x3 (x3, x4) sub-pixel kernel
covers what it can express. On this CPU PyTorch runs the transposed convolution several times
slower than the plain one (measured: ~7.5 vs ~1.5 ms on a 64 px image at x2).

``residual`` adds the bicubic enlargement of the input to the output, so the network learns only
the detail bicubic misses (as our SRCNN does): the same layers, converging faster.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from srcnn.errors import SRError
from srcnn.model import NetworkConfig

# The paper's two sizes (d, s, m).
PRESETS = {"fsrcnn": (56, 12, 4), "fsrcnn-s": (32, 5, 1)}
OUTPUTS = ("subpixel", "deconv")
DECONV_KERNEL = 9


@dataclass(frozen=True)
class FSRCNNConfig(NetworkConfig):
    scale: int = 2
    d: int = 56  # feature extraction / expanding filters
    s: int = 12  # shrunk width of the mapping layers
    m: int = 4  # mapping layers
    mode: str = "y"  # y: the network sees luminance, Cb/Cr are bicubic; rgb: all three channels
    residual: bool = True
    output: str = "subpixel"  # the enlarging layer: subpixel (ESPCN's) or deconv (the paper's)

    arch = "fsrcnn"

    def validate(self) -> None:
        self.check_scale_and_mode("FSRCNN")
        if self.output not in OUTPUTS:
            raise SRError(f"FSRCNN output layer must be {' or '.join(OUTPUTS)}, got {self.output!r}")
        if min(self.d, self.s) < 1 or self.m < 0:
            raise SRError(f"FSRCNN needs d, s >= 1 and m >= 0, got d={self.d}, s={self.s}, m={self.m}")

    @classmethod
    def from_dict(cls, data: dict) -> "FSRCNNConfig":
        return cls(scale=int(data["scale"]), d=int(data["d"]), s=int(data["s"]), m=int(data["m"]),
                   mode=data["mode"], residual=bool(data["residual"]), output=data["output"])


def _conv(cin: int, cout: int, kernel: int) -> nn.Conv2d:
    # Replicate padding keeps borders from darkening (as in our SRCNN); a 1x1 kernel needs none.
    conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, padding_mode="replicate" if kernel > 1 else "zeros")
    nn.init.kaiming_normal_(conv.weight, a=0.25, nonlinearity="leaky_relu")  # PReLU starts at slope 0.25
    nn.init.zeros_(conv.bias)
    return conv


def subpixel_kernel(scale: int) -> int:
    """The odd kernel that reaches as far in low-resolution pixels as a 9x9 transposed convolution at ``scale``."""
    reach = math.ceil(DECONV_KERNEL / scale)
    return reach + 1 - reach % 2


def _deconv_padding(scale: int) -> tuple[int, int]:
    """(padding, output_padding) that make the transposed convolution's output exactly scale x
    its input: (n - 1) * scale - 2 * padding + kernel + output_padding = n * scale."""
    excess = DECONV_KERNEL - scale  # = 2 * padding - output_padding
    padding = math.ceil(excess / 2)
    return padding, 2 * padding - excess


class FSRCNN(nn.Module):
    """``(B, C, h, w)`` low-resolution image in [0, 1] -> ``(B, C, h * scale, w * scale)``."""

    input_is_low_resolution = True  # the upscaler feeds the small image, not its bicubic enlargement

    def __init__(self, config: FSRCNNConfig):
        super().__init__()
        config.validate()
        self.config = config
        c, d, s, m = config.channels, config.d, config.s, config.m
        layers: list[nn.Module] = [_conv(c, d, 5), nn.PReLU(d), _conv(d, s, 1), nn.PReLU(s)]
        for _ in range(m):
            layers += [_conv(s, s, 3), nn.PReLU(s)]
        layers += [_conv(s, d, 1), nn.PReLU(d)]
        self.body = nn.Sequential(*layers)
        if config.output == "deconv":
            padding, output_padding = _deconv_padding(config.scale)
            self.enlarge = nn.ConvTranspose2d(d, c, DECONV_KERNEL, stride=config.scale, padding=padding,
                                              output_padding=output_padding)
        else:
            kernel = subpixel_kernel(config.scale)
            self.enlarge = nn.Sequential(
                nn.Conv2d(d, c * config.scale**2, kernel, padding=kernel // 2, padding_mode="replicate"),
                nn.PixelShuffle(config.scale),
            )
        nn.init.normal_(self.output_layer().weight, std=1e-3)  # the paper's init: residual mode starts as "bicubic + ~0"
        nn.init.zeros_(self.output_layer().bias)

    @property
    def receptive_radius(self) -> int:
        """How far (in input pixels) an output pixel looks: 2 (5x5) + m (3x3 each) + the enlarging
        layer's reach, or bicubic's 2 pixels in residual mode where that is more."""
        if self.config.output == "subpixel":
            reach = subpixel_kernel(self.config.scale) // 2
        else:  # a 9x9 kernel at stride s: within ceil(9 / s) input pixels (generous, and simple)
            reach = math.ceil(DECONV_KERNEL / self.config.scale)
        return 2 + self.config.m + max(reach, 2 if self.config.residual else 0)

    def output_layer(self) -> nn.Module:
        """The layer that differs between scales: trained at a tenth of the rate, and the only one
        not copied when a network for another scale starts from this one."""
        return self.enlarge if self.config.output == "deconv" else self.enlarge[0]

    def detail(self, low: torch.Tensor) -> torch.Tensor:
        """What the network adds to the bicubic enlargement (in residual mode; the whole output otherwise)."""
        return self.enlarge(self.body(low))

    def forward(self, low: torch.Tensor) -> torch.Tensor:
        out = self.detail(low)
        if self.config.residual:
            out = out + bicubic_enlarge(low, self.config.scale)
        return out


def _cubic(distance: float, a: float = -0.75) -> float:
    """Keys' cubic convolution kernel, with PyTorch's a = -0.75."""
    x = abs(distance)
    if x <= 1:
        return ((a + 2) * x - (a + 3)) * x * x + 1
    return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a if x < 2 else 0.0


@functools.lru_cache(maxsize=None)
def _bicubic_phases(scale: int) -> torch.Tensor:
    """``(scale^2, 1, 5, 5)``: for each output phase (row phase, column phase), the weights of the 5x5
    input pixels around it. Output pixel o sits at input coordinate (o + 0.5) / scale - 0.5."""
    taps = torch.zeros(scale, 5, dtype=torch.float64)
    for phase in range(scale):
        position = (phase + 0.5) / scale - 0.5
        left = math.floor(position)
        for offset in range(left - 1, left + 3):
            taps[phase, offset + 2] += _cubic(position - offset)
    return torch.einsum("ik,jl->ijkl", taps, taps).reshape(scale * scale, 1, 5, 5)


def bicubic_enlarge(images: torch.Tensor, scale: int) -> torch.Tensor:
    """The bicubic enlargement FSRCNN adds its detail to: exactly ``F.interpolate(images,
    scale_factor=scale, mode="bicubic", align_corners=False)`` (edge pixels repeated), computed as
    a fixed 5x5 convolution per output phase and a pixel shuffle, which is ~3x faster on a CPU."""
    channels = images.shape[1]
    weight = _bicubic_phases(scale).to(images).repeat(channels, 1, 1, 1)
    padded = F.pad(images, (2, 2, 2, 2), mode="replicate")
    return F.pixel_shuffle(F.conv2d(padded, weight, groups=channels), scale)
