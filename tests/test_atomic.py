"""The one atomic writer: a failed write never replaces a good file or folder, and a killed
process's partials are recognised and removed."""

import os
import subprocess
import sys

import pytest

from t2i_cli.atomic import PARTIAL_MARK, atomic_file, atomic_folder, remove_stale_partials, write_text


def test_atomic_file_replaces_only_on_success(tmp_path):
    target = tmp_path / "report.json"
    write_text(target, "good")
    with pytest.raises(RuntimeError):
        with atomic_file(target) as partial:
            partial.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "good"
    with atomic_file(target) as partial:
        assert partial.parent == tmp_path and PARTIAL_MARK in partial.name
        partial.write_text("new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_atomic_folder_swaps_in_whole_or_not_at_all(tmp_path):
    target = tmp_path / "checkpoints" / "epoch-0001"
    with atomic_folder(target) as partial:
        (partial / "weights").write_text("v1")
    with pytest.raises(KeyboardInterrupt):
        with atomic_folder(target) as partial:
            (partial / "weights").write_text("v2, half")
            raise KeyboardInterrupt
    assert (target / "weights").read_text() == "v1"
    with atomic_folder(target) as partial:
        (partial / "weights").write_text("v2")
    assert (target / "weights").read_text() == "v2"
    assert [p.name for p in target.parent.iterdir()] == ["epoch-0001"]


def test_remove_stale_partials_keeps_live_writers_and_other_files(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid, live_pid = int(finished.stdout), os.getppid()
    stale_file = tmp_path / f".epoch-0003{PARTIAL_MARK}{dead_pid}"
    stale_file.write_text("x")
    stale_folder = tmp_path / f".epoch-0004{PARTIAL_MARK}{dead_pid}"
    stale_folder.mkdir()
    (stale_folder / "weights").write_text("x")
    live = tmp_path / f".epoch-0005{PARTIAL_MARK}{live_pid}"
    live.write_text("another process is writing this")
    kept = [tmp_path / "latest", tmp_path / f".notes{PARTIAL_MARK}abc", tmp_path / f".a{PARTIAL_MARK}\u00b2",
            tmp_path / f".b{PARTIAL_MARK}{2**64}"]  # not a pid, or none a process can have: left alone
    for path in kept:
        path.write_text("x")
    assert sorted(remove_stale_partials(tmp_path)) == sorted([stale_file, stale_folder])
    assert sorted(tmp_path.iterdir()) == sorted([live, *kept])
    assert remove_stale_partials(tmp_path / "missing") == []
