"""Building torch modules whose every weight then comes from a file."""

from __future__ import annotations

import contextlib
from typing import Iterator

from torch import nn

_INITIALISERS = ("normal_", "uniform_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "xavier_normal_",
                 "trunc_normal_", "constant_", "zeros_", "ones_")


@contextlib.contextmanager
def no_initialisation() -> Iterator[None]:
    """Build modules without drawing their initial weights, which loading would overwrite: at a
    cold start the caption encoder's 11.7M normal draws took 80 ms and the generator's 40 ms.
    (Not the meta device: its first use imports torch's decompositions, 1.5 s here.) Only for a
    module whose every parameter and buffer is then loaded strictly; not thread-safe (it swaps
    ``torch.nn.init``'s functions while the block runs)."""
    saved = {name: getattr(nn.init, name) for name in _INITIALISERS}
    try:
        for name in _INITIALISERS:
            setattr(nn.init, name, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for name, function in saved.items():
            setattr(nn.init, name, function)
