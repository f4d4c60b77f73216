"""One split of a caption-image file held in memory, and the draws training makes from a split.

:class:`InMemorySplit` is a split decoded once: uint8 images, every image's caption embeddings
padded into one tensor, the caption texts, class indices and an identity for caches. Training
batches, the per-sample Dataset, evaluation and the image encoders all read this one object.

The draws that turn a split into GAN-CLS training examples exist once, here, as functions of
uniform numbers over whole index vectors: a caption per image (:func:`draw_captions`), an image of
another class (:class:`WrongImageTable`) and a crop with a flip (:func:`crop_and_flip`). The
in-memory batches call them for a batch at once on the device; the Dataset for one item at a time.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from t2i_cli.data.h5 import CaptionImageFile
from t2i_cli.data.images import BadImage, center_square, decode_rgb
from t2i_cli.errors import T2IError
from t2i_cli.text.encoder import EncoderIdentity

# Reed et al. load at 76 px and random-crop 64: the same ratio at any image size.
LOAD_RATIO = 76 / 64


def stored_size(image_size: int, augment: bool) -> int:
    """The side images are kept at: 76/64 of ``image_size`` when crops will be drawn from them."""
    return round(image_size * LOAD_RATIO) if augment else image_size


def usable_captions(embeddings: int, captions: int) -> int:
    """How many (caption, embedding) pairs an image has: reference files may hold fewer
    embeddings than captions (or one); pair what pairs."""
    return min(embeddings, max(captions, 1))


def decode_square(jpeg: bytes, size: int, *, where: str = "an image") -> torch.Tensor:
    """JPEG bytes -> uint8 ``(3, size, size)``, centre-cropped and resized if it is not that size;
    bytes that do not decode are one error naming ``where`` they came from."""
    try:
        pixels = decode_rgb(jpeg)
    except BadImage as exc:
        raise T2IError(f"{where} does not decode: {exc}") from None
    if pixels.shape[0] != size or pixels.shape[1] != size:
        pixels = np.asarray(center_square(Image.fromarray(pixels), size))
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))


def split_classes(data: CaptionImageFile, split: str) -> tuple[list[str], np.ndarray]:
    """``split``'s image names and their int64 class indices into ``data.classes`` (-1 in a file
    without classes); an empty split is refused."""
    names = data.names(split)
    if not names:
        raise T2IError(f"the {split} split of {data.path} is empty")
    row = {name: i for i, name in enumerate(data.classes)}
    classes = (data.class_name(split, name) for name in names)
    return names, np.array([-1 if c is None else row[c] for c in classes], dtype=np.int64)


def data_record(data: CaptionImageFile, split: str, digest: str | None = None) -> dict:
    """What a model was trained on, by name and content rather than by a machine's path: the
    file's name, the split, its image count, its caption encoder and a sha256 over its image
    names and JPEG bytes (``digest``, computed here if not given)."""
    names = data.names(split)
    if digest is None:
        hasher = hashlib.sha256()
        for name in names:
            hasher.update(name.encode())
            hasher.update(data.jpeg(split, name))
        digest = hasher.hexdigest()[:20]
    return {
        "file": Path(data.path).name, "split": split, "images": len(names), "sha256": digest,
        "encoder": json.loads(data.encoder.to_json()) if data.encoder else None,
    }


# --- the draws ------------------------------------------------------------------------------


def draw_captions(counts: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """One caption index per row, uniform over that row's ``counts`` captions."""
    return (uniform * counts).long()


def crop_and_flip(images: torch.Tensor, size: int, offsets: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """``(B, C, S', S')`` -> ``(B, C, size, size)`` windows at ``offsets`` ``(2, B)`` (top, left),
    mirrored left-right where ``flip`` ``(B,)`` is true; one gather for the whole batch."""
    steps = torch.arange(size, device=images.device)
    rows = offsets[0, :, None] + steps  # (B, size)
    cols = offsets[1, :, None] + torch.where(flip[:, None], steps.flip(0), steps)
    batch = torch.arange(images.shape[0], device=images.device)[:, None, None, None]
    channels = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
    return images[batch, channels, rows[:, None, :, None], cols[:, None, None, :]]


class WrongImageTable:
    """GAN-CLS's wrong images: for each row, a uniform draw among the images of other classes (or
    among all other images, in a file without classes). The images are sorted by class, so the
    draw is one number over the sorted order that skips the row's own class block."""

    def __init__(self, class_indices: np.ndarray, *, what: str):
        labels = np.asarray(class_indices, dtype=np.int64)
        has_class = labels >= 0
        if has_class.any() and not has_class.all():
            raise T2IError(f"{what}: some examples have a class and some do not")
        if len(labels) < 2:
            raise T2IError(f"{what} has one image only; it needs two")
        classes, sizes = np.unique(labels, return_counts=True)
        if has_class.all() and len(classes) < 2:
            raise T2IError(f"{what} has one class only; a wrong image of another class cannot be drawn")
        by_class = np.argsort(labels, kind="stable")
        starts = np.searchsorted(labels[by_class], classes, "left")
        start_of, size_of = dict(zip(classes.tolist(), starts.tolist())), dict(zip(classes.tolist(), sizes.tolist()))
        self.classless = not has_class.any()
        self.count = len(labels)
        self.by_class = torch.from_numpy(by_class)  # (N,) image indices in class order
        self.row_start = torch.tensor([start_of[int(c)] for c in labels], dtype=torch.long)  # (N,) where each row's class starts
        self.row_size = torch.tensor([size_of[int(c)] for c in labels], dtype=torch.long)  # (N,) its class size

    def to(self, device: torch.device) -> "WrongImageTable":
        for name in ("by_class", "row_start", "row_size"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def draw(self, index: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
        """One wrong image index per row of ``index``, from ``uniform`` numbers in [0, 1)."""
        if self.classless:
            draw = (uniform * (self.count - 1)).long()
            return draw + (draw >= index).long()
        size, start = self.row_size[index], self.row_start[index]
        draw = (uniform * (self.count - size)).long()
        draw = draw + size * (draw >= start).long()  # skip over the row's own class block
        return self.by_class[draw]


# --- the split in memory ----------------------------------------------------------------------


@dataclass
class InMemorySplit:
    """One split of a caption-image file, decoded once."""

    path: Path
    split: str
    names: list[str]
    images: torch.Tensor  # uint8 (N, 3, S', S'), S' = stored_size(image_size, augment)
    embeddings: torch.Tensor  # float32 (N, C, D): each image's caption embeddings, padded to the most any has
    counts: torch.Tensor  # int64 (N,): how many of each row of ``embeddings`` are real
    captions: list[list[str]]
    classes: list[str]  # the file's class table
    class_indices: np.ndarray  # int64 (N,): index into ``classes``, -1 in a file without classes
    encoder: EncoderIdentity | None
    image_size: int
    identity: dict  # what the split is, for caches: encoder, image size, sha256 of names + JPEG bytes
    record: dict  # what a model trained on it records (data_record): file name, split, images, sha256, encoder

    @classmethod
    def load(cls, path: str | Path, split: str, *, image_size: int, augment: bool = False,
             expected_encoder: EncoderIdentity | None = None) -> "InMemorySplit":
        with CaptionImageFile(path) as data:
            return cls.read(data, split, image_size=image_size, augment=augment, expected_encoder=expected_encoder)

    @classmethod
    def read(cls, data: CaptionImageFile, split: str, *, image_size: int, augment: bool = False,
             expected_encoder: EncoderIdentity | None = None) -> "InMemorySplit":
        """Decode ``split`` of an open file (kept at 76/64 of ``image_size`` if ``augment``)."""
        if expected_encoder is not None:
            data.check_encoder(expected_encoder)
        names, class_indices = split_classes(data, split)
        side = stored_size(image_size, augment)
        digest = hashlib.sha256()
        images, embeddings, captions = [], [], []
        for name in names:
            jpeg = data.jpeg(split, name)
            digest.update(name.encode())
            digest.update(jpeg)
            images.append(decode_square(jpeg, side, where=f"{data.path}: {split}/{name}"))
            embeddings.append(data.embeddings(split, name))
            captions.append(data.captions(split, name))
        counts = [usable_captions(len(e), len(c)) for e, c in zip(embeddings, captions)]
        table = np.zeros((len(counts), max(counts), embeddings[0].shape[-1]), dtype=np.float32)
        for row, (values, count) in enumerate(zip(embeddings, counts)):
            table[row, :count] = values[:count]
        identity = {
            "encoder": json.loads(data.encoder.to_json()) if data.encoder else None,
            "split": split, "image_size": image_size, "images": len(names), "sha256": digest.hexdigest()[:20],
        }
        return cls(
            path=Path(data.path), split=split, names=names, images=torch.stack(images),
            embeddings=torch.from_numpy(table), counts=torch.tensor(counts, dtype=torch.long), captions=captions,
            classes=list(data.classes), class_indices=class_indices,
            encoder=data.encoder, image_size=image_size, identity=identity,
            record=data_record(data, split, identity["sha256"]),
        )

    def __len__(self) -> int:
        return len(self.names)

    @property
    def augment(self) -> bool:
        """Whether the images are stored larger than ``image_size``, for crops."""
        return self.images.shape[-1] != self.image_size

    def wrong_images(self) -> WrongImageTable:
        return WrongImageTable(self.class_indices, what=f"the {self.split} split of {self.path}")


def sample_rows(class_indices: np.ndarray, rows: int) -> list[int]:
    """``rows`` images for sample sheets: the first image of each class in file order, spread over
    the classes (filled with the other images in file order when there are fewer classes)."""
    first_of_class: dict[int, int] = {}
    for row, label in enumerate(np.asarray(class_indices).tolist()):
        first_of_class.setdefault(label, row)  # a file without classes is one class, -1
    chosen = list(first_of_class.values())
    if len(chosen) < rows:
        taken = set(chosen)
        chosen += [row for row in range(len(class_indices)) if row not in taken][: rows - len(chosen)]
    stride = max(1, len(chosen) // rows)
    return chosen[::stride][:rows]
