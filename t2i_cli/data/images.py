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


def open_image(source: str | Path | bytes, *, what: str) -> Image.Image:
    """A whole decoded image from a file or its bytes, or one :class:`~t2i_cli.errors.T2IError`
    naming it as ``what`` ("photo x.jpg"; the demo says just "the photo", never a server path):
    missing, a folder, empty, truncated, not an image, or a decompression bomb."""
    from t2i_cli.errors import T2IError

    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as opened:
            opened.load()
            return opened.copy()
    except FileNotFoundError:
        raise T2IError(f"{what} does not exist") from None
    except IsADirectoryError:
        raise T2IError(f"{what} is a folder; name one image file") from None
    except Image.DecompressionBombError:
        raise T2IError(f"{what} has more pixels than are decoded safely (a decompression bomb?)") from None
    except (OSError, ValueError, SyntaxError) as exc:
        reason = "an empty file" if isinstance(exc, UnidentifiedImageError) and _is_empty(source) else image_error_reason(exc)
        raise T2IError(f"{what} does not decode: {reason}") from None


def _is_empty(source: str | Path | bytes) -> bool:
    try:
        return len(source) == 0 if isinstance(source, bytes) else Path(source).stat().st_size == 0
    except OSError:
        return False


def to_8bit(image: Image.Image) -> Image.Image:
    """``image`` in one of the modes the project works in — L, LA, RGB, RGBA — with its range and
    alpha kept: 16-bit and 32-bit grayscale (I;16*, I) are scaled from their range to 0-255 rather
    than clipped (PIL's own convert turns anything over 255 white), float images (F) in [0, 1]
    are scaled and others clipped, palettes with a transparent index become RGBA, premultiplied
    modes are unpremultiplied, and CMYK, YCbCr, LAB, HSV and 1-bit images become RGB or L."""
    mode = image.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        return image
    if mode.startswith("I;16") or mode in ("I", "F"):
        values = np.asarray(image.convert("F") if mode.startswith("I;16") else image, dtype=np.float64)
        top = float(values.max()) if values.size else 0.0
        if mode == "F":
            scale = 255.0 if top <= 1.0 else 1.0
        else:  # integers: 8-bit data kept, 16-bit data (the usual I;16 / I content) scaled from 65535
            scale = 1.0 if top <= 255 else 255.0 / 65535.0
        return Image.fromarray(np.clip(np.rint(values * scale), 0, 255).astype(np.uint8), mode="L")
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in image.info
        return image.convert("RGBA" if has_alpha else "RGB")
    if mode in ("RGBa", "La"):
        return image.convert("RGBA" if mode == "RGBa" else "LA")
    if mode == "1":
        return image.convert("L")
    return image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX


def to_rgb(image: Image.Image) -> Image.Image:
    image = to_8bit(image)
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
