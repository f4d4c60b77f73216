"""Readers for the folder layouts ``t2i data convert`` understands.

Each ``open_<layout>()`` returns a list of :class:`SourceItem` (which image, which captions,
which class, which split); :func:`t2i_cli.data.convert.convert` reads, embeds and writes them.
Problems that stop a whole conversion (a missing folder, a class listed twice, a duplicate id)
raise :class:`T2IError`; problems with single items are left to the converter, which skips and
counts them (a reader that drops items itself reports them through ``on_skip``).
"""

from __future__ import annotations

import csv
import json
import logging
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from t2i_cli.data.images import IMAGE_SUFFIXES
from t2i_cli.errors import T2IError
from t2i_cli.text.checks import caption_problem, clean_caption

log = logging.getLogger(__name__)

LAYOUTS = ("auto", "reed", "folder", "coco")

# reason, detail: an item a reader left out, for the converter's report.
SkipReport = Callable[[str, str], None]


@dataclass(frozen=True)
class SourceItem:
    split: str
    name: str
    image: Path | None  # None: no image file was found for these captions
    captions: Path | tuple[str, ...]  # a caption file, one caption a line, or the captions themselves
    class_name: str | None


class CaptionFileError(Exception):
    """A caption file that cannot be used; the converter skips and counts it."""


def check_source_folder(root: Path) -> None:
    """A source must be a folder: a missing path and a file are each said for what they are."""
    if not root.exists():
        raise T2IError(f"source folder {root} does not exist")
    if not root.is_dir():
        raise T2IError(f"source {root} is a file; give the folder that holds the images and captions")


def read_captions(path: Path) -> list[str]:
    """One caption a line, blank lines dropped; raises :class:`CaptionFileError` when unusable."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CaptionFileError(f"{path.name}: not UTF-8 text (byte {exc.start})") from None
    except FileNotFoundError:
        raise CaptionFileError(f"{path.name}: no such caption file") from None
    except OSError as exc:
        raise CaptionFileError(f"{path.name}: {exc.strerror}") from None
    lines = [line for line in text.splitlines() if line.strip()]
    captions = [clean_caption(line) for line in lines if caption_problem(line) is None]
    if not captions:
        raise CaptionFileError(f"{path.name}: no captions ({'empty file' if not lines else 'no line holds a word'})")
    return captions


def detect_layout(root: Path) -> str:
    if (root / "text_c10").is_dir():
        return "reed"
    return "coco" if coco_caption_files(root) else "folder"


def seeded_split(rng: random.Random, *, valid_fraction: float, test_fraction: float) -> str:
    """One image's split, drawn from ``rng``: test, valid or train by the two fractions."""
    draw = rng.random()
    return "test" if draw < test_fraction else "valid" if draw < test_fraction + valid_fraction else "train"


def check_fractions(valid_fraction: float, test_fraction: float) -> None:
    if valid_fraction < 0 or test_fraction < 0 or valid_fraction + test_fraction >= 1:
        raise T2IError("valid and test fractions must be >= 0 and leave some images for train")


def _read_class_list(path: Path) -> list[str]:
    try:
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise T2IError(f"cannot read {path}: {exc}") from None


def _class_splits(root: Path, text_dir: Path, *, valid_fraction: float, seed: int) -> dict[str, str]:
    """class folder name -> split, from the release's class lists."""
    files = {name: root / f"{name}classes.txt" for name in ("train", "val", "trainval", "test")}
    if not files["test"].is_file():
        raise T2IError(f"{root} has no testclasses.txt (the Reed et al. layout names its test classes there)")
    test = _read_class_list(files["test"])
    if files["train"].is_file() and files["val"].is_file():
        train, valid = _read_class_list(files["train"]), _read_class_list(files["val"])
    elif files["trainval"].is_file():
        trainval = _read_class_list(files["trainval"])
        # No official train/valid division: hold out whole classes, seeded, so valid stays class-disjoint.
        shuffled = sorted(trainval)
        random.Random(seed).shuffle(shuffled)
        n_valid = max(1, round(len(shuffled) * valid_fraction)) if len(shuffled) > 1 else 0
        valid_set = set(shuffled[:n_valid])
        train = [c for c in trainval if c not in valid_set]
        valid = [c for c in trainval if c in valid_set]
        log.info("no trainclasses.txt/valclasses.txt: held out %d of %d classes for valid", n_valid, len(trainval))
    else:
        raise T2IError(
            f"{root} has neither trainvalclasses.txt nor trainclasses.txt + valclasses.txt"
        )
    split_of: dict[str, str] = {}
    for split, classes in (("train", train), ("valid", valid), ("test", test)):
        for cls in classes:
            if cls in split_of and split_of[cls] != split:
                raise T2IError(f"class {cls} is listed in both the {split_of[cls]} and {split} class lists")
            if not (text_dir / cls).is_dir():
                raise T2IError(f"class {cls} of the {split} list has no folder {text_dir / cls}")
            split_of[cls] = split
    return split_of


