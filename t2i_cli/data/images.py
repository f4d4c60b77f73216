"""Image bytes in and out: validate on the way into a data file, decode to uint8 on the way out."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

JPEG_QUALITY = 95
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}


class BadImage(Exception):
    """An image that cannot be used; the converter skips and counts it, a reader names it."""


def image_error_reason(exc: BaseException) -> str:
    """PIL's complaint without the in-memory buffer it read from (``<_io.BytesIO object at 0x...>``)."""
    if isinstance(exc, UnidentifiedImageError):
        return "not an image format PIL can read"
    return str(exc).strip() or type(exc).__name__


def to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels go onto white, as a viewer shows them, not onto black.
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def center_square(image: Image.Image, size: int) -> Image.Image:
    """The centred square crop of ``image``, resized to ``size``×``size`` (bicubic)."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return image.crop((left, top, left + side, top + side)).resize(
        (size, size), Image.Resampling.BICUBIC
    )


def prepare_jpeg(path: Path, *, image_size: int | None = None) -> tuple[bytes, tuple[int, int]]:
    """Read an image file and return RGB JPEG bytes for the data file, with (width, height).

    An RGB JPEG that needs no resizing is kept byte for byte; anything else (PNG, grayscale,
    CMYK, transparency, a resize) is converted to RGB and re-encoded. Raises :class:`BadImage`
    when the file does not decode completely.
    """
    try:
        raw = path.read_bytes()
        with Image.open(io.BytesIO(raw)) as image:
            image.load()  # decode every pixel now: truncated files fail here, not in training
            keep = image.format == "JPEG" and image.mode == "RGB" and image_size is None
            if keep:
                return raw, image.size
            rgb = to_rgb(image)
            if image_size is not None:
                rgb = center_square(rgb, image_size)
            buffer = io.BytesIO()
            rgb.save(buffer, format="JPEG", quality=JPEG_QUALITY)
            return buffer.getvalue(), rgb.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise BadImage(f"{path.name}: {image_error_reason(exc)}") from None


def decode_rgb(jpeg: bytes) -> np.ndarray:
    """JPEG (or any PIL-readable) bytes -> ``(H, W, 3)`` uint8; :class:`BadImage` if they do not decode."""
    try:
        with Image.open(io.BytesIO(jpeg)) as image:
            return np.asarray(to_rgb(image))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise BadImage(image_error_reason(exc)) from None
