"""Bad input to the converters: one clear error where the run cannot go on, else skip and count."""

import io
import shutil

import pytest
from PIL import Image

from t2i_cli.data.convert import convert, skip_summary
from t2i_cli.data.h5 import CaptionImageFile
from t2i_cli.errors import T2IError


def test_missing_release_parts_are_named(oxford_copy, tmp_path, minilm):
    out = tmp_path / "out.h5"
    shutil.rmtree(oxford_copy / "jpg")
    with pytest.raises(T2IError, match="no jpg/ or images/ folder"):
        convert(oxford_copy, out, encoder=minilm, layout="reed", progress=False)
    (oxford_copy / "images").mkdir()
    (oxford_copy / "testclasses.txt").unlink()
    with pytest.raises(T2IError, match="no testclasses.txt"):
        convert(oxford_copy, out, encoder=minilm, layout="reed", progress=False)
    shutil.rmtree(oxford_copy / "text_c10")
    with pytest.raises(T2IError, match="no text_c10/ folder"):
        convert(oxford_copy, out, encoder=minilm, layout="reed", progress=False)
    with pytest.raises(T2IError, match="does not exist"):
        convert(tmp_path / "nowhere", out, encoder=minilm, progress=False)
    assert not out.exists()


def test_class_lists_must_agree_with_the_folders(oxford_copy, tmp_path, minilm):
    (oxford_copy / "testclasses.txt").write_text("class_00063\nclass_99999\n")
    with pytest.raises(T2IError, match="class_99999 of the test list has no folder"):
        convert(oxford_copy, tmp_path / "o.h5", encoder=minilm, progress=False)
    (oxford_copy / "testclasses.txt").write_text("class_00063\nclass_00002\n")
    with pytest.raises(T2IError, match="class_00002 is listed in both the train and test"):
        convert(oxford_copy, tmp_path / "o.h5", encoder=minilm, progress=False)


def test_bad_items_are_skipped_counted_and_reported(oxford_copy, tmp_path, minilm):
    (oxford_copy / "jpg" / "image_05087.jpg").write_bytes(b"not a jpeg at all")
    truncated = oxford_copy / "jpg" / "image_05088.jpg"
    truncated.write_bytes(truncated.read_bytes()[:300])
    (oxford_copy / "text_c10" / "class_00003" / "image_06612.txt").write_text("\n  \n")
    (oxford_copy / "text_c10" / "class_00006" / "image_07162.txt").write_bytes("p\xe9tales roses\n".encode("latin-1"))
    (oxford_copy / "jpg" / "image_07163.jpg").unlink()

    report = convert(oxford_copy, tmp_path / "out.h5", encoder=minilm, progress=False)
    assert report.skipped == {"unreadable or missing image": 3, "unusable caption file": 2}
    summary = skip_summary(report)
    assert "image_05087.jpg" in summary and "image_06612.txt: no captions" in summary
    assert "not UTF-8" in summary and "image_07163.txt: no image file" in summary
    assert report.counts == {"train": 4, "valid": 3, "test": 3}
    with CaptionImageFile(tmp_path / "out.h5") as data:
        assert len(data.names("train")) == 4


def test_strict_stops_at_the_first_bad_item(oxford_copy, tmp_path, minilm):
    (oxford_copy / "jpg" / "image_05087.jpg").write_bytes(b"garbage")
    with pytest.raises(T2IError, match="image_05087.jpg"):
        convert(oxford_copy, tmp_path / "out.h5", encoder=minilm, strict=True, progress=False)
    assert not (tmp_path / "out.h5").exists()


def test_nothing_usable_is_an_error_not_an_empty_file(oxford_copy, tmp_path, minilm):
    for caption_file in (oxford_copy / "text_c10").glob("*/*.txt"):
        caption_file.write_text("")
    with pytest.raises(T2IError, match="no usable examples.*15 unusable caption file"):
        convert(oxford_copy, tmp_path / "out.h5", encoder=minilm, progress=False)
    assert list(tmp_path.glob("*.h5")) == [] and not list(tmp_path.glob(".*partial*"))


