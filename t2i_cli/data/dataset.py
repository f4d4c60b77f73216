"""The per-sample training view of a caption-image file: a PyTorch ``Dataset`` for matching-aware GANs.

Each item is one image with one of its captions drawn at random, plus a *wrong* image for the
GAN-CLS loss (Reed et al. 2016), which is guaranteed to come from another class (or, in a file
without classes, to be another image). Images stay uint8; normalising happens on the device.
The draws are :mod:`t2i_cli.data.split`'s, one item at a time; training normally takes them a
batch at a time from :class:`~t2i_cli.data.batches.InMemoryBatches` instead, and this Dataset is
the path for ``--workers N`` or ``--no-preload`` (a split streamed from the file).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from t2i_cli.data.h5 import CaptionImageFile
from t2i_cli.data.split import (
    InMemorySplit,
    WrongImageTable,
    crop_and_flip,
    decode_square,
    draw_captions,
    split_classes,
    stored_size,
    usable_captions,
)
from t2i_cli.text.encoder import EncoderIdentity


class CaptionImageDataset(torch.utils.data.Dataset):
    """Items of one split of a caption-image HDF5 file.

    ``__getitem__`` returns a dict:

    - ``image``: uint8 ``(3, S, S)``
    - ``embedding``: float32 ``(D,)``, of a caption drawn at random among the image's captions
    - ``caption``: that caption's text
    - ``wrong_image``: uint8 ``(3, S, S)`` of another class's image
    - ``class_index``: int, index into :attr:`classes` (-1 in a file without classes)

    The HDF5 file is opened lazily in each worker process and never pickled. ``preload`` decodes
    the split into memory once (:attr:`memory`; a 64 px set of 5,000 images takes about 90 MB).
    ``augment`` keeps images at 76/64 of ``image_size`` and takes a random crop and a random
    horizontal flip. Randomness comes from torch's generator, which DataLoader seeds per worker.
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
        self.stored_size = stored_size(image_size, augment)
        self._file: CaptionImageFile | None = None
        self._file_pid: int | None = None
        self.memory: InMemorySplit | None = None
        with CaptionImageFile(self.path) as data:
            if preload:
                self.memory = InMemorySplit.read(data, split, image_size=image_size, augment=augment, expected_encoder=expected_encoder)
                self.names, self.classes, self.class_indices = self.memory.names, self.memory.classes, self.memory.class_indices
            else:
                if expected_encoder is not None:
                    data.check_encoder(expected_encoder)
                self.names, self.class_indices = split_classes(data, split)
                self.classes = list(data.classes)
            self.encoder = data.encoder
        self.wrong = WrongImageTable(self.class_indices, what=f"the {split} split of {self.path}")

    def wrong_index(self, index: int) -> int:
        """A random index whose class differs from ``index``'s (or just another image, classless)."""
        return int(self.wrong.draw(torch.tensor([index]), torch.rand(1))[0])

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

    def _stored_image(self, index: int) -> torch.Tensor:
        if self.memory is not None:
            return self.memory.images[index]
        name = self.names[index]
        return decode_square(self._data().jpeg(self.split, name), self.stored_size, where=f"{self.path}: {self.split}/{name}")

    def _augmented(self, image: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
        if not self.augment:
            return image
        offsets = torch.randint(self.stored_size - self.image_size + 1, (2, 1))
        return crop_and_flip(image[None], self.image_size, offsets, flip.view(1))[0]

    # --- Dataset --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict:
        if self.memory is not None:
            embeddings, captions = self.memory.embeddings[index], self.memory.captions[index]
            count = int(self.memory.counts[index])
        else:
            data, name = self._data(), self.names[index]
            embeddings, captions = torch.from_numpy(data.embeddings(self.split, name)), data.captions(self.split, name)
            count = usable_captions(len(embeddings), len(captions))
        uniform = torch.rand(4)  # caption pick, wrong image, flip of the image, flip of the wrong image
        pick = int(draw_captions(torch.tensor(count), uniform[0]))
        wrong = int(self.wrong.draw(torch.tensor([index]), uniform[1:2])[0])
        return {
            "image": self._augmented(self._stored_image(index), uniform[2] < 0.5),
            "embedding": embeddings[pick].float(),
            "caption": captions[pick] if pick < len(captions) else "",
            "wrong_image": self._augmented(self._stored_image(wrong), uniform[3] < 0.5),
            "class_index": int(self.class_indices[index]),
            "index": index,
        }
