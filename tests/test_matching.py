"""G's caption-matching loss: the formula, and a run that trains with its frozen encoder."""

import dataclasses
import json

import pytest
import torch

from conftest import TINY_MODEL, tiny_train_config
from t2i_cli.checkpoint import RunFolder
from t2i_cli.config import ModelConfig
from t2i_cli.evaluation.image_encoder import ImageEncoder
from t2i_cli.training import losses, matching
from t2i_cli.training.run import train


def test_matching_loss_rewards_each_image_nearest_its_own_caption():
    captions = torch.eye(4)
    perfect, stats = losses.caption_matching_loss(captions.clone(), captions, temperature=0.01)
    assert perfect.item() == pytest.approx(0.0, abs=1e-6) and stats["match_accuracy"].item() == 1.0
    swapped, stats = losses.caption_matching_loss(captions.roll(1, 0), captions, temperature=0.01)
    assert swapped.item() > 50 and stats["match_accuracy"].item() == 0.0
    # Uniform similarity: chance, log(B) in both directions.
    chance, _ = losses.caption_matching_loss(torch.ones(4, 4), captions, temperature=1.0)
    assert chance.item() == pytest.approx(torch.log(torch.tensor(4.0)).item())


def test_matching_loss_leaves_same_class_captions_out_of_the_candidates():
    # Rows 0 and 1 are of one class with the same caption: without labels each image cannot tell
    # its caption from the other's (loss ~log 2 for those rows); with labels they are not rivals.
    captions = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    images = captions.clone()
    blind, _ = losses.caption_matching_loss(images, captions, temperature=0.01)
    aware, stats = losses.caption_matching_loss(images, captions, labels=torch.tensor([5, 5, 7]), temperature=0.01)
    assert blind.item() == pytest.approx(2 / 3 * torch.log(torch.tensor(2.0)).item(), rel=1e-3)
    assert aware.item() == pytest.approx(0.0, abs=1e-6) and stats["match_accuracy"].item() == 1.0


@pytest.fixture()
def tiny_match_encoder(monkeypatch, tmp_path):
    monkeypatch.setattr(matching, "MATCH_ENCODER", dataclasses.replace(matching.MATCH_ENCODER, width=8, steps=3, batch_size=4))
    monkeypatch.setenv("T2I_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["dcgan", "dfgan"])
def test_a_run_with_the_matching_loss_trains_stores_its_encoder_and_resumes(tmp_path, flowers_h5, tiny_match_encoder, arch):
    import shutil

    model = ModelConfig(**TINY_MODEL) if arch == "dcgan" else ModelConfig(arch="dfgan", ngf=4, ndf=4, fusion_hidden=8)
    extra = {} if arch == "dcgan" else {"gan_type": "hinge"}
    run = tmp_path / "run"
    trainer = train(tiny_train_config(flowers_h5, epochs=1, match_coef=0.5, **extra), model, run, progress=False)
    assert isinstance(trainer.matcher, matching.MatchEncoder) and not isinstance(trainer.matcher, ImageEncoder)
    assert not any(p.requires_grad for p in trainer.matcher.parameters())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all("match" in r and "match_accuracy" in r for r in rows)
    assert (RunFolder(run).match_encoder / "config.json").is_file()
    frozen = {k: v.clone() for k, v in trainer.matcher.state_dict().items()}
    shutil.rmtree(tmp_path / "cache")  # resuming needs only the run folder
    resumed = train(tiny_train_config(flowers_h5), ModelConfig(), run, resume=True, overrides={"epochs": 2}, progress=False)
    assert resumed.state.epoch == 2
    assert all(torch.equal(frozen[k], v) for k, v in resumed.matcher.state_dict().items())
