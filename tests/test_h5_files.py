"""Converter round trip, the reference layout, atomic writes and re-embedding."""

import h5py
import numpy as np
import pytest

from conftest import OXFORD_MINI
from t2i_cli.data.convert import convert, describe, reembed
from t2i_cli.data.h5 import SCHEMA_VERSION, CaptionImageFile, CaptionImageWriter, Example
from t2i_cli.errors import T2IError
from t2i_cli.text import EncoderIdentity, load_text_encoder


def write_reference_file(path, rows):
    """A file exactly as the reference converter writes one: 5 captions, no t2i attributes."""
    with h5py.File(path, "w") as f:
        for split in ("train", "valid", "test"):
            f.create_group(split)
        for split, name, jpeg, class_name, captions, embeddings in rows:
            group = f[split].create_group(name)
            group.create_dataset("name", data=name)
            group.create_dataset("img", data=np.void(jpeg))
            group.create_dataset("embeddings", data=embeddings)
            group.create_dataset("class", data=class_name)
            group.create_dataset("txt", data=np.array(captions, dtype=object), dtype=h5py.special_dtype(vlen=str))


def reference_rows(count=6):
    rng = np.random.default_rng(0)
    jpegs = sorted((OXFORD_MINI / "jpg").glob("*.jpg"))[:count]
    return [
        (
            "train" if i < count - 2 else "valid",
            p.stem,
            p.read_bytes(),
            f"class_{i % 3:05d}",
            [f"caption {j} of {p.stem}\n" for j in range(5)],  # readlines() keeps the newline
            rng.standard_normal((5, 1024)).astype(np.float64),
        )
        for i, p in enumerate(jpegs)
    ]


@pytest.mark.slow
def test_round_trip_keeps_every_caption_image_and_split(flowers_h5, minilm):
    with CaptionImageFile(flowers_h5) as data:
        assert data.schema_version == SCHEMA_VERSION
        assert data.encoder == minilm.identity
        assert data.image_size == 64
        assert data.splits == ["train", "valid", "test"]
        assert data.classes == ["class_00001", "class_00002", "class_00003", "class_00006", "class_00063"]
        assert {s: len(data.names(s)) for s in data.splits} == {"train": 9, "valid": 3, "test": 3}
        for split, listing in (("train", "trainclasses.txt"), ("valid", "valclasses.txt"), ("test", "testclasses.txt")):
            expected_classes = set((OXFORD_MINI / listing).read_text().split())
            assert {data.class_name(split, n) for n in data.names(split)} == expected_classes
        for caption_file in (OXFORD_MINI / "text_c10").glob("*/*.txt"):
            split = next(s for s in data.splits if caption_file.stem in data.names(s))
            example = data.example(split, caption_file.stem)
            assert example.captions == caption_file.read_text().splitlines()  # all 10, in order
            assert example.jpeg == (OXFORD_MINI / "jpg" / f"{caption_file.stem}.jpg").read_bytes()
            assert example.embeddings.shape == (10, 384)
            np.testing.assert_allclose(example.embeddings, minilm.encode(example.captions).numpy(), atol=2e-3)


def test_t2i_files_stay_readable_the_reference_way(flowers_h5):
    """What the reference Dataset does with a file must still work on ours."""
    with h5py.File(flowers_h5, "r") as f:
        example = f["train"][list(f["train"].keys())[0]]
        image = bytes(np.array(example["img"]))
        assert image[:2] == b"\xff\xd8"  # JPEG magic
        assert np.array(example["embeddings"], dtype=float).shape[-1] == 384
        assert np.array(example["txt"]).astype(str).shape == (10,)
        assert np.array(example["class"]).astype(str) == "class_00002"


