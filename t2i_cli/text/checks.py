"""The one gate for caption text from outside: CLI arguments, caption files, JSON, the demo.

Python hands over bytes that were not UTF-8 as lone surrogates (``"pink \\udcff petals"`` from a
command line, or a JSON escape like ``"\\udcff"``); no tokenizer can take them, so they are refused
here with the byte named, never passed on. Control characters become spaces, whitespace runs
collapse to one space, and a caption must keep at least one letter or digit: a caption of
punctuation or control characters only says nothing to draw.
"""

from __future__ import annotations

import re
import unicodedata

_SURROGATE = re.compile("[\ud800-\udfff]")


def caption_problem(text: object) -> str | None:
    """Why ``text`` cannot be a caption (a phrase to follow "caption N ..."), or None."""
    if not isinstance(text, str):
        return f"is not text but {type(text).__name__}"
    bad = _SURROGATE.search(text)
    if bad is not None:
        code = ord(bad.group())
        byte = f" (byte 0x{code - 0xDC00:02x})" if 0xDC80 <= code <= 0xDCFF else ""
        return f"is not valid Unicode text{byte}: save or type it as UTF-8"
    if not text.strip():
        return "is empty; write what the image should show"
    if not any(ch.isalnum() for ch in text):
        return "has no word in it (only punctuation, symbols or control characters); write what the image should show"
    return None


def clean_caption(text: str) -> str:
    """``text`` with control and format characters as spaces and whitespace collapsed (check it first
    with :func:`caption_problem`)."""
    spaced = "".join(" " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch for ch in text)
    return " ".join(spaced.split())
