"""The COCO captions layout of `t2i data convert`, on a fixture built from the repository's images."""

import json
import re
import shutil

import pytest
from typer.testing import CliRunner

from conftest import OXFORD_MINI
from t2i_cli.checkpoint import read_checkpoint
from t2i_cli.cli import app
from t2i_cli.data.convert import convert
from t2i_cli.data.h5 import CaptionImageFile
from t2i_cli.data.sources import coco_split_named_by, open_coco
from t2i_cli.errors import T2IError
from test_cli import assert_one_line_error

runner = CliRunner()
JPEGS = sorted((OXFORD_MINI / "jpg").glob("*.jpg"))  # 15 photos


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def captions_file(images: list[tuple[int, str]], annotations: list[tuple[int, int, str]]) -> dict:
    """A COCO captions document: (id, file_name) images, (id, image_id, caption) annotations."""
    return {
        "info": {"description": "t2i test fixture"},
        "images": [{"id": i, "file_name": f, "width": 64, "height": 64} for i, f in images],
        "annotations": [{"id": a, "image_id": i, "caption": c} for a, i, c in annotations],
    }


def write_json(path, document) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))


@pytest.fixture()
def coco_2014(tmp_path):
    """MSCOCO 2014's shape: annotations/captions_{train,val}2014.json beside train2014/, val2014/.

    Train lists 10 images with two captions each, plus one image without captions, one caption of
    an image id it does not list and one image whose file is missing; val lists 5 images.
    """
    root = tmp_path / "coco"
    for folder, jpegs in (("train2014", JPEGS[:10]), ("val2014", JPEGS[10:])):
        (root / folder).mkdir(parents=True)
        for jpeg in jpegs:
            shutil.copy(jpeg, root / folder / f"COCO_{folder}_{jpeg.name}")
    train_images = [(100 + n, f"COCO_train2014_{j.name}") for n, j in enumerate(JPEGS[:10])]
    train_annotations = [(1000 + 2 * n, i, f"a flower with {n} petals") for n, (i, _) in enumerate(train_images)]
    train_annotations += [(1001 + 2 * n, i, f"  photo   number {n}\n") for n, (i, _) in enumerate(train_images)]
    train_annotations.append((999, 555, "a caption whose image is not listed"))
    train_images += [(200, "COCO_train2014_uncaptioned.jpg"), (201, "COCO_train2014_missing.jpg")]
    train_annotations.append((998, 201, "the file of this image is missing"))
    val_images = [(300 + n, f"COCO_val2014_{j.name}") for n, j in enumerate(JPEGS[10:])]
    val_annotations = [(2000 + n, i, f"a valid flower {n}") for n, (i, _) in enumerate(val_images)]
    write_json(root / "annotations" / "captions_train2014.json", captions_file(train_images, train_annotations))
    write_json(root / "annotations" / "captions_val2014.json", captions_file(val_images, val_annotations))
    return root


def test_split_names_of_captions_files(tmp_path):
    names = {
        "captions_train2014.json": "train", "captions_val2017.json": "valid", "captions-test.json": "test",
        "captions_validation.json": "valid", "captions.json": None, "captions_trainval.json": None,
    }
    assert {name: coco_split_named_by(tmp_path / name) for name in names} == names


def test_coco_2014_layout_converts_with_one_file_per_split(coco_2014, tmp_path, minilm):
    report = convert(coco_2014, tmp_path / "coco.h5", encoder=minilm, progress=False)  # layout auto-detected
    assert report.layout == "coco"
    assert report.counts == {"train": 10, "valid": 5, "test": 0}
    assert report.skipped == {"caption without image": 1, "image without captions": 1, "unreadable or missing image": 1}
    assert any("image id 555" in d for d in report.skipped_examples["caption without image"])
    assert report.skipped_examples["image without captions"] == ["COCO_train2014_uncaptioned.jpg"]
    with CaptionImageFile(tmp_path / "coco.h5") as data:
        assert data.classes == []
        name = f"COCO_train2014_{JPEGS[3].stem}"
        assert data.captions("train", name) == ["a flower with 3 petals", "photo number 3"]  # file order, spaces tidied
        assert data.embeddings("train", name).shape == (2, 384)
        assert data.class_name("train", name) is None
        assert data.jpeg("valid", f"COCO_val2014_{JPEGS[10].stem}") == JPEGS[10].read_bytes()


