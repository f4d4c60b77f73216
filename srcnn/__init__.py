"""srcnn: a self-contained super-resolution library of the SRCNN family (Dong et al.): SRCNN,
which restores a bicubic enlargement, and FSRCNN, which enlarges in low-resolution space. It never
imports t2i_cli.

- :class:`Upscaler` -- enlarge PIL images or tensors x2/x3/x4 (bicubic where no weights exist)
- :func:`srcnn.train.train_network`, :func:`srcnn.evaluate.evaluate` -- train on image folders, compare with bicubic

Names are imported on first use, so ``from srcnn.errors import SRError`` costs no torch import.
"""

import importlib

_EXPORTS = {
    "FSRCNN": "srcnn.fsrcnn",
    "FSRCNNConfig": "srcnn.fsrcnn",
    "SRError": "srcnn.errors",
    "SCALES": "srcnn.model",
    "SRCNN": "srcnn.model",
    "SRConfig": "srcnn.model",
    "Upscaler": "srcnn.upscale",
    "load_model": "srcnn.upscale",
    "save_weights": "srcnn.upscale",
    "weights_file": "srcnn.upscale",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'srcnn' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
