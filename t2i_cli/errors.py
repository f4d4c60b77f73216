"""The one exception type that reaches users as a single line.

Library code raises :class:`T2IError` for anything a user can fix (a missing folder, a file of the
wrong layout, an encoder mismatch). The CLI turns it into ``error: <message>`` and a non-zero exit;
every other exception is a bug and keeps its traceback.
"""


class T2IError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class RequestError(T2IError):
    """A generation request the pipeline refuses; ``parameter`` names the argument at fault, so a
    front end can point at its own control for it (a CLI flag, a form field)."""

    def __init__(self, parameter: str, message: str):
        super().__init__(message)
        self.parameter = parameter
