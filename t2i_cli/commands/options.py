"""Option aliases shared by several commands, so each flag means the same thing everywhere."""

from __future__ import annotations

import os
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


def check_output_path(out: Path, *, as_folder: bool) -> None:
    """Fail before any work when ``out`` cannot be written: its folder missing or read-only.

    With ``as_folder``, ``out`` itself is a folder that may not exist yet (its parent must).
    """
    from t2i_cli.errors import T2IError

    parent = out if as_folder and out.exists() else out.parent
    if not parent.is_dir():
        raise T2IError(f"output folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise T2IError(f"output folder {parent} is not writable")
    if as_folder and out.exists() and not out.is_dir():
        raise T2IError(f"{out} exists and is not a folder")


__all__ = [
    "DEFAULT_ENCODER",
    "BatchSizeOption",
    "DeviceOption",
    "EmbeddingDtype",
    "EmbeddingDtypeOption",
    "EncoderOption",
    "QuietOption",
    "check_output_path",
]
