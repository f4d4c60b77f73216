"""Building torch modules whose every weight then comes from a file."""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator

from torch import nn

_INITIALISERS = ("normal_", "uniform_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "xavier_normal_",
                 "trunc_normal_", "constant_", "zeros_", "ones_")
_skipping = threading.local()  # per thread: a model built in another thread meanwhile draws its weights as usual
_install = threading.Lock()
_installed = False


def _skippable(initialiser):
    def initialise(tensor, *args, **kwargs):
        if getattr(_skipping, "depth", 0):
            return tensor
        return initialiser(tensor, *args, **kwargs)

    initialise.__wrapped__ = initialiser
    return initialise


@contextlib.contextmanager
def no_initialisation() -> Iterator[None]:
    """Build modules without drawing their initial weights, which loading would overwrite: at a
    cold start the caption encoder's 11.7M normal draws took 80 ms and the generator's 40 ms.
    (Not the meta device: its first use imports torch's decompositions, 1.5 s here.) Only for a
    module whose every parameter and buffer is then loaded strictly. ``torch.nn.init``'s functions
    are wrapped once, and skip only in the thread inside this block."""
    global _installed
    with _install:
        if not _installed:
            for name in _INITIALISERS:
                setattr(nn.init, name, _skippable(getattr(nn.init, name)))
            _installed = True
    _skipping.depth = getattr(_skipping, "depth", 0) + 1
    try:
        yield
    finally:
        _skipping.depth -= 1
