"""Batches drawn from a split held whole in (device) memory: the fast path of training.

The per-sample :class:`~t2i_cli.data.dataset.CaptionImageDataset` costs Python work per image
(a caption pick, a wrong-image draw, a crop and a flip, then collation). Here the split's decoded
uint8 images and padded caption embeddings are two tensors on the training device, and a batch is
a handful of tensor operations over index vectors: no workers, no per-step host-to-device copy of
pixels, nothing that waits on the host.

Randomness is re-derived at every epoch from (seed, epoch, rank): the shuffle from (seed, epoch),
shared by all ranks, which each take their own slice of it; the caption picks, wrong images,
crops and flips from (seed, epoch, rank). A resumed run therefore draws exactly what an
uninterrupted one would, without saving any loader state.
"""

from __future__ import annotations

import torch

from t2i_cli.data.dataset import CaptionImageDataset
from t2i_cli.errors import T2IError


def mixed_seed(*parts: int) -> int:
    """One seed from several integers (seed, epoch, rank, ...): a fixed, spelled-out mix."""
    seed = 0
    for part in parts:
        seed = (seed * 1_000_003 + int(part) + 1) % (2**63 - 1)
    return seed


def _seeded(*parts: int) -> torch.Generator:
    return torch.Generator().manual_seed(mixed_seed(*parts))


class InMemoryBatches:
    """An iterable of training batches (dicts like the data set's, batched) for one epoch at a time.

    ``rank``/``world_size`` shard each epoch's shuffle for data-parallel training: every rank sees
    ``len(self)`` full batches of distinct images.
    """

    def __init__(
        self,
        dataset: CaptionImageDataset,
        *,
        batch_size: int,
        device: torch.device,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        if dataset._images is None:
            raise T2IError("in-memory batches need a preloaded data set (preload=True)")
        self.batch_size, self.device = batch_size, device
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0
        self.augment, self.image_size = dataset.augment, dataset.image_size
        self.images = dataset._images.to(device)  # (N, 3, S', S') uint8
        embeddings, counts = dataset.padded_embeddings()
        self.embeddings, self.counts = embeddings.to(device), counts.to(device)  # (N, C, D), (N,)
        self.labels = torch.from_numpy(dataset.class_indices).to(device)
        self.classless = bool((self.labels < 0).all())
        self.by_class = torch.from_numpy(dataset._by_class).to(device)
        self.class_start = torch.tensor([dataset._class_start.get(int(c), 0) for c in dataset.class_indices], device=device)
        self.class_size = torch.tensor([dataset._class_size.get(int(c), 0) for c in dataset.class_indices], device=device)
        self.count = len(counts)
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

    def _batch(self, index: torch.Tensor, draws: torch.Generator) -> dict:
        b = index.shape[0]
        uniform = torch.rand(3, b, generator=draws).to(self.device)  # caption pick, wrong draw, flip
        pick = (uniform[0] * self.counts[index]).long()
        embedding = self.embeddings[index, pick]
        wrong = self._wrong(index, uniform[1])
        crops = torch.randint(0, self.images.shape[-1] - self.image_size + 1, (2, 2, b), generator=draws).to(self.device)
        flips = torch.rand(2, b, generator=draws).to(self.device) < 0.5
        return {
            "image": self._crop(index, crops[0], flips[0]),
            "embedding": embedding,
            "wrong_image": self._crop(wrong, crops[1], flips[1]),
            "class_index": self.labels[index],
            "index": index,
        }

    def _wrong(self, index: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
        """An image of another class per row: a draw from the class-sorted order skipping the row's
        own class block (or any other image when the file has no classes)."""
        if self.classless:
            draw = (uniform * (self.count - 1)).long()
            return draw + (draw >= index).long()
        size, start = self.class_size[index], self.class_start[index]
        draw = (uniform * (self.count - size)).long()
        draw = draw + size * (draw >= start).long()
        return self.by_class[draw]

    def _crop(self, index: torch.Tensor, offsets: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
        """Random ``image_size`` crops (and horizontal flips) of the stored images, by gathering."""
        images = self.images[index]
        if not self.augment:
            return images
        steps = torch.arange(self.image_size, device=self.device)
        rows = offsets[0, :, None] + steps  # (B, S)
        cols = offsets[1, :, None] + torch.where(flip[:, None], steps.flip(0), steps)
        batch = torch.arange(images.shape[0], device=self.device)[:, None, None, None]
        channels = torch.arange(images.shape[1], device=self.device)[None, :, None, None]
        return images[batch, channels, rows[:, None, :, None], cols[:, None, None, :]]
