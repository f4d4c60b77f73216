"""benchmarks/colour_probe.py: it finds the colour where an encoder keeps it, and only there."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from t2i_cli.data.convert import reembed
from t2i_cli.data.h5 import CaptionImageFile, CaptionImageWriter
from t2i_cli.evaluation.colour import COLOURS, petal_colours
from t2i_cli.text.encoder import EncoderIdentity, TextEncoder

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


class _Named(TextEncoder):
    """Test encoders of 16-d embeddings: one that writes the named petal colour into them, one that
    keeps nothing of the caption."""

    def __init__(self, keeps_colour: bool):
        self.keeps_colour = keeps_colour
        self.identity = EncoderIdentity(name=f"colour-{keeps_colour}", dim=16, revision="test")

    def encode(self, captions, *, batch_size=128):
        rows = torch.full((len(captions), 16), 0.1)
        if self.keeps_colour:
            for row, caption in zip(rows, captions):
                for name in petal_colours(caption):
                    row[COLOURS.index(name)] += 1.0
        return rows


@pytest.fixture()
def colour_probe(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import colour_probe

    return colour_probe


@pytest.mark.parametrize("keeps_colour", [True, False])
def test_the_probe_reads_colour_only_from_an_encoder_that_keeps_it(flowers_h5, tmp_path, colour_probe, keeps_colour):
    data = tmp_path / "flowers.h5"
    shutil.copy(flowers_h5, data)
    reembed(data, encoder=_Named(keeps_colour), progress=False)
    result = colour_probe.probe(data, "valid")

    assert result["encoder"].startswith(f"colour-{keeps_colour}")
    assert result["train_captions"] > 0 and result["eval_captions"] > 0
    if keeps_colour:
        assert result["nearest_centroid"] == result["linear"] == 1.0
    else:  # identical embeddings: every caption gets the same colour, at best the commonest one
        assert result["linear"] <= result["majority"] and result["nearest_centroid"] <= result["majority"]
    assert result["majority"] < 1.0, "the fixture's valid captions should name more than one colour"


def _probe_cli(tmp_path, data):
    return subprocess.run([sys.executable, str(BENCHMARKS / "colour_probe.py"), "--data", str(data),
                           "--json", str(tmp_path / "out.json")], capture_output=True, text=True)


def test_the_probe_refuses_a_missing_file_in_one_line(tmp_path):
    missing = tmp_path / "missing.h5"
    done = _probe_cli(tmp_path, missing)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [f"Error: data file {missing} does not exist"]


def test_the_probe_refuses_a_split_with_nothing_to_score_in_one_line(tmp_path, flowers_h5):
    train_only = tmp_path / "train-only.h5"
    with CaptionImageFile(flowers_h5) as source, CaptionImageWriter(train_only, encoder=source.encoder) as writer:
        for example in source.examples("train"):
            writer.add("train", example)
    done = _probe_cli(tmp_path, train_only)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == \
        [f"Error: {train_only}'s valid split has no caption that names one petal colour: nothing to probe"]
    assert not (tmp_path / "out.json").exists()
