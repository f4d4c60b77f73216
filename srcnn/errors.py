"""The srcnn library's user-facing error: one line that a caller can show as it is."""

from __future__ import annotations


class SRError(ValueError):
    """Bad input to the super-resolution stage (a scale, an image, a weights file); ``parameter``
    names the argument (or arguments) at fault where one is, for a caller to point at its own control for it."""

    def __init__(self, message: str, *, parameter: str | tuple[str, ...] | None = None):
        super().__init__(message)
        self.parameter = parameter
