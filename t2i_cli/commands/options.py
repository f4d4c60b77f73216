"""Option aliases shared by several commands, so each flag means the same thing everywhere."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from t2i_cli.text.encoder import DEFAULT_ENCODER, ENCODER_SPECS

EncoderOption = Annotated[
    str, typer.Option("--encoder", "-e", help=f"Caption encoder: {ENCODER_SPECS}.")
]
DeviceOption = Annotated[
    str, typer.Option("--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.")
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
BatchSizeOption = Annotated[
    int, typer.Option("--batch-size", min=1, help="Captions per encoder batch.")
]


class EmbeddingDtype(str, Enum):
    float16 = "float16"
    float32 = "float32"


EmbeddingDtypeOption = Annotated[
    EmbeddingDtype,
    typer.Option(
        "--embedding-dtype",
        help="Storage type of embeddings: float16 (half the size; cosine error ~1e-4) or float32.",
    ),
]

def counted(count: int, noun: str) -> str:
    """``1 image``, ``2 images``: a count with its noun in the right number."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def image_or_folder(out: Path) -> bool:
    """Whether ``out`` names one image file (``.png``, ``.jpg``/``.jpeg``, ``.webp``: the extension
    decides the format) rather than a folder; any other extension on a path that is not a folder
    is refused, so ``--out x.txt`` is never silently a folder named ``x.txt``."""
    from t2i_cli.errors import T2IError
    from t2i_cli.grid import IMAGE_FORMATS, image_format

    if image_format(out) is not None:
        if out.is_dir():
            raise T2IError(f"{out} is a folder; name an image file or the folder without an image extension", parameter="out")
        return True
    if out.suffix and not out.is_dir():
        raise T2IError(f"cannot write an image as {out.suffix!r}: use {', '.join(IMAGE_FORMATS)}, or name a folder", parameter="out")
    return False


def unique_names(stems: list[str]) -> list[str]:
    """``stems`` with repeats numbered (``a``, ``a-2``, ``a-3``), so files written in one run never
    overwrite each other (``dir1/f.png`` and ``dir2/f.png`` into one folder)."""
    seen: set[str] = set()
    names = []
    for stem in stems:
        name, copy = stem, 1
        while name in seen:
            copy += 1
            name = f"{stem}-{copy}"
        seen.add(name)
        names.append(name)
    return names


def check_output_path(out: Path, *, as_folder: bool, inputs=(), force: bool | None = None, parameter: str = "out") -> None:
    """Fail before any work when ``out`` cannot or must not be written: :func:`t2i_cli.outputs.check_output`."""
    from t2i_cli.outputs import check_output

    check_output(out, as_folder=as_folder, inputs=inputs, force=force, parameter=parameter)


def check_image_outputs(out: Path, names: list[str], *, inputs=(), force: bool | None = None) -> bool:
    """Whether ``out`` is one image file (:func:`image_or_folder`); refused before any work if it,
    or (for a folder) any of the files ``names`` it would get, cannot or must not be written."""
    from t2i_cli.outputs import check_outputs

    as_file = image_or_folder(out)
    check_output_path(out, as_folder=not as_file, inputs=inputs, force=force)
    if not as_file:
        check_outputs([out / name for name in names], inputs=inputs, force=force)
    return as_file


def write_images(images, folder: Path, names: list[str]) -> None:
    """Each image into ``folder`` (made if missing) under its name, and one line saying so."""
    from t2i_cli.grid import save_image

    folder.mkdir(parents=True, exist_ok=True)
    for image, name in zip(images, names):
        save_image(image, folder / name)
    typer.echo(f"wrote {counted(len(names), 'image')} to {folder}/")


ForceOption = Annotated[bool, typer.Option("--force", help="Replace output files that already exist.")]


__all__ = [
    "DEFAULT_ENCODER",
    "BatchSizeOption",
    "DeviceOption",
    "EmbeddingDtype",
    "EmbeddingDtypeOption",
    "EncoderOption",
    "ForceOption",
    "QuietOption",
    "check_output_path",
    "counted",
    "image_or_folder",
    "check_image_outputs",
    "write_images",
    "unique_names",
]
