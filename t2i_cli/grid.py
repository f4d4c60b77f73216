"""Turning generated tensors into pictures: PIL images, captioned grids, atomic PNG writes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from t2i_cli.atomic import atomic_file
from t2i_cli.errors import T2IError

PAD = 2


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` generator output in [-1, 1] -> uint8 pixels, rounded."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float in [-1, 1], the generator's output range (the inverse of :func:`to_uint8`)."""
    return images.float() / 127.5 - 1


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """``(B, 3, H, W)`` uint8 pixels, or generator output in [-1, 1] -> B RGB images."""
    pixels = images if images.dtype == torch.uint8 else to_uint8(images)
    return [Image.fromarray(p.permute(1, 2, 0).cpu().numpy()) for p in pixels]


def captioned_grid(rows: list[tuple[str, list[Image.Image]]], *, caption_width: int = 240,
                   max_columns: int = 16) -> Image.Image:
    """One row per caption: the caption's text on the left, its images to the right, wrapped onto
    more lines past ``max_columns`` images (so a sheet of many images stays a readable shape)."""
    rows = [(caption if start == 0 else "", images[start : start + max_columns])
            for caption, images in rows for start in range(0, max(1, len(images)), max_columns)]
    cell = rows[0][1][0].size[0]
    columns = max(len(images) for _, images in rows)
    font = ImageFont.load_default(size=max(10, min(14, cell // 5)))
    line_height = font.getbbox("Ag")[3] + 2
    chars = max(8, caption_width // max(1, font.getbbox("x")[2]))
    width = caption_width + columns * (cell + PAD) + PAD
    sheet = Image.new("RGB", (width, len(rows) * (cell + PAD) + PAD), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (caption, images) in enumerate(rows):
        top = PAD + r * (cell + PAD)
        lines = textwrap.wrap(caption, chars)[: max(1, cell // line_height)]
        for i, line in enumerate(lines):
            draw.text((PAD + 2, top + i * line_height), line, fill="black", font=font)
        for c, image in enumerate(images):
            sheet.paste(image, (caption_width + PAD + c * (cell + PAD), top))
    return sheet


# What an output file's extension asks for, and the longest side each format can store.
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
MAX_SIDE = {"PNG": 2**31 - 1, "JPEG": 65500, "WEBP": 16383}


def image_format(path: str | Path) -> str | None:
    """The format ``path``'s extension names (PNG, JPEG, WEBP), or None for any other."""
    return IMAGE_FORMATS.get(Path(path).suffix.lower())


def save_image(image: Image.Image, path: str | Path) -> Path:
    """Write ``image`` in the format its extension names, via a temp file beside it, so a failed
    write never replaces a good file. JPEG and WebP at quality 95; JPEG drops any alpha."""
    path = Path(path)
    kind = image_format(path)
    if kind is None:
        raise ValueError(f"{path}: not an image extension ({', '.join(IMAGE_FORMATS)})")
    if max(image.size) > MAX_SIDE[kind]:
        raise T2IError(f"{image.width}x{image.height} is too large for {kind}, which stores at most "
                       f"{MAX_SIDE[kind]} px a side: write .png, or a folder of images", parameter="out")
    if kind == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    with atomic_file(path) as partial:
        image.save(partial, format=kind, **({"quality": 95} if kind in ("JPEG", "WEBP") else {}))
    return path


def save_png(image: Image.Image, path: str | Path) -> Path:
    """Write a PNG atomically (see :func:`save_image`)."""
    path = Path(path)
    with atomic_file(path) as partial:
        image.save(partial, format="PNG")
    return path
