"""Batches drawn from a split held whole in (device) memory: the fast path of training.

The per-sample :class:`~t2i_cli.data.dataset.CaptionImageDataset` costs Python work per image
(a caption pick, a wrong-image draw, a crop and a flip, then collation). Here the split's decoded
uint8 images and padded caption embeddings (:class:`~t2i_cli.data.split.InMemorySplit`) are two
tensors on the training device, and a batch is the split module's draws over index vectors: no
workers, no per-step host-to-device copy of pixels, nothing that waits on the host.

Randomness is re-derived at every epoch from (seed, epoch, rank): the shuffle from (seed, epoch),
shared by all ranks, which each take their own slice of it; the caption picks, wrong images,
crops and flips from (seed, epoch, rank). A resumed run therefore draws exactly what an
uninterrupted one would, without saving any loader state.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from t2i_cli.data.split import InMemorySplit, crop_and_flip, draw_captions
from t2i_cli.errors import T2IError
from t2i_cli.seeds import mixed_seed


@dataclass
class Batch:
    """What every loader yields, a training step's input (B rows): uint8 images ``(B, 3, S, S)``,
    one caption embedding each ``(B, D)``, a mismatched image each (another class's), the class of
    each row (-1 in a file without classes) and its row in the split."""

    image: torch.Tensor
    embedding: torch.Tensor
    wrong_image: torch.Tensor
    class_index: torch.Tensor
    index: torch.Tensor

    @classmethod
    def collate(cls, items: list[dict]) -> "Batch":
        """A DataLoader's ``collate_fn`` over :class:`~t2i_cli.data.dataset.CaptionImageDataset` items."""
        from torch.utils.data import default_collate

        return cls(*(default_collate([item[f.name] for item in items]) for f in fields(cls)))

    def pin_memory(self) -> "Batch":  # DataLoader(pin_memory=True) calls it
        return Batch(*(getattr(self, f.name).pin_memory() for f in fields(self)))

    def __len__(self) -> int:
        return self.image.shape[0]

    def class_keys(self, device: torch.device) -> torch.Tensor:
        """A class for every row on ``device``: its class, or one of its own for an image without one."""
        labels, index = self.class_index.to(device), self.index.to(device)
        return torch.where(labels >= 0, labels, -1 - index)


def _seeded(*parts: int) -> torch.Generator:
    return torch.Generator().manual_seed(mixed_seed(*parts))


class InMemoryBatches:
    """An iterable of training batches (dicts like the data set's, batched) for one epoch at a time.

    ``rank``/``world_size`` shard each epoch's shuffle for data-parallel training: every rank sees
    ``len(self)`` full batches of distinct images.
    """

    def __init__(
        self,
        split: InMemorySplit,
        *,
        batch_size: int,
        device: torch.device,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.batch_size, self.device = batch_size, device
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0
        self.augment, self.image_size = split.augment, split.image_size
        self.images = split.images.to(device)  # (N, 3, S', S') uint8
        self.embeddings, self.counts = split.embeddings.to(device), split.counts.to(device)  # (N, C, D), (N,)
        self.labels = torch.from_numpy(split.class_indices).to(device)
        self.wrong = split.wrong_images().to(device)
        self.count = len(split)
        if self.count // world_size < batch_size:
            raise T2IError(f"{self.count} images over {world_size} process(es) give fewer than one batch of {batch_size}")

    def __len__(self) -> int:
        return (self.count // self.world_size) // self.batch_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        order = torch.randperm(self.count, generator=_seeded(self.seed, self.epoch))
        mine = order[self.rank :: self.world_size]
        draws = _seeded(self.seed, self.epoch, self.rank, 1)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = mine[start : start + self.batch_size].to(self.device)
            yield self._batch(index, draws)

    def _batch(self, index: torch.Tensor, draws: torch.Generator) -> Batch:
        b = index.shape[0]
        # Caption pick, wrong draw, and a third row no draw uses: kept so that seeded runs replay exactly.
        uniform = torch.rand(3, b, generator=draws).to(self.device)
        embedding = self.embeddings[index, draw_captions(self.counts[index], uniform[0])]
        wrong = self.wrong.draw(index, uniform[1])
        crops = torch.randint(0, self.images.shape[-1] - self.image_size + 1, (2, 2, b), generator=draws).to(self.device)
        flips = torch.rand(2, b, generator=draws).to(self.device) < 0.5
        return Batch(
            image=self._crop(index, crops[0], flips[0]), embedding=embedding, wrong_image=self._crop(wrong, crops[1], flips[1]),
            class_index=self.labels[index], index=index,
        )

    def _crop(self, index: torch.Tensor, offsets: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
        images = self.images[index]
        return crop_and_flip(images, self.image_size, offsets, flip) if self.augment else images