def test_trainval_only_release_holds_out_whole_classes(oxford_copy, tmp_path, minilm):
    (oxford_copy / "trainclasses.txt").unlink()
    (oxford_copy / "valclasses.txt").unlink()
    report = convert(oxford_copy, tmp_path / "out.h5", encoder=minilm, valid_fraction=0.25, progress=False)
    assert report.counts == {"train": 9, "valid": 3, "test": 3}
    with CaptionImageFile(tmp_path / "out.h5") as data:
        train = {data.class_name("train", n) for n in data.names("train")}
        valid = {data.class_name("valid", n) for n in data.names("valid")}
        assert len(valid) == 1 and not train & valid


def _save(image: Image.Image, path, fmt):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    path.write_bytes(buffer.getvalue())


def test_plain_folder_with_class_table_grayscale_and_rgba(tmp_path, minilm):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    _save(Image.new("RGBA", (40, 30), (255, 0, 0, 0)), folder / "clear.png", "PNG")  # fully transparent
    _save(Image.new("L", (20, 20), 90), folder / "sub" / "gray.jpg", "JPEG")
    _save(Image.new("RGB", (64, 48), (0, 0, 255)), folder / "blue.jpg", "JPEG")
    _save(Image.new("RGB", (8, 8)), folder / "unlisted.jpg", "JPEG")
    for stem, text in (("clear", "a clear one"), ("sub/gray", "a gray square\nflat gray"), ("blue", "blue"), ("unlisted", "x")):
        (folder / f"{stem}.txt").write_text(text)
    table = tmp_path / "classes.tsv"
    table.write_text("image\tclass\tsplit\nclear.png\tred\ttrain\nsub/gray.jpg\tgray\ttrain\nblue\tblue\tval\n")

    report = convert(folder, tmp_path / "out.h5", encoder=minilm, class_table=table, image_size=32, progress=False)
    assert report.layout == "folder" and report.counts == {"train": 2, "valid": 1, "test": 0}
    with CaptionImageFile(tmp_path / "out.h5") as data:
        assert data.classes == ["blue", "gray", "red"] and data.image_size == 32
        assert data.captions("train", "sub__gray") == ["a gray square", "flat gray"]
        with Image.open(io.BytesIO(data.jpeg("train", "clear"))) as clear:
            assert clear.mode == "RGB" and clear.size == (32, 32)
            assert min(clear.getpixel((16, 16))) > 240  # transparency became white, not black


def test_plain_folder_without_table_splits_by_seed(tmp_path, minilm):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(20):
        _save(Image.new("RGB", (16, 16), (i * 10, 0, 0)), folder / f"img{i:02d}.jpg", "JPEG")
        (folder / f"img{i:02d}.txt").write_text(f"shade {i}")
    first = convert(folder, tmp_path / "a.h5", encoder=minilm, valid_fraction=0.2, test_fraction=0.2, seed=3, progress=False)
    second = convert(folder, tmp_path / "b.h5", encoder=minilm, valid_fraction=0.2, test_fraction=0.2, seed=3, progress=False)
    assert first.counts == second.counts and sum(first.counts.values()) == 20
    assert min(first.counts.values()) > 0
    with CaptionImageFile(tmp_path / "a.h5") as a, CaptionImageFile(tmp_path / "b.h5") as b:
        assert all(a.names(s) == b.names(s) for s in a.splits)
        assert a.classes == [] and a.image_size == 16


def test_bad_class_table_rows_are_reported_with_their_number(tmp_path, minilm):
    folder = tmp_path / "photos"
    folder.mkdir()
    _save(Image.new("RGB", (16, 16)), folder / "a.jpg", "JPEG")
    (folder / "a.txt").write_text("a")
    table = tmp_path / "t.csv"
    table.write_text("a.jpg,cats\nb.jpg\n")
    with pytest.raises(T2IError, match="row 2"):
        convert(folder, tmp_path / "out.h5", encoder=minilm, class_table=table, progress=False)
    table.write_text("a.jpg,cats,holdout\n")
    with pytest.raises(T2IError, match="split must be train, valid or test"):
        convert(folder, tmp_path / "out.h5", encoder=minilm, class_table=table, progress=False)