def test_reads_the_reference_layout_unchanged(tmp_path):
    path = tmp_path / "reference.h5"
    rows = reference_rows()
    write_reference_file(path, rows)
    with CaptionImageFile(path) as data:
        assert data.schema_version is None and data.encoder is None
        assert data.splits == ["train", "valid", "test"]
        assert data.classes == ["class_00000", "class_00001", "class_00002"]
        split, name, jpeg, class_name, captions, embeddings = rows[0]
        example = data.example(split, name)
        assert example.jpeg == jpeg and example.class_name == class_name
        assert example.captions == [c.strip() for c in captions]
        np.testing.assert_allclose(example.embeddings, embeddings.astype(np.float32))
        with pytest.raises(T2IError, match="reference layout"):
            data.check_encoder(EncoderIdentity("all-MiniLM-L6-v2", 384, "x"))
    info = describe(path)
    assert info["layout"] == "reference" and info["embedding_dim"] == 1024 and info["encoder"] is None


def test_reembed_upgrades_a_reference_file_in_place(tmp_path, minilm):
    path = tmp_path / "reference.h5"
    rows = reference_rows()
    write_reference_file(path, rows)
    report = reembed(path, encoder=minilm, progress=False)
    assert report.counts == {"train": 4, "valid": 2, "test": 0}
    with CaptionImageFile(path) as data:
        assert data.encoder == minilm.identity
        example = data.example("train", rows[0][1])
        assert example.embeddings.shape == (5, 384)
        assert example.jpeg == rows[0][2]
        data.check_encoder(minilm.identity)
    assert not list(tmp_path.glob(".*partial*"))


def test_reembed_with_another_encoder_changes_identity_and_dim(tmp_path, flowers_h5, tiny_bert_dir):
    path = tmp_path / "copy.h5"
    path.write_bytes(flowers_h5.read_bytes())
    tiny = load_text_encoder(f"hf:{tiny_bert_dir}", device="cpu")
    reembed(path, encoder=tiny, embedding_dtype="float32", progress=False)
    with CaptionImageFile(path) as data, CaptionImageFile(flowers_h5) as before:
        assert data.encoder == tiny.identity and data.embedding_dim == 32
        assert data.stored_embedding_dtype == np.float32 and before.stored_embedding_dtype == np.float16
        assert data.classes == before.classes and data.image_size == before.image_size
        for split in before.splits:
            assert data.names(split) == before.names(split)
        with pytest.raises(T2IError, match="encoder mismatch"):
            data.check_encoder(before.encoder)


def test_interrupted_write_leaves_no_file_and_keeps_the_old_one(tmp_path, minilm):
    class Boom(Exception):
        pass

    target = tmp_path / "data.h5"
    with pytest.raises(Boom):
        with CaptionImageWriter(target, encoder=minilm.identity) as writer:
            writer.add("train", Example("a", b"\xff\xd8", ["c"], embeddings=np.zeros((1, 384))))
            raise Boom
    assert not target.exists() and list(tmp_path.iterdir()) == []

    target.write_bytes(b"the good old file")
    with pytest.raises(KeyboardInterrupt):
        with CaptionImageWriter(target, encoder=minilm.identity, overwrite=True) as writer:
            writer.add("train", Example("a", b"\xff\xd8", ["c"], embeddings=np.zeros((1, 384))))
            raise KeyboardInterrupt
    assert target.read_bytes() == b"the good old file"
    assert list(tmp_path.iterdir()) == [target]


def test_interrupted_conversion_keeps_existing_output(tmp_path, minilm, monkeypatch):
    target = tmp_path / "out.h5"
    target.write_bytes(b"precious")
    calls = []

    def failing_encode(captions, batch_size=128):
        calls.append(1)
        raise RuntimeError("encoder died half-way")

    monkeypatch.setattr(minilm, "encode", failing_encode)
    with pytest.raises(RuntimeError):
        convert(OXFORD_MINI, target, encoder=minilm, overwrite=True, progress=False)
    assert calls and target.read_bytes() == b"precious"
    assert list(tmp_path.iterdir()) == [target]