def test_one_captions_file_splits_by_seed(tmp_path, minilm):
    root = tmp_path / "flickr"
    (root / "images" / "sub").mkdir(parents=True)
    images = []
    for n, jpeg in enumerate(JPEGS):
        shutil.copy(jpeg, root / "images" / "sub" / jpeg.name)
        images.append((f"img-{n}", f"sub/{jpeg.name}"))  # string ids and a file name with a folder
    write_json(root / "captions.json", captions_file(images, [(n, i, f"caption {n}") for n, (i, _) in enumerate(images)]))
    first = open_coco(root, valid_fraction=0.2, test_fraction=0.2, seed=5)
    again = open_coco(root, valid_fraction=0.2, test_fraction=0.2, seed=5)
    assert first == again and len(first) == 15
    assert {item.split for item in first} == {"train", "valid", "test"}
    assert first[0].name == f"sub__{JPEGS[0].stem}" and first[0].image == root / "images" / "sub" / JPEGS[0].name
    report = convert(root, tmp_path / "one.h5", encoder=minilm, layout="coco", valid_fraction=0.2, test_fraction=0.2, seed=5, progress=False)
    assert sum(report.counts.values()) == 15 and not report.skipped


@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda doc: doc["images"].append(dict(doc["images"][0])), "image id 300 is listed twice"),
        (lambda doc: doc["annotations"].append(dict(doc["annotations"][0])), "annotation id 2000 is used twice"),
        (lambda doc: doc.pop("annotations"), "not a COCO captions file"),
        (lambda doc: doc["images"][2].pop("file_name"), "images[2]: every image needs an id and a file_name"),
        (lambda doc: doc["annotations"][1].update(caption=7), "annotations[1]: every annotation needs an image_id and a caption"),
        (lambda doc: doc["images"][0].update(id=[1]), "id must be an integer or a string"),
        (lambda doc: doc["images"][0].update(file_name="/data/x.jpg"), "must be a path inside the image folder"),
        (lambda doc: doc["images"][0].update(file_name="../x.jpg"), "must be a path inside the image folder"),
        (lambda doc: doc["annotations"][0].update(id=1000), "annotation id 1000 is used twice (also in captions_train2014.json)"),
    ],
)
def test_bad_coco_files_are_refused(coco_2014, tmp_path, minilm, change, fragment):
    path = coco_2014 / "annotations" / "captions_val2014.json"
    document = json.loads(path.read_text())
    change(document)
    write_json(path, document)
    with pytest.raises(T2IError, match=re.escape(fragment)):
        convert(coco_2014, tmp_path / "out.h5", encoder=minilm, progress=False)
    assert not (tmp_path / "out.h5").exists()


def test_one_file_name_may_appear_once_in_each_split(tmp_path, minilm):
    root = tmp_path / "custom"
    for split, jpeg in (("train", JPEGS[0]), ("val", JPEGS[1])):
        (root / split).mkdir(parents=True)
        shutil.copy(jpeg, root / split / "0001.jpg")
        write_json(root / f"captions_{split}.json", captions_file([(split, "0001.jpg")], [(f"{split}-1", split, f"a {split} flower")]))
    report = convert(root, tmp_path / "out.h5", encoder=minilm, progress=False)
    assert report.counts == {"train": 1, "valid": 1, "test": 0}
    with CaptionImageFile(tmp_path / "out.h5") as data:
        assert data.jpeg("valid", "0001") == JPEGS[1].read_bytes()


def test_bad_coco_sources_are_one_line_through_the_cli(coco_2014, tmp_path):
    out = tmp_path / "out.h5"
    val = coco_2014 / "annotations" / "captions_val2014.json"
    train = coco_2014 / "annotations" / "captions_train2014.json"
    document = json.loads(train.read_text())
    document["images"].append({"id": 300, "file_name": "COCO_train2014_again.jpg"})  # an id val2014 uses too
    write_json(train, document)
    assert_one_line_error(run("data", "convert", coco_2014, out, "-q"), "image id 300 is listed twice (also in captions_train2014.json)")
    val.write_text('{"images": [], "annotations": [}')
    assert_one_line_error(run("data", "convert", coco_2014, out, "-q"), "captions_val2014.json is not valid JSON")
    write_json(val, captions_file([], []))
    val.rename(coco_2014 / "annotations" / "captions_extra.json")
    assert_one_line_error(run("data", "convert", coco_2014, out, "-q"), "captions_extra.json names no split")
    shutil.rmtree(coco_2014 / "annotations")
    assert_one_line_error(run("data", "convert", coco_2014, out, "--layout", "coco", "-q"), "holds no COCO captions file")
    assert not out.exists()


def test_strict_stops_at_a_caption_without_image(coco_2014, tmp_path, minilm):
    with pytest.raises(T2IError, match="strict mode stops here"):
        convert(coco_2014, tmp_path / "out.h5", encoder=minilm, strict=True, progress=False)


@pytest.mark.slow
def test_a_converted_coco_file_trains_one_tiny_epoch(coco_2014, tmp_path):
    data, out = tmp_path / "coco.h5", tmp_path / "run"
    converted = run("data", "convert", coco_2014, data, "--image-size", 64, "-q")
    assert converted.exit_code == 0 and "skipped 3 items" in converted.output, converted.output
    result = run("train", "--data", data, "--out", out, "--ngf", 8, "--ndf", 8, "--batch-size", 4, "--epochs", 1, "-q", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert read_checkpoint(out).epoch == 1
