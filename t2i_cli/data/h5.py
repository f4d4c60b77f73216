"""Caption-image HDF5 files: the reference layout, read unchanged, and t2i's superset of it.

The reference layout (the GAN-INT-CLS PyTorch port's converters)::

    /<split: train|valid|test>/<example_name>/
        name        str
        img         JPEG bytes (np.void)
        embeddings  float (N, D) or (D,)
        class       str (the class folder name)
        txt         str array (N,) -- N captions, the reference kept 5 of 10

t2i writes the same groups and datasets, so tools that know the layout still work, and adds:

- root attributes ``t2i_schema_version``, ``t2i_encoder`` (JSON :class:`EncoderIdentity`),
  ``t2i_image_size`` (the square side, 0 when sizes vary), ``t2i_version`` and ``t2i_source``;
- a root ``classes`` dataset (every class name, sorted), so class indices agree across splits;
- every caption of an image in ``txt`` with its embedding in ``embeddings`` (same order);
- a ``count`` attribute on each split group.

Writes go to a hidden temp file beside the target, renamed over it only when complete.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from t2i_cli.atomic import partial_path
from t2i_cli.errors import T2IError
from t2i_cli.text.encoder import EncoderIdentity

SCHEMA_VERSION = 1
SPLITS = ("train", "valid", "test")
ATTR_SCHEMA = "t2i_schema_version"
ATTR_ENCODER = "t2i_encoder"
ATTR_IMAGE_SIZE = "t2i_image_size"
ATTR_VERSION = "t2i_version"
ATTR_SOURCE = "t2i_source"
EMBEDDING_DTYPES = ("float16", "float32")


@dataclass
class Example:
    """One image with all its captions (and their embeddings, once encoded)."""

    name: str
    jpeg: bytes
    captions: list[str]
    class_name: str | None = None
    embeddings: np.ndarray | None = None  # (len(captions), D)
    size: tuple[int, int] | None = field(default=None, compare=False)  # (width, height) if known


def _strings(value) -> list[str]:
    """h5py hands strings back as str, bytes or arrays of either; normalise to a list of str."""
    if isinstance(value, np.ndarray):
        items = value.reshape(-1).tolist()
    else:
        items = [value]
    out = []
    for item in items:
        if isinstance(item, bytes):
            item = item.decode("utf-8", errors="replace")
        out.append(str(item))
    return out


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def is_hdf5(path: str | Path) -> bool:
    """Whether ``path`` is an HDF5 file (its signature at the start; files with a user block, where
    the signature sits later, are not written by t2i)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE
    except OSError:
        return False


def _h5py():
    import h5py

    return h5py


