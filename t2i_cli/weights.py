"""The manifest of shipped weights: what each file is, how it was made, and its sha256.

``weights/MANIFEST.json`` maps each file (path relative to ``weights/``) to its sha256, size, the
data it was trained on, the exact command that reproduces it and its measured figures. The test
suite checks every listed file against its hash, so a changed file cannot ship unnoticed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

from t2i_cli.atomic import write_text
from t2i_cli.errors import T2IError

MANIFEST = "MANIFEST.json"
DEFAULT_GENERATOR = "flowers-gan"


def shipped_weights_dir() -> Path:
    """Where the shipped weights are: the repository's ``weights/`` beside this package (a clone,
    an editable install), else the ``t2i_weights`` package a wheel installs."""
    checkout = Path(__file__).resolve().parent.parent / "weights"
    if (checkout / MANIFEST).is_file():
        return checkout
    spec = importlib.util.find_spec("t2i_weights")
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return checkout


WEIGHTS_DIR = shipped_weights_dir()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(weights_dir: Path = WEIGHTS_DIR) -> dict:
    path = Path(weights_dir) / MANIFEST
    if not path.is_file():
        return {"files": {}}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise T2IError(f"{path} is not valid JSON: {exc}") from None


def record(file: Path, *, what: str, data: str, command: str, metrics: dict | None = None,
           hardware: str = "", weights_dir: Path = WEIGHTS_DIR) -> dict:
    """Add or refresh ``file``'s entry (its hash and size are measured now)."""
    file = Path(file)
    relative = file.resolve().relative_to(Path(weights_dir).resolve()).as_posix()
    manifest = read_manifest(weights_dir)
    entry = {
        "sha256": sha256_of(file),
        "bytes": file.stat().st_size,
        "what": what,
        "data": data,
        "command": command,
        "hardware": hardware,
        "metrics": metrics or {},
    }
    manifest["files"][relative] = entry
    write_text(Path(weights_dir) / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return entry


def default_checkpoint() -> Path:
    """The generator used when none is named: ``$T2I_CHECKPOINT``, else the shipped flowers generator."""
    import os

    return Path(os.environ.get("T2I_CHECKPOINT") or WEIGHTS_DIR / DEFAULT_GENERATOR)