def open_reed_release(root: Path, *, valid_fraction: float = 0.15, seed: int = 0) -> list[SourceItem]:
    """The Reed et al. (2016) release layout used for Oxford-102 flowers and CUB birds::

        jpg/ or images/           the photos (flat, or one subfolder per class as in CUB)
        text_c10/<class>/<image>.txt    captions, one a line
        trainvalclasses.txt, testclasses.txt (+ trainclasses.txt, valclasses.txt)
    """
    root = Path(root)
    check_source_folder(root)
    image_dir = next((root / d for d in ("jpg", "images") if (root / d).is_dir()), None)
    if image_dir is None:
        raise T2IError(f"{root} has no jpg/ or images/ folder (expected the Reed et al. layout)")
    text_dir = root / "text_c10"
    if not text_dir.is_dir():
        raise T2IError(f"{root} has no text_c10/ folder of captions (expected the Reed et al. layout)")
    split_of = _class_splits(root, text_dir, valid_fraction=valid_fraction, seed=seed)

    unlisted = sorted(p.name for p in text_dir.iterdir() if p.is_dir() and p.name not in split_of)
    if unlisted:
        log.warning("%d caption folders are in no class list and were left out: %s", len(unlisted), ", ".join(unlisted[:5]))
    items = []
    for cls in sorted(split_of):
        for caption_file in sorted((text_dir / cls).glob("*.txt")):
            stem = caption_file.stem
            candidates = [image_dir / f"{stem}{s}" for s in (".jpg", ".jpeg", ".png")]
            candidates += [image_dir / cls / f"{stem}{s}" for s in (".jpg", ".jpeg", ".png")]
            image = next((c for c in candidates if c.is_file()), None)
            items.append(SourceItem(split_of[cls], stem, image, caption_file, cls))
    if not items:
        raise T2IError(f"{text_dir} holds no caption files for the listed classes")
    return items


