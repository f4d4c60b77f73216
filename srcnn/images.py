"""Image handling shared by training, evaluation and upscaling: loading, degrading, Y channel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from srcnn.color import rgb_to_ycbcr
from srcnn.errors import SRError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def list_images(folders: list[Path]) -> list[Path]:
    """Every image file under ``folders`` (recursively), sorted for a stable order."""
    found: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if not folder.exists():
            raise SRError(f"image folder {folder} does not exist")
        if folder.is_file():
            found.append(folder)
            continue
        found += sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not found:
        raise SRError(f"no images found in {', '.join(str(f) for f in folders)}")
    return found


def load_rgb(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise SRError(f"cannot read image {path}: {exc}") from None


def bicubic(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    return image.resize(size, Image.Resampling.BICUBIC)


def shrink(hr: Image.Image, scale: int) -> tuple[Image.Image, Image.Image]:
    """Crop ``hr`` to a multiple of ``scale``; return (that crop, its bicubic reduction by ``scale``)."""
    width, height = (hr.width // scale) * scale, (hr.height // scale) * scale
    if width < scale * 4 or height < scale * 4:
        raise SRError(f"image of {hr.width}x{hr.height} is too small to degrade by x{scale}")
    hr = hr.crop((0, 0, width, height))
    return hr, bicubic(hr, (width // scale, height // scale))


def to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL RGB -> ``(3, H, W)`` float32 in [0, 1]."""
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def to_image(tensor: torch.Tensor) -> Image.Image:
    """``(3, H, W)`` in [0, 1] -> PIL RGB (rounded, clamped)."""
    pixels = (tensor.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(pixels)


def luminance(image: Image.Image) -> torch.Tensor:
    """The BT.601 Y channel of an RGB image, ``(1, H, W)`` in [0, 1]."""
    return rgb_to_ycbcr(to_tensor(image))[:1]
