"""Style encoders on disk, each paired with the one generator it inverts.

A style encoder folder (by default ``style-encoder/`` inside the generator's checkpoint folder,
or ``RUN/style-encoders/epoch-N`` for a training run's checkpoint)::

    config.json                 kind, format, StyleConfig, the generator's sha256, training record
    style_encoder.safetensors   the weights

S learns the noise of one particular generator: with any other, even the same run a few epochs on,
``G(S(photo), caption)`` is a different picture. So the folder records the sha256 of the
``generator.safetensors`` it was trained against, and loading it for another generator is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from t2i_cli.checkpoint import GENERATOR_FILE, RunFolder, load_weights, resolve_checkpoint
from t2i_cli.component import CONFIG_FILE, component_kind, read_component, write_component
from t2i_cli.config import from_dict, to_dict
from t2i_cli.errors import T2IError
from t2i_cli.models.style import StyleConfig, StyleEncoder
from t2i_cli.weights import sha256_of

STYLE_KIND = "t2i-style-encoder"
STYLE_FORMAT = 1
STYLE_DIR = "style-encoder"
STYLE_WEIGHTS = "style_encoder.safetensors"


@dataclass
class StyleEncoderInfo:
    path: Path
    config: StyleConfig
    generator_sha256: str
    record: dict  # how it was trained and what it measured


def default_style_path(checkpoint: str | Path) -> Path:
    """Where a generator's style encoder lives unless told otherwise: inside its checkpoint folder,
    or, for a training run's checkpoint (``RUN/checkpoints/epoch-N``, which the run prunes as it
    goes on), beside them as ``RUN/style-encoders/epoch-N``."""
    folder = resolve_checkpoint(checkpoint)
    run = RunFolder.of_checkpoint(folder)
    return run.style_encoder(folder) if run is not None else folder / STYLE_DIR


def check_replaceable(folder: Path) -> None:
    """``--force`` replaces a style encoder, never anything else (a generator, a run)."""
    if folder.exists():
        if component_kind(folder) != STYLE_KIND:
            raise T2IError(f"{folder} exists and is not a style encoder: it would be replaced; name another folder", parameter="out")


def generator_sha256(checkpoint: str | Path) -> str:
    return sha256_of(resolve_checkpoint(checkpoint) / GENERATOR_FILE)


def write_style_encoder(folder: Path, encoder: StyleEncoder, *, generator_sha256: str, record: dict, half: bool = False) -> Path:
    """Write S atomically (a crash mid-save leaves the old folder, if any, as it was); ``half``
    stores float16 weights, loaded back as float32."""
    config = {"style": to_dict(encoder.config), "generator_sha256": generator_sha256, **record}
    return write_component(folder, kind=STYLE_KIND, format=STYLE_FORMAT, config=config,
                           weights={STYLE_WEIGHTS: encoder.state_dict()}, half=half)


def read_style_encoder(folder: str | Path) -> StyleEncoderInfo:
    folder = Path(folder)
    if not (folder / CONFIG_FILE).is_file():
        raise T2IError(f"no style encoder at {folder}: train one with t2i style train", parameter="style")
    config = read_component(folder, kind=STYLE_KIND, newest_format=STYLE_FORMAT, what="style encoder")
    try:
        style = from_dict(StyleConfig, config["style"], source=str(folder / CONFIG_FILE))
        digest = str(config["generator_sha256"])
    except (KeyError, TypeError, ValueError) as exc:
        raise T2IError(f"style encoder {folder} has a malformed {CONFIG_FILE}: {exc}") from None
    record = {k: v for k, v in config.items() if k not in ("kind", "format", "t2i_version", "style", "generator_sha256")}
    return StyleEncoderInfo(folder, style, digest, record)


def load_style_encoder(folder: str | Path, *, generator_checkpoint: str | Path) -> StyleEncoder:
    """S from ``folder``, refused unless it was trained against ``generator_checkpoint``'s weights."""
    info = read_style_encoder(folder)
    checkpoint = resolve_checkpoint(generator_checkpoint)
    digest = generator_sha256(checkpoint)
    if info.generator_sha256 != digest:
        raise T2IError(
            f"style encoder {info.path} was trained for another generator (sha256 {info.generator_sha256[:12]}…), "
            f"not {checkpoint} (sha256 {digest[:12]}…): train one for it with t2i style train",
            parameter="style",
        )
    encoder = StyleEncoder(info.config)
    load_weights(info.path / STYLE_WEIGHTS, encoder, what="style encoder")
    return encoder.eval().requires_grad_(False)


def photo_tensor(image, size: int) -> torch.Tensor:
    """A PIL image of any mode -> uint8 ``(3, size, size)``: RGB (transparency onto white),
    centre-cropped and resized as the data files are."""
    import numpy as np

    from t2i_cli.data.images import center_square, to_rgb

    pixels = np.asarray(center_square(to_rgb(image), size))
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))
