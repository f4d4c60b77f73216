"""Option aliases shared by several commands, so each flag means the same thing everywhere."""

from __future__ import annotations

from typing import Annotated

from enum import Enum

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

__all__ = [
    "DEFAULT_ENCODER",
    "BatchSizeOption",
    "DeviceOption",
    "EmbeddingDtype",
    "EmbeddingDtypeOption",
    "EncoderOption",
    "QuietOption",
]
