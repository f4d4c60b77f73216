"""Upscaling with trained weights (FSRCNN or SRCNN), or bicubic where no weights exist for a scale.

``Upscaler.load(scale, weights_dir=...)`` finds ``{arch}_x{scale}.safetensors``: with method
``auto``, the first of :data:`PREFERENCE` that is there; without any, the upscaler is plain bicubic
and says so once. Output is always exactly ``scale`` times the input size.

Memory is bounded whatever the input: an output larger than :data:`MAX_OUTPUT_PIXELS` is refused
before any work, and a large image goes through the network in tiles (:mod:`srcnn.tiling`), kept
as uint8 between them, so a 12 MP photo at x2 needs a few hundred MB, not tens of GB.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from srcnn.color import Y_TO_RGB, rgb_to_ycbcr, ycbcr_to_rgb
from srcnn.errors import SRError
from srcnn.fsrcnn import bicubic_enlarge
from srcnn.images import bicubic, to_image, to_tensor
from srcnn.model import SCALES
from srcnn.networks import ARCHITECTURES, build_network, config_from_json, display_name
from srcnn.tiling import run_tiled

log = logging.getLogger(__name__)

WEIGHTS_KIND = "srcnn"  # this library's weights files, whatever the architecture inside
PREFERENCE = ("fsrcnn", "srcnn")  # method auto: the first architecture with weights for the scale
# auto: the shipped network for the scale (see PREFERENCE); fsrcnn / srcnn: that one; bicubic: no network.
METHODS = ("auto", *PREFERENCE, "bicubic")
assert set(PREFERENCE) == set(ARCHITECTURES), "every architecture needs a place in PREFERENCE"
MAX_OUTPUT_PIXELS = 100_000_000  # 100 MP, about 0.6 GB as two RGB images; a 10000 px square at x4 is 16x that
# Network input pixels a side per tile: ~70 MB of float activations at SRCNN's widths (on the
# enlarged image); for FSRCNN ~60 MB at d = 56 on the small image, and a 2048 px output tile at x4.
TILE = 512


def check_scale(scale: int) -> None:
    """Every method upscales x2, x3 or x4 (a bicubic x100 is no super-resolution, only a huge file)."""
    if scale not in SCALES:
        raise SRError(f"upscaling is x2, x3 or x4, not x{scale}", parameter="scale")


def check_output_size(size: tuple[int, int], scale: int, *, what: str = "the image") -> None:
    """Refuse, before any work, an output larger than :data:`MAX_OUTPUT_PIXELS`."""
    width, height = size[0] * scale, size[1] * scale
    if width * height > MAX_OUTPUT_PIXELS:
        raise SRError(
            f"{what} would be {width}x{height} ({width * height / 1e6:.0f} MP) after x{scale}; "
            f"the limit is {MAX_OUTPUT_PIXELS / 1e6:.0f} MP: upscale a smaller image or by less",
            parameter="scale",
        )


def weights_file(weights_dir: Path, scale: int, arch: str = "srcnn") -> Path:
    return Path(weights_dir) / f"{arch}_x{scale}.safetensors"


def shipped_weights(weights_dir: Path, scale: int, method: str = "auto") -> Path | None:
    """The weights file ``method`` uses for ``scale`` in ``weights_dir``, or None where there is none."""
    for arch in PREFERENCE if method == "auto" else (method,):
        path = weights_file(weights_dir, scale, arch)
        if path.is_file():
            return path
    return None


def save_weights(model: nn.Module, path: Path, *, extra: dict | None = None) -> Path:
    """safetensors with the config in its metadata, written via a temp file and renamed."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"kind": WEIGHTS_KIND, "config": model.config.to_json(), "scale": str(model.config.scale)}
    metadata.update({k: json.dumps(v) for k, v in (extra or {}).items()})
    # The partial-file name every t2i writer uses, so a later write into the folder clears it after a kill.
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(tmp), metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_model(path: Path, *, scale: int | None = None) -> nn.Module:
    """Rebuild the network a weights file holds (SRCNN or FSRCNN); refuse a file made for another scale."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise SRError(f"SR weights {path} do not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            weights = {k: handle.get_tensor(k) for k in handle.keys()}
    except (SafetensorError, OSError) as exc:
        raise SRError(f"SR weights {path} are unreadable: {exc}") from None
    if metadata.get("kind") != WEIGHTS_KIND or "config" not in metadata:
        raise SRError(f"{path} is not an SRCNN/FSRCNN weights file")
    config = config_from_json(metadata["config"])
    if scale is not None and config.scale != scale:
        raise SRError(f"SR weights {path} are for x{config.scale}, not x{scale}")
    model = build_network(config)
    try:
        model.load_state_dict({k: v.float() for k, v in weights.items()})
    except RuntimeError:
        raise SRError(f"SR weights {path} do not match their own config") from None
    return model.eval().requires_grad_(False)


class Upscaler:
    """Enlarges images by ``scale``: with ``model`` (SRCNN or FSRCNN) where given, bicubic otherwise."""

    def __init__(self, scale: int, model: nn.Module | None = None, *, device: str | torch.device = "cpu", source: Path | None = None):
        if scale < 1 or (model is not None and scale not in SCALES):
            raise SRError(f"SR scale must be 2, 3 or 4, got {scale}")
        if model is not None and model.config.scale != scale:
            raise SRError(f"SR weights are for x{model.config.scale}, not x{scale}")
        self.scale = scale
        self.device = torch.device(device)
        self.model = model.to(self.device) if model is not None else None
        self.source = source

    @classmethod
    def load(cls, scale: int, *, weights_dir: Path | None = None, weights: Path | None = None,
             method: str = "auto", device: str | torch.device = "cpu") -> "Upscaler":
        """``method`` auto: the shipped network for ``scale``; fsrcnn / srcnn: that one (bicubic,
        with a notice, where its weights do not exist); bicubic: no network. ``weights`` names a
        file instead of looking in ``weights_dir``."""
        if method not in METHODS:
            raise SRError(f"SR method must be {', '.join(METHODS[:-1])} or bicubic, got {method!r}", parameter="sr_method")
        check_scale(scale)
        if method == "bicubic":
            return cls(scale, None, device=device)
        if weights is not None:
            model = load_model(weights, scale=scale)
            if method != "auto" and model.config.arch != method:
                raise SRError(f"{weights} holds {display_name(model.config.arch)} weights, not {method}", parameter="sr_method")
            return cls(scale, model, device=device, source=Path(weights))
        path = shipped_weights(weights_dir, scale, method) if weights_dir is not None else None
        if path is None:
            what = "SR" if method == "auto" else display_name(method)
            log.warning("no %s weights for x%d%s; upscaling with bicubic", what, scale, f" in {weights_dir}" if weights_dir else "")
            return cls(scale, None, device=device)
        return cls(scale, load_model(path, scale=scale), device=device, source=path)

    @property
    def method(self) -> str:
        return self.model.config.arch if self.model is not None else "bicubic"

    def describe(self) -> str:
        """What upscales, by file name (no machine path: this is shown on the demo page too)."""
        if self.model is None:
            return f"bicubic x{self.scale}"
        return f"{display_name(self.model.config.arch)} x{self.scale} ({Path(self.source).name if self.source else 'given weights'})"

    @property
    def _enlarges(self) -> bool:
        """Whether the network takes the small image (and enlarges it) rather than its bicubic enlargement."""
        return self.model.input_is_low_resolution

    @torch.inference_mode()
    def _restore_uint8(self, pixels: torch.Tensor) -> torch.Tensor:
        """The network's uint8 input ``(B, 3, h, w)`` -> the uint8 result, rounded as :func:`to_image` rounds."""
        return self._restore(pixels.float() / 255).mul_(255).round_().to(torch.uint8)

    def _restore_tiled(self, rgb: Image.Image, tile: int | None = None) -> Image.Image:
        """The network over a large input, tile by tile; equal to the whole-image pass."""
        pixels = torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy()).permute(2, 0, 1)[None]  # (1, 3, H, W)
        restored = run_tiled(self._restore_uint8, pixels, tile=tile or TILE, halo=self.model.receptive_radius,
                             out_scale=self.scale if self._enlarges else 1)
        return Image.fromarray(restored[0].permute(1, 2, 0).numpy())

    @torch.inference_mode()
    def _restore(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, h, w)`` network input RGB in [0, 1] (the small image, or its bicubic
        enlargement for SRCNN) -> the final ``(B, 3, H, W)`` RGB."""
        images = images.to(self.device)
        config = self.model.config
        if config.mode == "rgb":
            return self.model(images).clamp(0, 1).cpu()
        ycbcr = rgb_to_ycbcr(images)
        if not self._enlarges:
            return ycbcr_to_rgb(torch.cat([self.model(ycbcr[:, :1]), ycbcr[:, 1:]], dim=1)).clamp(0, 1).cpu()
        if config.residual:
            # Colour conversion is affine and bicubic enlargement is linear with weights summing to
            # 1, so "enlarge Y, Cb, Cr bicubically, add the detail to Y, convert back" is the RGB
            # bicubic enlargement plus the detail times Y_TO_RGB: no colour conversion at the
            # output size, where a 64 px image at x4 spent most of its time. In place, for the same reason.
            detail = self.model.detail(ycbcr[:, :1])
            out = bicubic_enlarge(images, self.scale).addcmul_(detail, Y_TO_RGB.to(detail)[:, None, None])
            return out.clamp_(0, 1).cpu()
        chroma = bicubic_enlarge(ycbcr[:, 1:], self.scale)  # colour is enlarged bicubically, as SRCNN's input is
        return ycbcr_to_rgb(torch.cat([self.model(ycbcr[:, :1]), chroma], dim=1)).clamp(0, 1).cpu()

    def upscale_images(self, images: Sequence[Image.Image]) -> list[Image.Image]:
        """Each image enlarged exactly ``scale`` times. Grayscale stays grayscale; an alpha
        channel is enlarged bicubically and put back."""
        results: list[Image.Image | None] = [None] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(images):  # every size checked before any work
            if not isinstance(image, Image.Image):
                raise SRError(f"image {i + 1} is not a PIL image")
            check_output_size(image.size, self.scale, what=f"image {i + 1}")
        prepared = []
        for i, image in enumerate(images):
            size = (image.width * self.scale, image.height * self.scale)
            alpha = bicubic(image.getchannel("A"), size) if image.mode in ("RGBA", "LA") else None
            rgb = image.convert("RGB")
            if self.model is None or not self._enlarges:
                rgb = bicubic(rgb, size)  # the result (bicubic), or SRCNN's input
            prepared.append((image.mode, rgb, alpha))
            groups.setdefault(rgb.size, []).append(i)
        for size, members in groups.items():  # size: the network's input size
            if self.model is None:
                restored = [prepared[i][1] for i in members]
            elif size[0] * size[1] > TILE * TILE:  # large: one image at a time, in tiles
                restored = [self._restore_tiled(prepared[i][1]) for i in members]
            else:  # small: batched, about 4 x TILE x TILE input pixels at a time
                chunk = max(1, 4 * TILE * TILE // (size[0] * size[1]))
                restored = []
                for start in range(0, len(members), chunk):
                    batch = torch.from_numpy(np.stack([np.asarray(prepared[i][1]) for i in members[start : start + chunk]]))
                    pixels = self._restore_uint8(batch.permute(0, 3, 1, 2))
                    restored += [Image.fromarray(p.permute(1, 2, 0).numpy()) for p in pixels]
            for i, rgb in zip(members, restored):
                mode, _, alpha = prepared[i]
                if mode in ("L", "LA"):
                    rgb = rgb.convert("L")
                if alpha is not None:
                    rgb.putalpha(alpha)
                results[i] = rgb
        return results  # type: ignore[return-value]

    def upscale_tensor(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in [0, 1] -> ``(B, 3, H * scale, W * scale)`` in [0, 1]."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise SRError(f"expected a (B, 3, H, W) tensor, got shape {tuple(images.shape)}")
        pils = [to_image(t) for t in images.detach().float().cpu()]
        return torch.stack([to_tensor(p) for p in self.upscale_images(pils)])