def _read_class_table(path: Path) -> dict[str, tuple[str, str | None]]:
    """image (file name, relative path or stem) -> (class, split or None).

    A CSV or TSV with columns image, class and optionally split; a header row is optional.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise T2IError(f"cannot read class table {path}: {exc}") from None
    delimiter = "\t" if "\t" in text.split("\n", 1)[0] else ","
    rows = [r for r in csv.reader(text.splitlines(), delimiter=delimiter) if any(f.strip() for f in r)]
    if rows and rows[0] and rows[0][0].strip().lower() in {"image", "file", "filename", "path"}:
        rows = rows[1:]
    table = {}
    for number, row in enumerate(rows, start=1):
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise T2IError(f"class table {path}, row {number}: expected image,class[,split], got {row!r}")
        split = row[2].strip().lower() if len(row) > 2 and row[2].strip() else None
        if split == "val":
            split = "valid"
        if split is not None and split not in ("train", "valid", "test"):
            raise T2IError(f"class table {path}, row {number}: split must be train, valid or test, got {split!r}")
        table[row[0].strip()] = (row[1].strip(), split)
    return table


def open_image_folder(
    root: Path,
    *,
    class_table: Path | None = None,
    class_from_folder: bool = False,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> list[SourceItem]:
    """A folder (searched recursively) of images, each with a same-name ``.txt`` of captions.

    Classes come from ``class_table`` or, with ``class_from_folder``, from each image's parent
    folder; otherwise there are none. Splits come from the table's split column, else a seeded
    random division of the images by ``valid_fraction`` / ``test_fraction``.
    """
    root = Path(root)
    check_source_folder(root)
    check_fractions(valid_fraction, test_fraction)
    table = _read_class_table(Path(class_table)) if class_table is not None else None
    images = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not images:
        raise T2IError(f"{root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")

    rng = random.Random(seed)
    items = []
    for image in images:
        relative = image.relative_to(root)
        name = "__".join(relative.with_suffix("").parts)
        class_name, split = None, None
        if table is not None:
            key = next((k for k in (relative.as_posix(), image.name, image.stem) if k in table), None)
            if key is None:
                log.warning("%s is not in the class table; left out", relative)
                continue
            class_name, split = table[key]
        elif class_from_folder:
            class_name = relative.parent.as_posix() if relative.parent != Path(".") else None
        if split is None:
            split = seeded_split(rng, valid_fraction=valid_fraction, test_fraction=test_fraction)
        items.append(SourceItem(split, name, image, image.with_suffix(".txt"), class_name))
    if not items:
        raise T2IError(f"no image in {root} is listed in the class table {class_table}")
    return items


# --- COCO captions ------------------------------------------------------------------------------

COCO_SPLIT_WORDS = {"train": "train", "val": "valid", "valid": "valid", "validation": "valid", "test": "test"}


def coco_caption_files(root: Path) -> list[Path]:
    """A source folder's COCO captions files: ``captions*.json`` in it or in its ``annotations/``
    folder (MSCOCO ships ``annotations/captions_train2014.json`` beside ``train2014/``)."""
    found: list[Path] = []
    for folder in (root, root / "annotations"):
        if folder.is_dir():
            found += sorted(p for p in folder.glob("captions*.json") if p.is_file())
    return found


def coco_split_named_by(path: Path) -> str | None:
    """The split a captions file's name gives (``captions_val2014.json`` -> valid), or None."""
    words = {w for w in re.split(r"[^a-z]+", path.stem.lower()) if w}
    named = {COCO_SPLIT_WORDS[w] for w in words if w in COCO_SPLIT_WORDS}
    return named.pop() if len(named) == 1 else None


def _coco_image_dirs(root: Path, captions_file: Path) -> list[Path]:
    """Where a captions file's ``file_name``s are looked up: the folder its name points at
    (``captions_train2014.json`` -> ``train2014/``), then ``images/<that>``, ``images/``, the root."""
    tag = re.sub(r"^captions[_\-.]*", "", captions_file.stem, flags=re.IGNORECASE)
    candidates = [root / tag, root / "images" / tag] if tag else []
    candidates += [root / "images", root]
    return [folder for folder in dict.fromkeys(candidates) if folder.is_dir()]


def _read_coco_file(path: Path) -> tuple[list, list]:
    """The ``images`` and ``annotations`` lists of a COCO captions file, or one clear error."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise T2IError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:
        raise T2IError(f"{path} nests its JSON too deeply to be a COCO captions file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise T2IError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(data.get("annotations"), list):
        raise T2IError(f"{path} is not a COCO captions file: it needs an 'images' list and an 'annotations' list")
    return data["images"], data["annotations"]


def _coco_id(value, where: str):
    """An image or annotation id: an integer or a string (JSON gives no other kind of key)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise T2IError(f"{where}: id must be an integer or a string, got {value!r}")
    return value


