"""Where the project keeps what it trains or computes once and reuses: the evaluation's image
encoders and real-image features, and the caption-matching encoders of ``--match-coef``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$T2I_CACHE_DIR``, else ``~/.cache/t2i``."""
    return Path(os.environ.get("T2I_CACHE_DIR") or Path.home() / ".cache" / "t2i")
