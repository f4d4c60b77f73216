"""In-memory batches: the same items as the per-sample data set, sharded across ranks, reproducible."""

import torch

from t2i_cli.data.batches import InMemoryBatches
from t2i_cli.data.split import InMemorySplit


def batches(flowers_h5, **kwargs):
    dataset = InMemorySplit.load(flowers_h5, "train", image_size=64, augment=True)
    settings = dict(batch_size=2, device=torch.device("cpu"), seed=3)
    settings.update(kwargs)
    return dataset, InMemoryBatches(dataset, **settings)


def test_batches_hold_crops_of_the_images_captions_and_wrong_classes(flowers_h5):
    dataset, loader = batches(flowers_h5)
    for batch in loader:
        assert batch.image.dtype == torch.uint8 and batch.image.shape == (2, 3, 64, 64)
        for row, index in enumerate(batch.index.tolist()):
            stored = dataset.images[index]  # 76 px: the crop (maybe flipped) must lie inside it
            crop = batch.image[row]
            windows = stored.unfold(1, 64, 1).unfold(2, 64, 1)  # (3, 13, 13, 64, 64)
            found = any(
                torch.equal(windows[:, i, j], crop) or torch.equal(windows[:, i, j].flip(-1), crop)
                for i in range(windows.shape[1]) for j in range(windows.shape[2])
            )
            assert found
            embeddings = dataset.embeddings[index, : dataset.counts[index]]
            assert any(torch.allclose(batch.embedding[row], e) for e in embeddings)
            assert batch.class_index[row] == dataset.class_indices[index]
    # Wrong images come from another class: check through the class of a stored image equal to each.
    batch = next(iter(loader))
    for row in range(2):
        own = int(batch.class_index[row])
        stored_classes = {
            int(dataset.class_indices[i]) for i in range(len(dataset))
            if any(torch.equal(w, batch.wrong_image[row]) for w in _crops(dataset.images[i]))
        }
        assert stored_classes and own not in stored_classes


def _crops(image):
    windows = image.unfold(1, 64, 1).unfold(2, 64, 1)
    for i in range(windows.shape[1]):
        for j in range(windows.shape[2]):
            yield windows[:, i, j]
            yield windows[:, i, j].flip(-1)


def test_ranks_take_disjoint_shards_and_epochs_replay(flowers_h5):
    _, rank0 = batches(flowers_h5, rank=0, world_size=2)
    _, rank1 = batches(flowers_h5, rank=1, world_size=2)
    seen0 = [i for b in rank0 for i in b.index.tolist()]
    seen1 = [i for b in rank1 for i in b.index.tolist()]
    assert len(rank0) == len(rank1) == 2 and len(seen0) == len(seen1) == 4
    assert not set(seen0) & set(seen1)
    again = [i for b in rank0 for i in b.index.tolist()]
    assert again == seen0  # an epoch is a function of (seed, epoch, rank): a resume replays it
    rank0.set_epoch(1)
    assert [i for b in rank0 for i in b.index.tolist()] != seen0


def test_both_loaders_yield_the_same_typed_batch(flowers_h5):
    """The in-memory batches and a DataLoader over the per-sample Dataset give a step the same
    Batch: its fields, dtypes and shapes, a class per row and the row's index in the split."""
    from dataclasses import fields

    from t2i_cli.data.batches import Batch

    from t2i_cli.data.dataset import CaptionImageDataset

    dataset = CaptionImageDataset(flowers_h5, "train")
    in_memory = next(iter(batches(flowers_h5)[1]))
    streamed = next(iter(torch.utils.data.DataLoader(dataset, batch_size=2, collate_fn=Batch.collate)))
    assert type(in_memory) is type(streamed) is Batch and len(in_memory) == len(streamed) == 2
    for field in fields(Batch):
        a, b = getattr(in_memory, field.name), getattr(streamed, field.name)
        assert (a.dtype, a.shape) == (b.dtype, b.shape), field.name
    assert streamed.index.tolist() == [0, 1]
    assert streamed.class_index.tolist() == [dataset.class_indices[0], dataset.class_indices[1]]
