"""A t2i HDF5 file as GAN-BERT data: its train-split classes are the labels.

Because the file's valid and test splits hold other classes, :class:`H5Selection` holds out a share
of the train images (all their captions, chosen by a hash of the image name) for evaluation, keeps
a share of the rest labelled, and leaves the remaining captions unlabelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from t2i_cli.errors import T2IError


@dataclass
class H5Selection:
    """Which captions of an HDF5 train split are labelled, unlabelled and held out."""

    labelled_fraction: float
    holdout_fraction: float
    seed: int

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
        labelled = choose_labelled(groups, self.labelled_fraction, self.seed)
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
