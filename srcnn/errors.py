"""The srcnn library's user-facing error: one line that a caller can show as it is."""


class SRError(ValueError):
    """Bad input to the super-resolution stage (a scale, an image, a weights file)."""
