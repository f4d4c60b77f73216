"""Model parts on disk, one way (the diffusers ``save_pretrained`` / ``from_pretrained`` idea, kept small).

A component is a folder::

    config.json           {"kind": ..., "format": N, "t2i_version": ..., and the part's own fields}
    <name>.safetensors    its weights (one file or more; a generator checkpoint adds training/)

:func:`write_component` writes one (into a hidden folder renamed into place, so a crash leaves the
old one whole) and :func:`read_component` reads one, checking ``kind`` and ``format`` in one place
with one-line errors. t2i's own parts are components: a generator checkpoint
(:mod:`t2i_cli.checkpoint`, kind ``t2i-gan``), a style encoder (:mod:`t2i_cli.style`), R-precision's
image encoder and the caption-matching one (:mod:`t2i_cli.evaluation.image_encoder`).

The two self-contained libraries keep files of their own, self-describing too, because they never
import t2i: ``srcnn`` writes one safetensors file whose metadata holds its kind and config, and
``ganbert`` a folder whose ``ganbert.json`` holds kind and format beside a transformers backbone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from t2i_cli import __version__
from t2i_cli.atomic import atomic_folder
from t2i_cli.errors import T2IError

CONFIG_FILE = "config.json"


def write_component(
    folder: str | Path,
    *,
    kind: str,
    format: int,
    config: Mapping,
    weights: Mapping[str, Mapping[str, torch.Tensor]],
    half: bool = False,
    extra: Callable[[Path], None] | None = None,
) -> Path:
    """Write ``folder`` atomically: each ``weights[file]`` as ``file`` (safetensors; ``half``
    stores floating tensors as float16), then ``extra(partial_folder)`` for anything else, then
    ``config.json`` with ``kind``, ``format``, the t2i version and ``config``'s fields."""
    from safetensors.torch import save_file

    folder = Path(folder)
    with atomic_folder(folder) as partial:
        for name, tensors in weights.items():
            stored = {k: (v.half() if half and v.is_floating_point() else v).detach().contiguous().cpu() for k, v in tensors.items()}
            save_file(stored, str(partial / name))
        if extra is not None:
            extra(partial)
        description = {"kind": kind, "format": format, "t2i_version": __version__, **config}
        (partial / CONFIG_FILE).write_text(json.dumps(description, indent=2) + "\n")
    return folder


def read_component(folder: str | Path, *, kind: str, newest_format: int, what: str) -> dict:
    """``folder``'s ``config.json``, refused in one line unless it is readable JSON of ``kind`` in a
    format this t2i reads. ``what`` names the thing in messages ("generator checkpoint", "style
    encoder")."""
    folder = Path(folder)
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        detail = type(exc).__name__ if isinstance(exc, RecursionError) else exc
        raise T2IError(f"{what} {folder} has an unreadable {CONFIG_FILE}: {detail}") from None
    if not isinstance(config, dict) or config.get("kind") != kind:
        found = config.get("kind") if isinstance(config, dict) else None
        raise T2IError(f"{folder} is not a t2i {what} (kind {found!r}, expected {kind!r})")
    fmt = config.get("format", 0)
    if isinstance(fmt, bool) or not isinstance(fmt, int) or fmt < 0:
        raise T2IError(f"{what} {folder}: its {CONFIG_FILE} gives format {json.dumps(fmt)}, not a whole number")
    if fmt > newest_format:
        raise T2IError(f"{folder} has {what} format {fmt}; this t2i reads up to {newest_format} (upgrade t2i)")
    return config


def component_kind(folder: str | Path) -> str | None:
    """The kind ``folder``'s config names, or None where there is no readable one (for "is there
    one already?" and "may --force replace this?" questions, never for loading)."""
    try:
        config = json.loads((Path(folder) / CONFIG_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    kind = config.get("kind") if isinstance(config, dict) else None
    return kind if isinstance(kind, str) else None
