"""Writes that never leave a half-written file or folder where a good one was.

Every writer fills a *partial* beside its target, named ``.NAME.partial-PID``, and renames it over
the target only once the write has completed; an exception (or Ctrl-C) deletes the partial. The
one naming rule lets :func:`remove_stale_partials` recognise what a killed process left behind, and
every atomic write first clears such leftovers from its folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

PARTIAL_MARK = ".partial-"


def partial_path(target: str | Path) -> Path:
    """The partial name this process writes ``target`` under: ``.NAME.partial-PID`` beside it."""
    target = Path(target)
    return target.with_name(f".{target.name}{PARTIAL_MARK}{os.getpid()}")


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a partial path to write; on a clean exit it replaces ``path`` in one rename.

    The partial has no meaningful suffix: give writers an explicit format (``format="PNG"``) or
    an open file (``np.save`` appends ``.npy`` to a bare path).
    """
    path = Path(path)
    remove_stale_partials(path.parent)  # a killed writer's leftovers, whichever command it was
    partial = partial_path(path)
    try:
        yield partial
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """``path.write_text(text)``, atomically."""
    with atomic_file(path) as partial:
        partial.write_text(text, encoding="utf-8")
    return Path(path)


@contextlib.contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yield an empty partial folder to fill; on a clean exit it takes the place of ``path``.

    An existing ``path`` is moved aside first and deleted only once the new folder is in place,
    so at every instant either the old or the new folder is complete under its name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(path.parent)
    partial = partial_path(path)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        yield partial
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.rename(path, old)
            os.rename(partial, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(partial, path)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _process_is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process, or no pid at all: leave it
        return True
    return True


def remove_stale_partials(folder: str | Path) -> list[Path]:
    """Delete the partials in ``folder`` whose writing process no longer runs (a killed run's
    leftovers); a partial of a live process is another writer's work in progress and stays."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for entry in folder.glob(f".*{PARTIAL_MARK}*"):
        pid = entry.name.rsplit(PARTIAL_MARK, 1)[1]
        if not (pid.isascii() and pid.isdigit()) or int(pid) == os.getpid() or _process_is_running(int(pid)):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed
