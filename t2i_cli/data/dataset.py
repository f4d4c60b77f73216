"""The training view of a caption-image file: a PyTorch ``Dataset`` for matching-aware GANs.

Each item is one image with one of its captions drawn at random, plus a *wrong* image for the
GAN-CLS loss (Reed et al. 2016), which is guaranteed to come from another class (or, in a file
without classes, to be another image). Images stay uint8; normalising happens on the device.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from t2i_cli.data.h5 import CaptionImageFile
from t2i_cli.data.images import center_square, decode_rgb
from t2i_cli.errors import T2IError
from t2i_cli.text.encoder import EncoderIdentity

# Reed et al. load at 76 px and random-crop 64: the same ratio at any image size.
LOAD_RATIO = 76 / 64


class CaptionImageDataset(torch.utils.data.Dataset):
    """Items of one split of a caption-image HDF5 file.

    ``__getitem__`` returns a dict:

    - ``image``: uint8 ``(3, S, S)``
    - ``embedding``: float32 ``(D,)``, of a caption drawn at random among the image's captions
    - ``caption``: that caption's text
    - ``wrong_image``: uint8 ``(3, S, S)`` of another class's image
    - ``class_index``: int, index into :attr:`classes` (-1 in a file without classes)

    The HDF5 file is opened lazily in each worker process and never pickled. ``preload`` decodes
    every image into memory once (a 64 px set of 5,000 images takes about 90 MB). ``augment``
    resizes to 76/64 of ``image_size`` and takes a random crop and a random horizontal flip.
    Randomness comes from torch's generator, which DataLoader seeds per worker.
    """

    def __init__(
        self,
        path: str | Path,
        split: str = "train",
        *,
        image_size: int = 64,
        augment: bool = False,
        preload: bool = False,
        expected_encoder: EncoderIdentity | None = None,
    ):
        self.path = Path(path)
        self.split = split
        self.image_size = image_size
        self.augment = augment
        self.stored_size = round(image_size * LOAD_RATIO) if augment else image_size
        self._file: CaptionImageFile | None = None
        self._file_pid: int | None = None

        with CaptionImageFile(self.path) as data:
            if expected_encoder is not None:
                data.check_encoder(expected_encoder)
            self.encoder = data.encoder
            self.names = data.names(split)
            if not self.names:
                raise T2IError(f"the {split} split of {self.path} is empty")
            self.classes = list(data.classes)
            class_row = {name: i for i, name in enumerate(self.classes)}
            class_names = [data.class_name(split, n) for n in self.names]
            self.class_indices = np.array(
                [-1 if c is None else class_row[c] for c in class_names], dtype=np.int64
            )
            self._images: torch.Tensor | None = None
            self._embeddings: list[np.ndarray] | None = None
            self._captions: list[list[str]] | None = None
            if preload:
                self._images = torch.stack([self._decode(data.jpeg(split, n)) for n in self.names])
                self._embeddings = [data.embeddings(split, n) for n in self.names]
                self._captions = [data.captions(split, n) for n in self.names]
        self._build_wrong_sampler()

    def padded_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A preloaded split's caption embeddings as one float32 ``(N, C, D)`` tensor, each image's
        padded to the most captions C any image has, and ``(N,)`` how many of each are real."""
        if self._embeddings is None:
            raise T2IError("padded embeddings need a preloaded data set (preload=True)")
        # Reference files may hold fewer embeddings than captions (or one); pair what pairs.
        counts = [min(len(e), max(len(c), 1)) for e, c in zip(self._embeddings, self._captions)]
        table = np.zeros((len(counts), max(counts), self._embeddings[0].shape[-1]), dtype=np.float32)
        for row, (values, count) in enumerate(zip(self._embeddings, counts)):
            table[row, :count] = values[:count]
        return torch.from_numpy(table), torch.tensor(counts, dtype=torch.long)

    # --- wrong-image sampling ---------------------------------------------------------------
    def _build_wrong_sampler(self) -> None:
        """Sort indices by class so "any image outside class c" is one draw from two ranges."""
        labels = self.class_indices
        has_class = labels >= 0
        if has_class.any() and not has_class.all():
            raise T2IError(f"{self.path}: some {self.split} examples have a class and some do not")
        self._by_class = np.argsort(labels, kind="stable")
        sorted_labels = labels[self._by_class]
        self._class_start = {int(c): int(np.searchsorted(sorted_labels, c, "left")) for c in np.unique(labels)}
        self._class_size = {int(c): int((labels == c).sum()) for c in np.unique(labels)}
        if has_class.all() and len(self._class_size) < 2:
            raise T2IError(
                f"the {self.split} split of {self.path} has one class only; a wrong image of another "
                f"class cannot be drawn"
            )
        if len(self.names) < 2:
            raise T2IError(f"the {self.split} split of {self.path} has one image only; it needs two")

    def wrong_index(self, index: int) -> int:
        """A random index whose class differs from ``index``'s (or just another image, classless)."""
        label = int(self.class_indices[index])
        if label < 0:
            draw = int(torch.randint(len(self.names) - 1, ()).item())
            return draw + (draw >= index)
        start, size = self._class_start[label], self._class_size[label]
        draw = int(torch.randint(len(self.names) - size, ()).item())
        if draw >= start:
            draw += size  # skip over the block of this class in the class-sorted order
        return int(self._by_class[draw])

    # --- file access --------------------------------------------------------------------------
    def _data(self) -> CaptionImageFile:
        # One handle per process: h5py handles must not cross a fork.
        if self._file is None or self._file_pid != os.getpid():
            self._file = CaptionImageFile(self.path)
            self._file_pid = os.getpid()
        return self._file

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"] = None
        state["_file_pid"] = None
        return state

    def _decode(self, jpeg: bytes) -> torch.Tensor:
        """JPEG bytes -> uint8 (3, stored_size, stored_size)."""
        pixels = decode_rgb(jpeg)
        if pixels.shape[0] != self.stored_size or pixels.shape[1] != self.stored_size:
            pixels = np.asarray(center_square(Image.fromarray(pixels), self.stored_size))
        return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))

    def _stored_image(self, index: int) -> torch.Tensor:
        if self._images is not None:
            return self._images[index]
        return self._decode(self._data().jpeg(self.split, self.names[index]))

    def _augmented(self, image: torch.Tensor) -> torch.Tensor:
        if not self.augment:
            return image
        margin = self.stored_size - self.image_size
        top, left = (int(v) for v in torch.randint(margin + 1, (2,)))
        image = image[:, top : top + self.image_size, left : left + self.image_size]
        if torch.rand(()) < 0.5:
            image = image.flip(-1)
        return image.contiguous()

    # --- Dataset --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict:
        if self._embeddings is not None:
            embeddings, captions = self._embeddings[index], self._captions[index]
        else:
            data, name = self._data(), self.names[index]
            embeddings, captions = data.embeddings(self.split, name), data.captions(self.split, name)
        # Reference files may hold fewer embeddings than captions (or one); pair what pairs.
        pick = int(torch.randint(min(len(embeddings), max(len(captions), 1)), ()).item())
        caption = captions[pick] if pick < len(captions) else ""
        wrong = self.wrong_index(index)
        return {
            "image": self._augmented(self._stored_image(index)),
            "embedding": torch.from_numpy(np.asarray(embeddings[pick], dtype=np.float32)),
            "caption": caption,
            "wrong_image": self._augmented(self._stored_image(wrong)),
            "class_index": int(self.class_indices[index]),
        }
