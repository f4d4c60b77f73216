"""Readers for the folder layouts ``t2i data convert`` understands.

Each ``open_<layout>()`` returns a list of :class:`SourceItem` (which image, which caption file,
which class, which split); :func:`t2i_cli.data.convert.convert` reads, embeds and writes them.
Problems that stop a whole conversion (a missing folder, a class listed twice) raise
:class:`T2IError`; problems with single items are left to the converter, which skips and counts.
"""

from __future__ import annotations

import csv
import logging
import random
from dataclasses import dataclass
from pathlib import Path

from t2i_cli.data.images import IMAGE_SUFFIXES
from t2i_cli.errors import T2IError

log = logging.getLogger(__name__)

LAYOUTS = ("auto", "reed", "folder")


@dataclass(frozen=True)
class SourceItem:
    split: str
    name: str
    image: Path | None  # None: the caption file has no image beside it
    captions: Path
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
    captions = [line.strip() for line in text.splitlines() if line.strip()]
    if not captions:
        raise CaptionFileError(f"{path.name}: no captions (empty file)")
    return captions


def detect_layout(root: Path) -> str:
    return "reed" if (root / "text_c10").is_dir() else "folder"


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
    if valid_fraction < 0 or test_fraction < 0 or valid_fraction + test_fraction >= 1:
        raise T2IError("valid and test fractions must be >= 0 and leave some images for train")
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
            draw = rng.random()
            split = "test" if draw < test_fraction else "valid" if draw < test_fraction + valid_fraction else "train"
        items.append(SourceItem(split, name, image, image.with_suffix(".txt"), class_name))
    if not items:
        raise T2IError(f"no image in {root} is listed in the class table {class_table}")
    return items
