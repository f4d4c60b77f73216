"""A t2i HDF5 file as GAN-BERT data: its train-split classes are the labels.

Because the file's valid and test splits hold other classes, :class:`H5Selection` holds out a share
of the train images (all their captions, chosen by a hash of the image name) for evaluation, keeps
a share of the rest labelled, and leaves the remaining captions unlabelled.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from t2i_cli.errors import T2IError

log = logging.getLogger(__name__)


@dataclass
class H5Selection:
    """Which captions of an HDF5 train split are labelled, unlabelled and held out."""

    labelled_fraction: float
    holdout_fraction: float
    seed: int  # of the held-out choice, and of the labelled one unless labelled_seed says otherwise
    labelled_seed: int | None = None  # a comparison's seeds: other labelled rows, the same held-out set

    def partition(self, classes: dict[str, str]) -> tuple[list[str], list[str], list[str]]:
        """(labelled, unlabelled, held-out) image names, each sorted, of a split whose images have
        the ``classes`` given (image name -> class)."""
        from ganbert.data import choose_labelled, is_held_out

        held = {n for n in classes if is_held_out(n, self.holdout_fraction, self.seed)}
        if not held or len(held) == len(classes):
            raise T2IError(f"holding out {self.holdout_fraction:.0%} of {len(classes)} images leaves one side empty")
        kept = sorted(set(classes) - held)
        groups: dict[str, list[str]] = {}
        for name in kept:
            groups.setdefault(classes[name], []).append(name)
        labelled = choose_labelled(groups, self.labelled_fraction, self.seed if self.labelled_seed is None else self.labelled_seed)
        return [n for n in kept if n in labelled], [n for n in kept if n not in labelled], sorted(held)

    def split(self, path: Path):
        """(training examples, held-out examples, label table) from ``path``'s train split."""
        from ganbert.data import TextExample

        captions, classes = captions_and_classes(path)
        labelled, unlabelled, held = self.partition(classes)
        chosen = set(labelled)
        training = [
            TextExample(text, classes[name] if name in chosen else None)
            for name in sorted(labelled + unlabelled) for text in captions[name]
        ]
        evaluation = [TextExample(text, classes[name]) for name in held for text in captions[name]]
        return training, evaluation, sorted(set(classes.values()))

    def held_out(self, path: Path):
        return self.split(path)[1]


def captions_and_classes(path: Path, split: str = "train") -> tuple[dict[str, list[str]], dict[str, str]]:
    """(image name -> its captions, image name -> its class) of ``split``."""
    from t2i_cli.data.h5 import CaptionImageFile

    with CaptionImageFile(path) as data:
        names = data.names(split)
        captions = {n: data.captions(split, n) for n in names}
        classes = {n: data.class_name(split, n) for n in names}
    if not names:
        raise T2IError(f"the {split} split of {path} is empty")
    if any(c is None for c in classes.values()):
        raise T2IError(f"{path} records no classes for its {split} images, so it has no labels for GAN-BERT")
    return captions, classes


def pretraining_sentences(path: Path, *, holdout: float = 0.2, seed: int = 0) -> tuple[list[str], dict]:
    """The captions a BERT is pretrained on from ``path``: its train split's, but for the images
    ``t2i ganbert train`` holds out with the same ``holdout`` and ``seed`` (its defaults: 20 %,
    seed 0), so no sentence it is later scored on was read in pretraining. Returns the sentences
    and a record of where they came from."""
    from ganbert.data import is_held_out

    captions, _ = captions_and_classes(path)
    kept = [name for name in sorted(captions) if not is_held_out(name, holdout, seed)]
    sentences = [text for name in kept for text in captions[name]]
    return sentences, {"data": Path(path).name, "split": "train", "images": len(kept), "holdout": holdout, "split_seed": seed}


