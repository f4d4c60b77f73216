"""Building and re-embedding caption-image files: ``t2i data convert`` and ``t2i data embed``."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from t2i_cli.data.h5 import CaptionImageFile, CaptionImageWriter, Example
from t2i_cli.data.images import BadImage, prepare_jpeg
from t2i_cli.data.sources import (
    CaptionFileError,
    check_source_folder,
    SourceItem,
    detect_layout,
    open_coco,
    open_image_folder,
    open_reed_release,
    read_captions,
)
from t2i_cli.errors import T2IError
from t2i_cli.progress import progress_bar
from t2i_cli.text.encoder import TextEncoder

log = logging.getLogger(__name__)

# Images per encoder call: enough captions (x10) to keep the encoder's batches full.
CHUNK_IMAGES = 64


@dataclass
class ConvertReport:
    output: Path
    layout: str
    counts: dict[str, int]
    captions: int
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    skipped_examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> first names
    seconds: float = 0.0

    def skip(self, reason: str, detail: str) -> None:
        self.skipped[reason] += 1
        names = self.skipped_examples.setdefault(reason, [])
        if len(names) < 5:
            names.append(detail)


def _embed_examples(examples: list[Example], encoder: TextEncoder, batch_size: int) -> None:
    """Fill ``example.embeddings``; each distinct caption string is encoded once."""
    unique = sorted({c for e in examples for c in e.captions})
    vectors = encoder.encode(unique, batch_size=batch_size).numpy()
    row = {caption: i for i, caption in enumerate(unique)}
    for example in examples:
        example.embeddings = vectors[[row[c] for c in example.captions]]


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def convert(
    source: Path,
    output: Path,
    *,
    encoder: TextEncoder,
    layout: str = "auto",
    image_size: int | None = None,
    class_table: Path | None = None,
    class_from_folder: bool = False,
    valid_fraction: float | None = None,
    test_fraction: float = 0.1,
    seed: int = 0,
    embedding_dtype: str = "float16",
    batch_size: int = 128,
    overwrite: bool = False,
    strict: bool = False,
    progress: bool = True,
) -> ConvertReport:
    """Convert a folder of images and captions into a t2i HDF5 file at ``output``.

    Unusable items (an image that does not decode, a missing, empty or non-UTF-8 caption file)
    are skipped and counted in the report, or stop the conversion when ``strict``.
    """
    started = time.perf_counter()
    source = Path(source)
    check_source_folder(source)
    if image_size is not None and image_size < 8:
        raise T2IError(f"the image size must be at least 8 pixels, got {image_size}", parameter="image_size")
    if layout == "auto":
        layout = detect_layout(source)
    report = ConvertReport(output=Path(output), layout=layout, counts={}, captions=0)
    if layout == "reed":
        items = open_reed_release(source, valid_fraction=0.15 if valid_fraction is None else valid_fraction, seed=seed)
    elif layout == "folder":
        items = open_image_folder(
            source,
            class_table=class_table,
            class_from_folder=class_from_folder,
            valid_fraction=0.1 if valid_fraction is None else valid_fraction,
            test_fraction=test_fraction,
            seed=seed,
        )
    elif layout == "coco":
        items = open_coco(
            source,
            valid_fraction=0.1 if valid_fraction is None else valid_fraction,
            test_fraction=test_fraction,
            seed=seed,
            on_skip=lambda reason, detail: _skip_or_stop(report, strict, reason, detail),
        )
    else:
        raise T2IError(f"unknown layout {layout!r}; use auto, reed, folder or coco")

    writer = CaptionImageWriter(
        output,
        encoder=encoder.identity,
        embedding_dtype=embedding_dtype,
        image_size=image_size,
        source=f"{layout}:{source.resolve()}",
        overwrite=overwrite,
    )
    with writer, progress_bar(f"converting {source.name}", total=len(items), enabled=progress) as advance:
        for chunk in _chunks(items, CHUNK_IMAGES):
            ready: list[tuple[str, Example]] = []
            for item in chunk:
                example = _load_item(item, image_size=image_size, report=report, strict=strict)
                if example is not None:
                    ready.append((item.split, example))
            _embed_examples([e for _, e in ready], encoder, batch_size)
            for split, example in ready:
                writer.add(split, example)
            advance(len(chunk))
        if sum(writer.counts.values()) == 0:
            raise T2IError(f"no usable examples in {source}: {skip_summary(report)}")
    report.counts = dict(writer.counts)
    report.captions = writer.caption_count
    report.seconds = time.perf_counter() - started
    return report


def _load_item(item: SourceItem, *, image_size: int | None, report: ConvertReport, strict: bool) -> Example | None:
    try:
        if item.image is None:
            where = item.captions.name if isinstance(item.captions, Path) else item.name
            raise BadImage(f"{where}: no image file for these captions")
        captions = read_captions(item.captions) if isinstance(item.captions, Path) else list(item.captions)
        jpeg, size = prepare_jpeg(item.image, image_size=image_size)
    except CaptionFileError as exc:
        reason, detail = "unusable caption file", str(exc)
    except BadImage as exc:
        reason, detail = "unreadable or missing image", str(exc)
    else:
        return Example(name=item.name, jpeg=jpeg, captions=captions, class_name=item.class_name, size=size)
    _skip_or_stop(report, strict, reason, detail)
    return None


def _skip_or_stop(report: ConvertReport, strict: bool, reason: str, detail: str) -> None:
    if strict:
        raise T2IError(f"{reason}: {detail} (strict mode stops here; without it the item would be skipped)", parameter="strict")
    report.skip(reason, detail)


def skip_summary(report: ConvertReport) -> str:
    """One line naming each kind of skipped item, how many, and a few examples."""
    if not report.skipped:
        return "nothing was skipped"
    return "; ".join(
        f"{count} {reason} (e.g. {', '.join(report.skipped_examples[reason][:3])})"
        for reason, count in report.skipped.most_common()
    )


def reembed(
    path: Path,
    *,
    encoder: TextEncoder,
    embedding_dtype: str = "float16",
    batch_size: int = 128,
    progress: bool = True,
) -> ConvertReport:
    """Replace every embedding in ``path`` with ``encoder``'s, atomically.

    A file in the plain reference layout comes out in the t2i layout (still readable by tools
    that know the reference one), now recording its encoder.
    """
    started = time.perf_counter()
    path = Path(path)
    with CaptionImageFile(path) as reader:
        image_size, source, classes = reader.image_size, reader.source, reader.classes
        names = {split: reader.names(split) for split in reader.splits}
    total = sum(len(n) for n in names.values())
    writer = CaptionImageWriter(
        path,
        encoder=encoder.identity,
        embedding_dtype=embedding_dtype,
        image_size=image_size,
        source=source,
        classes=classes,
        overwrite=True,
    )
    # The writer is the outer context so the reader is closed before the temp file replaces ``path``.
    with writer, CaptionImageFile(path) as reader, progress_bar(
        f"re-embedding {path.name}", total=total, enabled=progress
    ) as advance:
        for split, split_names in names.items():
            for chunk in _chunks(split_names, CHUNK_IMAGES):
                examples = [reader.example(split, name) for name in chunk]
                _embed_examples(examples, encoder, batch_size)
                for example in examples:
                    writer.add(split, example)
                advance(len(chunk))
    return ConvertReport(
        output=path,
        layout="t2i",
        counts=dict(writer.counts),
        captions=writer.caption_count,
        seconds=time.perf_counter() - started,
    )


def describe(path: Path, *, samples: int = 3) -> dict:
    """What ``t2i data info`` shows: layout, encoder, image size, per-split counts, sample captions."""
    with CaptionImageFile(path) as data:
        splits = {}
        for split in data.splits:
            names = data.names(split)
            captions = sum(len(data.captions(split, n)) for n in names)
            classes = {data.class_name(split, n) for n in names} - {None}
            splits[split] = {"images": len(names), "captions": captions, "classes": len(classes)}
        sample_captions = [
            {"split": split, "example": name, "caption": data.captions(split, name)[0]}
            for split in data.splits
            for name in data.names(split)[:samples]
        ]
        return {
            "path": str(path),
            "layout": "reference" if data.schema_version is None else f"t2i v{data.schema_version}",
            "encoder": None if data.encoder is None else {"name": data.encoder.name, "dim": data.encoder.dim, "revision": data.encoder.revision},
            "embedding_dim": data.embedding_dim,
            "image_size": data.image_size,
            "classes": len(data.classes),
            "source": data.source,
            "splits": splits,
            "samples": sample_captions,
            "file_bytes": Path(path).stat().st_size,
        }
