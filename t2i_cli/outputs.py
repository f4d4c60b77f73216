"""The one rule for where a command may write, checked before any work.

Every writer asks :func:`check_output` about its target first, so a bad path costs no minutes of
training or evaluation, and every message names the user's path (never a hidden partial file):

- the folder it goes in must exist (an output folder's missing parents are made) and take a new file (probed by creating and removing the very
  partial name the atomic writer will use, so ``/proc``, read-only mounts and full permissions
  checks all fail here, not after the work);
- a file target must not be a folder, and a folder target not a file;
- it must not be one of the command's inputs (same file by ``os.path.samefile`` or by resolved
  path): writing there would destroy the input;
- an existing file is replaced only when the command was asked to (``force=True``); commands that
  replace their output by design pass ``force=None``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from t2i_cli.atomic import partial_path, remove_stale_partials
from t2i_cli.errors import T2IError


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file (links and ``..`` included); False if ``b`` does not exist."""
    a, b = Path(a), Path(b)
    if not b.exists():
        return False
    if a.exists():
        try:
            return os.path.samefile(a, b)
        except OSError:
            return False
    return a.resolve() == b.resolve()


def check_output(out: Path, *, as_folder: bool = False, inputs: Iterable[Path] = (), force: bool | None = None,
                 parameter: str = "out") -> None:
    """Refuse ``out`` in one line when it cannot or must not be written (see the module docstring).

    With ``as_folder``, ``out`` is a folder that may not exist yet, nor its parents (they are made)."""
    out = Path(out)
    for source in inputs:
        if same_file(out, source):
            raise T2IError(f"{out} is also an input ({source}); writing there would destroy it: name another output", parameter=parameter)
    if as_folder:
        if out.exists() and not out.is_dir():
            raise T2IError(f"{out} exists and is not a folder", parameter=parameter)
        folder = out  # the nearest folder that exists: the writer makes the rest (mkdir -p)
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir():
            raise T2IError(f"{folder} is not a folder, so {out} cannot be made inside it", parameter=parameter)
    else:
        if out.is_dir():
            raise T2IError(f"{out} is a folder; name a file", parameter=parameter)
        if out.exists() and force is False:
            raise T2IError(f"{out} already exists, and replacing it was not asked for", parameter="overwrite")
        folder = out.parent
    if not folder.is_dir():
        raise T2IError(f"output folder {folder} does not exist", parameter=parameter)
    if not os.access(folder, os.W_OK):
        raise T2IError(f"output folder {folder} is not writable", parameter=parameter)
    remove_stale_partials(folder)  # what a killed writer left here, whichever command it was
    probe = partial_path(folder / (out.name if not as_folder or out == folder else ".probe"))
    try:
        descriptor = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return  # this very process is writing it already
    except OSError as exc:
        raise T2IError(f"cannot write {out}: {exc.strerror or exc}", parameter=parameter) from None
    os.close(descriptor)
    probe.unlink(missing_ok=True)


def check_outputs(files: Iterable[Path], *, inputs: Iterable[Path] = (), force: bool | None = None, parameter: str = "out") -> None:
    """:func:`check_output` for each of several files a command will write into one folder."""
    inputs = list(inputs)
    for path in files:
        if Path(path).parent.is_dir():  # a folder still to be made holds nothing to clash with
            check_output(path, inputs=inputs, force=force, parameter=parameter)