def open_coco(
    root: Path,
    *,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    on_skip: SkipReport | None = None,
) -> list[SourceItem]:
    """The COCO captions layout: ``captions*.json`` files (in the folder or its ``annotations/``)
    whose ``images`` (``id``, ``file_name``) and ``annotations`` (``image_id``, ``caption``) name
    the image files and their captions. There are no classes.

    With several files, each file's name gives its split (``captions_train2014.json``,
    ``captions_val2014.json``); a single file is divided by a seeded draw per image by
    ``valid_fraction`` / ``test_fraction``. An image id or an annotation id used twice (in any of
    the files), a ``file_name`` outside the image folder, or a file that is not a COCO captions file
    is an error; images without captions and captions of unlisted images are left out and reported
    through ``on_skip``.
    """
    root = Path(root)
    check_source_folder(root)
    skip = on_skip or (lambda reason, detail: None)
    files = coco_caption_files(root)
    if not files:
        raise T2IError(f"{root} holds no COCO captions file (captions*.json, in it or in annotations/)")
    named = {path: coco_split_named_by(path) for path in files}
    split_per_file = len(files) > 1
    if split_per_file and None in named.values():
        unnamed = next(p.name for p, s in named.items() if s is None)
        raise T2IError(f"{unnamed} names no split (train, val or test); with several captions files, each names its split")
    if not split_per_file:
        check_fractions(valid_fraction, test_fraction)

    rng = random.Random(seed)
    file_of_image: dict = {}  # image id -> the captions file that lists it
    file_of_annotation: dict = {}  # annotation id -> the captions file that uses it
    id_of_name: dict[tuple[str, str], object] = {}  # (split, name) -> image id: names are per split
    items: list[SourceItem] = []
    for path in files:
        images, annotations = _read_coco_file(path)
        image_dirs = _coco_image_dirs(root, path)
        captions_of: dict = {}  # image id -> its captions, in file order
        for position, entry in enumerate(images):
            where = f"{path.name}, images[{position}]"
            if not isinstance(entry, dict) or "id" not in entry or not isinstance(entry.get("file_name"), str) or not entry["file_name"].strip():
                raise T2IError(f"{where}: every image needs an id and a file_name")
            relative = Path(entry["file_name"].strip())
            if relative.is_absolute() or relative.anchor or ".." in relative.parts:
                raise T2IError(f"{where}: file_name {entry['file_name']!r} must be a path inside the image folder, not {'above' if '..' in relative.parts else 'an absolute'} one")
            image_id = _coco_id(entry["id"], where)
            if image_id in file_of_image:
                raise T2IError(f"{where}: image id {image_id!r} is listed twice (also in {file_of_image[image_id].name})")
            file_of_image[image_id] = path
            captions_of[image_id] = []
        for position, entry in enumerate(annotations):
            where = f"{path.name}, annotations[{position}]"
            if not isinstance(entry, dict) or "image_id" not in entry or not isinstance(entry.get("caption"), str):
                raise T2IError(f"{where}: every annotation needs an image_id and a caption string")
            if "id" in entry:
                annotation_id = _coco_id(entry["id"], where)
                if annotation_id in file_of_annotation:
                    raise T2IError(f"{where}: annotation id {annotation_id!r} is used twice (also in {file_of_annotation[annotation_id].name})")
                file_of_annotation[annotation_id] = path
            image_id = _coco_id(entry["image_id"], where)
            problem = caption_problem(entry["caption"])
            if image_id not in captions_of:
                skip("caption without image", f"image id {image_id!r} in {path.name}")
            elif problem is not None and entry["caption"].strip():
                skip("caption that is no usable text", f"{where}: the caption {problem}")
            elif problem is None:
                captions_of[image_id].append(clean_caption(entry["caption"]))

        for entry in images:
            file_name = entry["file_name"].strip()
            captions = captions_of[entry["id"]]
            if not captions:
                skip("image without captions", file_name)
                continue
            name = "__".join(Path(file_name).with_suffix("").parts)
            split = named[path] if split_per_file else seeded_split(rng, valid_fraction=valid_fraction, test_fraction=test_fraction)
            if id_of_name.setdefault((split, name), entry["id"]) != entry["id"]:
                raise T2IError(f"{path.name}: image ids {id_of_name[split, name]!r} and {entry['id']!r} both name {file_name} in the {split} split")
            image = next((folder / file_name for folder in image_dirs if (folder / file_name).is_file()), None)
            items.append(SourceItem(split, name, image, tuple(captions), None))
    if not items:
        raise T2IError(f"the COCO captions files of {root} pair no image with a caption")
    return items
