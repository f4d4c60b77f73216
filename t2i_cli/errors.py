"""The one exception type that reaches users as a single line.

Library code raises :class:`T2IError` for anything a user can fix (a missing folder, a file of the
wrong layout, an encoder mismatch), saying what is wrong in the library's own terms. Where one
argument is at fault, ``parameter`` names it (as the Python API spells it), and each front end
points at its own control for it: the CLI appends the flag (``cli.FLAGS``) to ``Error: <message>``
and exits non-zero. Every other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class T2IError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    def __init__(self, message: str, *, parameter: str | tuple[str, ...] | None = None):
        super().__init__(message)
        self.parameter = parameter


class RequestError(T2IError):
    """A generation request the pipeline refuses, before any model runs: always about one argument."""

    def __init__(self, message: str, *, parameter: str):
        super().__init__(message, parameter=parameter)
