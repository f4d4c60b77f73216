"""Labelled and unlabelled sentences: reading TSV files, the label table, and evaluation splits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ganbert.errors import GanBertError


@dataclass(frozen=True)
class TextExample:
    """One sentence; ``label`` is None when it is unlabelled."""

    text: str
    label: str | None = None


def read_tsv(path: str | Path) -> list[TextExample]:
    """Read ``text<TAB>label`` lines (an empty label = unlabelled; blank lines are skipped).

    A first line ``text<TAB>label`` is taken as a header. A malformed line is reported with its number.
    """
    path = Path(path)
    if not path.is_file():
        raise GanBertError(f"TSV file {path} does not exist")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise GanBertError(f"{path} is not UTF-8 text (byte {exc.start})") from None
    examples = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if number == 1 and [f.strip().lower() for f in fields] == ["text", "label"]:
            continue
        if len(fields) != 2:
            raise GanBertError(
                f"{path}, line {number}: expected 'text<TAB>label' (2 fields), found {len(fields)}"
            )
        text, label = fields[0].strip(), fields[1].strip()
        if not text:
            raise GanBertError(f"{path}, line {number}: the text is empty")
        examples.append(TextExample(text, label or None))
    if not examples:
        raise GanBertError(f"{path} holds no sentences")
    return examples


def label_table(examples: Sequence[TextExample]) -> list[str]:
    """The sorted labels that occur among ``examples``; fails when none is labelled."""
    labels = sorted({e.label for e in examples if e.label is not None})
    if not labels:
        raise GanBertError("the labelled set is empty: GAN-BERT needs at least one labelled sentence")
    return labels


def check_labels_known(examples: Sequence[TextExample], labels: Sequence[str]) -> None:
    """Labelled training sentences must use labels of the classifier's table."""
    unknown = sorted({e.label for e in examples if e.label is not None} - set(labels))
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:5]) + (" …" if len(unknown) > 5 else "")
        raise GanBertError(f"{len(unknown)} label(s) of the labelled sentences are not in the label table: {shown}",
                           parameter="labels")


def read_labels(path: str | Path) -> list[str]:
    """A label table: one label a line (blank lines skipped), in the order given, no repeats."""
    path = Path(path)
    try:
        labels = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except FileNotFoundError:
        raise GanBertError(f"label file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GanBertError(f"label file {path} is unreadable: {exc}") from None
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if not labels or repeated:
        raise GanBertError(f"label file {path} " + ("is empty" if not labels else f"repeats {', '.join(map(repr, repeated))}"))
    return labels


def scorable_examples(examples: Sequence[TextExample]) -> list[TextExample]:
    """The labelled ``examples``, which an evaluation scores; an evaluation set without any fails."""
    scored = [e for e in examples if e.label is not None]
    if not scored:
        raise GanBertError("the evaluation set has no labelled sentences")
    return scored


def outside_labels(examples: Sequence[TextExample], labels: Sequence[str]) -> list[TextExample]:
    """The labelled ``examples`` whose label is not in ``labels``: a classifier with that label
    table can only get them wrong, and an evaluation counts them as its errors."""
    known = set(labels)
    return [e for e in examples if e.label is not None and e.label not in known]


def is_held_out(key: str, fraction: float, seed: int = 0) -> bool:
    """Whether the item named ``key`` falls in the held-out ``fraction``: a hash of the name, so a
    training run and a later evaluation agree on the split without sharing a list."""
    digest = hashlib.sha1(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < fraction


def choose_labelled(groups: dict[str, list[str]], fraction: float, seed: int = 0) -> set[str]:
    """Pick ``round(fraction × items)`` items to keep labelled, spread over the classes.

    ``groups`` maps a class to its items. Classes take turns (in a seeded order), one item each,
    so at 2 % of 60 classes × 80 images every class gets one or two labelled images rather than
    some classes many and others none.
    """
    if not 0 < fraction <= 1:
        raise GanBertError(f"the labelled fraction must lie in (0, 1], got {fraction}")
    total = sum(len(items) for items in groups.values())
    wanted = max(1, round(fraction * total))
    rng = np.random.default_rng(seed)
    queues = {name: [items[i] for i in rng.permutation(len(items))] for name, items in sorted(groups.items())}
    order = [sorted(groups)[i] for i in rng.permutation(len(groups))]
    chosen: set[str] = set()
    while len(chosen) < wanted:
        for name in order:
            if queues[name] and len(chosen) < wanted:
                chosen.add(queues[name].pop())
    return chosen
