"""The super-resolution architectures by name, and their shared interface.

Every network has a frozen ``config`` dataclass (``scale``, ``mode``, ``arch``, ``to_json``) and:

- ``input_is_low_resolution``: True when it takes the small image and enlarges it itself (FSRCNN),
  False when it restores the bicubic enlargement (SRCNN);
- ``receptive_radius``: how far, in input pixels, an output pixel looks (for seamless tiles);
- ``output_layer()``: the layer trained at a tenth of the rate, and the one that differs between scales;
- ``detail(low)``, for a network that enlarges and learns the residual: what it adds to the bicubic
  enlargement (the upscaler adds it to the RGB enlargement directly).

Nothing outside this module and the model files branches on the architecture's name.
"""

from __future__ import annotations

import json

from torch import nn

from srcnn.errors import SRError
from srcnn.fsrcnn import PRESETS, FSRCNN, FSRCNNConfig
from srcnn.model import SRCNN, SRConfig

ARCHITECTURES: dict[str, tuple[type, type[nn.Module]]] = {
    "srcnn": (SRConfig, SRCNN),
    "fsrcnn": (FSRCNNConfig, FSRCNN),
}
# The names `t2i sr train --arch` takes: each architecture, and the paper's FSRCNN sizes as presets.
ARCH_CHOICES = ("srcnn", *PRESETS)


def network_config(arch: str, *, scale: int, mode: str = "y", residual: bool = True, kernels: tuple[int, ...] | None = None,
                   widths: tuple[int, ...] | None = None, size: tuple[int, int, int] | None = None, output: str | None = None):
    """The config of a network named as ``t2i sr train --arch`` names it (:data:`ARCH_CHOICES`):
    SRCNN's ``kernels`` and ``widths`` (default 9-5-5 and 64-32), or FSRCNN's d-s-m ``size`` (default:
    the preset's) and ``output`` layer (default subpixel). Options of the other architecture are
    refused rather than ignored."""
    if arch not in ARCH_CHOICES:
        raise SRError(f"the architecture must be {', '.join(ARCH_CHOICES[:-1])} or {ARCH_CHOICES[-1]}, got {arch!r}", parameter="arch")
    srcnn_defaults, fsrcnn_output = (SRConfig.kernels, SRConfig.widths), FSRCNNConfig.output
    if arch == "srcnn":  # a value the other architecture would take as its default is no conflict
        if size is not None or output not in (None, fsrcnn_output):
            raise SRError("an FSRCNN size and output layer are for fsrcnn or fsrcnn-s, not srcnn", parameter=("arch", "size", "output"))
        return SRConfig(scale=scale, kernels=kernels or srcnn_defaults[0], widths=widths or srcnn_defaults[1], mode=mode, residual=residual)
    if kernels not in (None, srcnn_defaults[0]) or widths not in (None, srcnn_defaults[1]):
        raise SRError(f"kernel sizes and widths are SRCNN's, not {arch}'s", parameter=("arch", "kernels", "widths"))
    d, s, m = size or PRESETS[arch]
    return FSRCNNConfig(scale=scale, d=d, s=s, m=m, mode=mode, residual=residual, output=output or fsrcnn_output)


def config_from_json(text: str):
    """The config recorded in a weights file; files without ``arch`` predate FSRCNN and are SRCNN."""
    try:
        data = json.loads(text)
        config_class = ARCHITECTURES[data.get("arch", "srcnn")][0]
        return config_class.from_dict(data)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SRError(f"the network config {text[:80]!r} is not one this version reads ({exc})") from None


def build_network(config) -> nn.Module:
    if config.arch not in ARCHITECTURES:
        raise SRError(f"unknown SR architecture {config.arch!r}; known: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[config.arch][1](config)


def display_name(arch: str) -> str:
    return {"srcnn": "SRCNN", "fsrcnn": "FSRCNN"}[arch]