class CaptionImageFile:
    """Read access to a caption-image HDF5 file of either layout.

    ``schema_version`` is None for files in the plain reference layout; their encoder is unknown.
    """

    def __init__(self, path: str | Path):
        h5py = _h5py()
        self.path = Path(path)
        if not self.path.is_file():
            raise T2IError(f"data file {self.path} does not exist")
        try:
            self._h5 = h5py.File(self.path, "r")
        except OSError:
            raise T2IError(f"{self.path} is not a readable HDF5 file") from None
        try:
            with self._reading("its layout"):
                self._validate()
        except BaseException:
            self._h5.close()
            raise

    @contextmanager
    def _reading(self, what: str) -> Iterator[None]:
        """HDF5 read errors of a damaged file (h5py raises OSError, KeyError, RuntimeError, ...
        from deep inside) as one line naming the file and what was being read."""
        try:
            yield
        except T2IError:
            raise
        except (OSError, RuntimeError, KeyError, ValueError, TypeError, UnicodeDecodeError) as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise T2IError(f"{self.path} is damaged: cannot read {what} ({detail})") from None

    def _validate(self) -> None:
        h5py = _h5py()
        attrs = self._h5.attrs
        version = attrs.get(ATTR_SCHEMA)
        self.schema_version = int(version) if version is not None else None
        if self.schema_version is not None and self.schema_version > SCHEMA_VERSION:
            raise T2IError(
                f"{self.path} uses t2i data schema {self.schema_version}; this t2i reads up to "
                f"{SCHEMA_VERSION} (upgrade t2i)"
            )
        self.splits = [s for s in SPLITS if isinstance(self._h5.get(s), h5py.Group)]
        if not self.splits:
            raise T2IError(
                f"{self.path} is not a caption-image data file: it has no train/valid/test groups"
            )
        for split in self.splits:
            group = self._h5[split]
            first = next(iter(group), None)
            if first is None:
                continue
            example = group[first]
            missing = [k for k in ("img", "embeddings", "txt") if not isinstance(example, h5py.Group) or k not in example]
            if missing:
                raise T2IError(
                    f"{self.path} is not a caption-image data file: {split}/{first} lacks "
                    f"{', '.join(missing)}"
                )
        encoder = attrs.get(ATTR_ENCODER)
        self.encoder = EncoderIdentity.from_json(_strings(encoder)[0]) if encoder is not None else None
        size = attrs.get(ATTR_IMAGE_SIZE)
        self.image_size = int(size) if size is not None and int(size) > 0 else None
        self.source = _strings(attrs[ATTR_SOURCE])[0] if ATTR_SOURCE in attrs else None
        if "classes" in self._h5:
            self.classes = _strings(self._h5["classes"][()])
        else:
            # Reference files carry no class table: collect the names so indices agree across splits.
            names = {self.class_name(s, n) for s in self.splits for n in self.names(s)}
            self.classes = sorted(n for n in names if n is not None)

    # --- access -----------------------------------------------------------------------------
    def names(self, split: str) -> list[str]:
        if split not in self.splits:
            raise T2IError(f"{self.path} has no {split!r} split (it has: {', '.join(self.splits)})")
        with self._reading(f"the {split} split's names"):
            return list(self._h5[split].keys())

    def class_name(self, split: str, name: str) -> str | None:
        with self._reading(f"{split}/{name}/class"):
            group = self._h5[split][name]
            if "class" not in group:
                return None
            return _strings(group["class"][()])[0]

    def captions(self, split: str, name: str) -> list[str]:
        with self._reading(f"{split}/{name}/txt"):
            return [c.strip() for c in _strings(self._h5[split][name]["txt"][()])]

    def embeddings(self, split: str, name: str) -> np.ndarray:
        """``(N, D)`` float32; a reference file's single ``(D,)`` embedding becomes ``(1, D)``."""
        with self._reading(f"{split}/{name}/embeddings"):
            values = np.asarray(self._h5[split][name]["embeddings"][()], dtype=np.float32)
        return values.reshape(1, -1) if values.ndim == 1 else values.reshape(values.shape[0], -1)

    def jpeg(self, split: str, name: str) -> bytes:
        with self._reading(f"{split}/{name}/img"):
            value = self._h5[split][name]["img"][()]
        return value.tobytes() if hasattr(value, "tobytes") else bytes(value)

    def example(self, split: str, name: str) -> Example:
        return Example(
            name=name,
            jpeg=self.jpeg(split, name),
            captions=self.captions(split, name),
            class_name=self.class_name(split, name),
            embeddings=self.embeddings(split, name),
        )

    def examples(self, split: str) -> Iterator[Example]:
        for name in self.names(split):
            yield self.example(split, name)

    @property
    def embedding_dim(self) -> int | None:
        for split in self.splits:
            for name in self.names(split):
                return int(self.embeddings(split, name).shape[-1])
        return None

    @property
    def stored_embedding_dtype(self) -> np.dtype | None:
        """The type the embeddings are stored in (float16 or float32); :meth:`embeddings` hands
        them back as float32 whatever it is. ``None`` for a file without images."""
        for split in self.splits:
            for name in self.names(split):
                with self._reading(f"{split}/{name}/embeddings"):
                    return self._h5[split][name]["embeddings"].dtype
        return None

    def check_encoder(self, expected: EncoderIdentity) -> None:
        """Refuse embeddings made by any other encoder than ``expected``."""
        if self.encoder is None:
            raise T2IError(
                f"{self.path} does not record which encoder made its embeddings (reference layout); "
                f"re-embed it with the encoder in use first (t2i data embed)"
            )
        if self.encoder != expected:
            raise T2IError(
                f"encoder mismatch: {self.path} was embedded with {self.encoder}, "
                f"but {expected} is in use; re-embed it with t2i data embed"
            )

    def close(self) -> None:
        self._h5.close()

    def __enter__(self) -> "CaptionImageFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class CaptionImageWriter:
    """Streams examples into a new t2i-layout file, atomically.

    Use as a context manager. Examples are written to ``.<name>.partial-<pid>`` beside ``path``;
    only a clean exit renames it over ``path``. An exception (or Ctrl-C) deletes the partial file,
    so an interrupted write never leaves a file that looks complete, and an older good file at
    ``path`` stays as it was.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        encoder: EncoderIdentity,
        embedding_dtype: str = "float16",
        image_size: int | None = None,
        source: str | None = None,
        classes: list[str] | None = None,
        overwrite: bool = False,
    ):
        if embedding_dtype not in EMBEDDING_DTYPES:
            raise T2IError(f"embedding dtype must be one of {', '.join(EMBEDDING_DTYPES)}")
        self.path = Path(path)
        if self.path.is_dir():
            raise T2IError(f"output {self.path} is a folder; give a file name such as data.h5")
        if self.path.exists() and not overwrite:
            raise T2IError(f"{self.path} already exists, and replacing it was not asked for", parameter="overwrite")
        self.encoder = encoder
        self.embedding_dtype = np.dtype(embedding_dtype)
        self.image_size = image_size
        self.source = source
        self._classes = set(classes or [])
        self._sizes: set[tuple[int, int]] = set()
        self.counts = {split: 0 for split in SPLITS}
        self.caption_count = 0
        self._tmp = partial_path(self.path)
        self._h5 = None

    def __enter__(self) -> "CaptionImageWriter":
        h5py = _h5py()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._h5 = h5py.File(self._tmp, "w")
        for split in SPLITS:
            self._h5.create_group(split)
        return self

    def add(self, split: str, example: Example) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}")
        if example.embeddings is None or len(example.embeddings) != len(example.captions):
            raise ValueError(f"{example.name}: need one embedding per caption")
        embeddings = np.asarray(example.embeddings)
        if embeddings.shape[-1] != self.encoder.dim:
            raise ValueError(
                f"{example.name}: embeddings are {embeddings.shape[-1]}-d, encoder is {self.encoder.dim}-d"
            )
        if "/" in example.name or example.name in ("", ".", ".."):
            raise ValueError(f"{example.name!r} cannot name an HDF5 group: the readers make names without '/'")
        h5py = _h5py()
        group = self._h5[split].create_group(example.name)
        group.create_dataset("name", data=example.name, dtype=h5py.string_dtype())
        group.create_dataset("img", data=np.void(example.jpeg))
        group.create_dataset("embeddings", data=embeddings.astype(self.embedding_dtype))
        group.create_dataset("txt", data=example.captions, dtype=h5py.string_dtype())
        if example.class_name is not None:
            group.create_dataset("class", data=example.class_name, dtype=h5py.string_dtype())
            self._classes.add(example.class_name)
        if example.size is not None:
            self._sizes.add(tuple(example.size))
        self.counts[split] += 1
        self.caption_count += len(example.captions)

    def _finish(self) -> None:
        from t2i_cli import __version__

        h5py = _h5py()
        attrs = self._h5.attrs
        attrs[ATTR_SCHEMA] = SCHEMA_VERSION
        attrs[ATTR_ENCODER] = self.encoder.to_json()
        attrs[ATTR_VERSION] = __version__
        if self.source is not None:
            attrs[ATTR_SOURCE] = self.source
        image_size = self.image_size
        if image_size is None:
            square = len(self._sizes) == 1 and len({*next(iter(self._sizes))}) == 1
            image_size = next(iter(self._sizes))[0] if square else 0
        attrs[ATTR_IMAGE_SIZE] = image_size
        self._h5.create_dataset("classes", data=sorted(self._classes), dtype=h5py.string_dtype())
        for split, count in self.counts.items():
            self._h5[split].attrs["count"] = count
        self._h5.close()
        os.replace(self._tmp, self.path)

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self._finish()
                return
            except BaseException:
                self._discard()
                raise
        self._discard()

    def _discard(self) -> None:
        try:
            self._h5.close()
        except Exception:  # already closed or broken: the temp file goes either way
            pass
        self._tmp.unlink(missing_ok=True)