def test_existing_output_is_not_replaced_without_overwrite(tmp_path, minilm):
    target = tmp_path / "out.h5"
    target.write_bytes(b"precious")
    with pytest.raises(T2IError, match="already exists"):
        convert(OXFORD_MINI, target, encoder=minilm, progress=False)
    assert target.read_bytes() == b"precious"


def test_other_layouts_and_non_hdf5_files_are_refused(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("images", data=np.zeros((2, 3)))
    with pytest.raises(T2IError, match="no train/valid/test groups"):
        CaptionImageFile(other)
    half = tmp_path / "half.h5"
    with h5py.File(half, "w") as f:
        f.create_group("train").create_group("x").create_dataset("img", data=np.void(b"1"))
    with pytest.raises(T2IError, match="lacks embeddings, txt"):
        CaptionImageFile(half)
    text = tmp_path / "notes.h5"
    text.write_text("hello")
    with pytest.raises(T2IError, match="not a readable HDF5 file"):
        CaptionImageFile(text)
    with pytest.raises(T2IError, match="does not exist"):
        CaptionImageFile(tmp_path / "missing.h5")


def test_newer_schema_is_refused(tmp_path, flowers_h5):
    path = tmp_path / "future.h5"
    path.write_bytes(flowers_h5.read_bytes())
    with h5py.File(path, "r+") as f:
        f.attrs["t2i_schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(T2IError, match="upgrade t2i"):
        CaptionImageFile(path)


def test_describe_reports_what_info_shows(flowers_h5):
    info = describe(flowers_h5, samples=1)
    assert info["splits"]["train"] == {"images": 9, "captions": 90, "classes": 3}
    assert info["encoder"]["name"] == "all-MiniLM-L6-v2" and info["encoder"]["dim"] == 384
    assert info["image_size"] == 64 and info["classes"] == 5
    assert [s["split"] for s in info["samples"]] == ["train", "valid", "test"]


def test_a_damaged_file_is_one_line_for_info_and_train(tmp_path, flowers_h5):
    """Bytes overwritten across the file (a bad disk, a cut copy): h5py fails deep inside; the
    user gets one line naming the file, never a traceback."""
    from test_cli import assert_one_line_error, run

    data = bytearray(flowers_h5.read_bytes())
    for offset in range(4096, len(data), 4096):
        data[offset : offset + 8] = b"\xff" * 8
    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(bytes(data))
    assert_one_line_error(run("data", "info", damaged), f"{damaged} is damaged: cannot read")
    assert_one_line_error(run("train", "--data", damaged, "--out", tmp_path / "r", "--epochs", 1, "-q"), str(damaged))


def test_packed_train_split_rebuilds_the_same_train_split(flowers_h5, tmp_path):
    """benchmarks/pack_train_split.py carries the train split to the device machine: what it
    rebuilds there is the same split (names, JPEG bytes, captions, classes, embeddings, class table)."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "pack_train_split.py"
    packed, rebuilt = tmp_path / "train.npz", tmp_path / "rebuilt.h5"
    for action, source, target in (("pack", flowers_h5, packed), ("unpack", packed, rebuilt)):
        subprocess.run([sys.executable, str(script), action, str(source), str(target)], check=True, capture_output=True)
    with CaptionImageFile(flowers_h5) as original, CaptionImageFile(rebuilt) as copy:
        assert copy.names("train") == original.names("train")
        assert copy.names("valid") == [] and copy.names("test") == []
        for name in original.names("train"):
            mine, theirs = copy.example("train", name), original.example("train", name)
            assert (mine.jpeg, mine.captions, mine.class_name) == (theirs.jpeg, theirs.captions, theirs.class_name)
            assert np.array_equal(mine.embeddings, theirs.embeddings)
        assert (copy.embedding_dim, copy.encoder, copy.image_size, copy.classes) == \
            (original.embedding_dim, original.encoder, original.image_size, original.classes)
