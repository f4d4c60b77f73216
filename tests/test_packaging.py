"""The distribution: every package of the tree is listed, and a built wheel carries the weights."""

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from setuptools import find_packages

from t2i_cli.weights import read_manifest

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_of_the_tree_is_in_the_distribution():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set(find_packages(ROOT, include=["t2i_cli*", "srcnn*", "ganbert*"]))
    assert found <= listed and "t2i_weights" in listed


@pytest.mark.slow
def test_the_wheel_carries_every_shipped_weights_file(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True)
    [wheel] = tmp_path.glob("t2i-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for relative in read_manifest()["files"]:
        assert f"t2i_weights/{relative}" in names, relative
    assert "t2i_weights/flowers-gan/config.json" in names and "t2i_weights/MANIFEST.json" in names
