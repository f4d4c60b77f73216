"""ganbert: a self-contained GAN-BERT library (Croce et al., ACL 2020); never imports t2i_cli.

- :func:`train_ganbert` -- GAN-BERT (or the supervised ``baseline``) on labelled + unlabelled text
- :class:`GanBertModel` -- the trained classifier: ``predict``, ``evaluate``, ``save``, ``load``
- :func:`read_tsv`, :func:`choose_labelled`, :func:`is_held_out` -- data preparation
- :mod:`ganbert.losses` -- the paper's losses as pure functions

Names are imported on first use, so ``from ganbert.errors import GanBertError`` costs no torch import.
"""

import importlib

_EXPORTS = {
    "default_backbone_dir": "ganbert.backbone",
    "load_backbone": "ganbert.backbone",
    "mean_pool": "ganbert.backbone",
    "TextExample": "ganbert.data",
    "choose_labelled": "ganbert.data",
    "is_held_out": "ganbert.data",
    "label_table": "ganbert.data",
    "read_tsv": "ganbert.data",
    "GanBertError": "ganbert.errors",
    "classification_metrics": "ganbert.metrics",
    "Discriminator": "ganbert.model",
    "Generator": "ganbert.model",
    "GanBertConfig": "ganbert.model",
    "GanBertModel": "ganbert.model",
    "read_description": "ganbert.model",
    "replication_factor": "ganbert.train",
    "train_ganbert": "ganbert.train",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ganbert' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