def check_pretraining_unseen(backbone: Path, data: Path, holdout: float, seed: int = 0) -> None:
    """Refuse a backbone pretrained (t2i ganbert pretrain --data) on ``data``'s captions with
    another held-out choice than the one to score on (share ``holdout``, ``seed``): it would have
    read sentences it is scored on. Backbones of other text, or not made here, pass."""
    from ganbert.pretrain import RECORD_FILE

    path = Path(backbone) / RECORD_FILE
    if not path.is_file():
        return
    try:
        source = json.loads(path.read_text()).get("source", {})
    except (OSError, ValueError, AttributeError):
        return
    if not isinstance(source, dict) or source.get("data") != Path(data).name:
        return
    if (source.get("holdout"), source.get("split_seed")) != (holdout, seed):
        raise T2IError(
            f"{backbone} was pretrained on {source['data']}'s captions less another held-out set ({source.get('holdout')}, "
            f"split seed {source.get('split_seed')}) than the one scored here ({holdout}, split seed {seed}): it read "
            f"sentences it would be scored on; score it on the held-out set it left out",
            parameter="holdout")


@dataclass
class GanBertTask:
    """What one ``t2i ganbert train`` learns from and is scored on."""

    examples: list  # ganbert.data.Example: labelled and unlabelled sentences to train on
    evaluation: list | None  # labelled sentences to score, if any
    labels: list[str]  # the classifier's label table
    source: dict  # where it all came from, for the checkpoint's metadata


def check_task_source(data: Path | None, tsv: Path | None, *, second: str = "--tsv FILE.tsv") -> None:
    """Exactly one of a data file and a text file (checked first: before any output or setting)."""
    if (data is None) == (tsv is None):
        raise T2IError(f"give exactly one of --data FILE.h5 or {second}")


def keep_labelled(examples: list, fraction: float, seed: int) -> list:
    """``examples`` with only ``fraction`` of their labelled rows still labelled (spread over the
    labels, seeded) and the others unlabelled: a TSV's labelled fractions for a comparison."""
    from ganbert.data import TextExample, choose_labelled

    groups: dict[str, list[str]] = {}
    for row, example in enumerate(examples):
        if example.label is not None:
            groups.setdefault(example.label, []).append(str(row))
    kept = choose_labelled(groups, fraction, seed)
    return [e if e.label is None or str(row) in kept else TextExample(e.text, None) for row, e in enumerate(examples)]


def ganbert_task(*, data: Path | None = None, tsv: Path | None = None, eval_tsv: Path | None = None,
                 selection: H5Selection | None = None, labels_file: Path | None = None,
                 tsv_labelled: tuple[float, int] | None = None) -> GanBertTask:
    """The task from a t2i HDF5 file (its train classes, split by ``selection``) or a TSV file
    (with an optional ``eval_tsv``). Everything about the evaluation is settled before training:
    the label set (as in the paper, every class the task has, labelled examples or not; or
    ``labels_file``'s), and that the evaluation can be scored."""
    from ganbert.data import label_table, outside_labels, read_labels, read_tsv, scorable_examples

    check_task_source(data, tsv)
    if data is not None:
        selection = selection or H5Selection(0.02, 0.2, 0)
        examples, evaluation, labels = selection.split(data)
        source = {"data": str(data), "labelled_fraction": selection.labelled_fraction, "holdout": selection.holdout_fraction,
                  "split_seed": selection.seed}
        if selection.labelled_seed is not None:
            source["labelled_seed"] = selection.labelled_seed
    else:
        examples = read_tsv(tsv)
        labels = label_table(examples)  # fails now, not after the backbone loads, when none is labelled
        evaluation = read_tsv(eval_tsv) if eval_tsv is not None else None
        source = {"tsv": str(tsv)}
        if tsv_labelled is not None:  # (fraction, seed): keep that share of the labelled rows labelled
            examples = keep_labelled(examples, *tsv_labelled)
            source.update(labelled_fraction=tsv_labelled[0], labelled_seed=tsv_labelled[1])
    if evaluation is not None:
        scorable_examples(evaluation)
        labels = sorted(set(labels) | {e.label for e in evaluation if e.label is not None})
    if labels_file is not None:
        labels = read_labels(labels_file)
        source["labels"] = str(labels_file)
    if evaluation is not None:
        trained = {e.label for e in examples if e.label is not None}
        untaught = [e for e in evaluation if e.label is not None and e.label not in trained]
        if untaught:
            log.info("%d evaluation sentences are of %d label(s) no labelled sentence shows; they count like the rest",
                     len(untaught), len({e.label for e in untaught}))
        outside = outside_labels(evaluation, labels)
        if outside:
            log.info("%d evaluation sentences have labels outside the label table; they count as errors", len(outside))
    return GanBertTask(examples, evaluation, labels, source)
