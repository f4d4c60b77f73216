"""The Trainer on its own: batches made in memory, no data file, no run (issue 26's unit test)."""

import pytest
import torch

from t2i_cli.config import ModelConfig, TrainConfig, arch_defaults, run_model
from t2i_cli.data.batches import Batch
from t2i_cli.models import build_models
from t2i_cli.training.trainer import SampleSet, Trainer

EMBEDDING = 8
SIZE = 16


def batch(seed: int, n: int = 4) -> Batch:
    """What every loader yields: uint8 images, a mismatched image each, caption embeddings, classes."""
    draws = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, SIZE, SIZE), dtype=torch.uint8, generator=draws)
    return Batch(image=images, wrong_image=images.roll(1, 0), embedding=torch.randn(n, EMBEDDING, generator=draws),
                 class_index=torch.tensor([0, 1, 0, 1][:n]), index=torch.arange(n))


def trainer(arch: str, tmp_path, **overrides) -> Trainer:
    model_preset, train_preset = arch_defaults(arch)
    config = TrainConfig(**{**train_preset, "data": "", "batch_size": 4, "amp": "off", "channels_last": "off", "device": "cpu",
                            "seed": 0, **overrides})
    model_preset.update(ngf=4, ndf=4, image_size=SIZE, embedding_dim=EMBEDDING)
    model_config = run_model(ModelConfig(arch=arch, **model_preset), config)  # per-sample norms for a per-sample penalty
    torch.manual_seed(0)
    generator, discriminator = build_models(model_config)
    return Trainer(generator=generator, discriminator=discriminator, loader=[batch(0), batch(1)], loader_generator=torch.Generator(),
                   config=config, model_config=model_config, run_dir=tmp_path, device=torch.device("cpu"), encoder=None,
                   samples=SampleSet(["a flower"], torch.randn(1, EMBEDDING)))


@pytest.mark.parametrize("arch, overrides", [
    ("dcgan", {}),  # GAN-INT-CLS: the gan step
    ("dcgan", {"gan_type": "wgan", "gradient_penalty": 10.0}),  # critic steps only: G waits 100 at first
    ("dfgan", {"diffaug": "translation,cutout"}),  # the hinge step with MA-GP
])
def test_a_trainer_steps_on_batches_made_in_memory(tmp_path, arch, overrides):
    run = trainer(arch, tmp_path, **overrides)
    before = [p.detach().clone() for p in run.G.parameters()]
    for step in range(3):
        stats = run.train_step(batch(step))
        assert torch.isfinite(stats["d_loss"]), stats
    assert run.state.step == 3
    if run.config.wasserstein:  # Arjovsky et al.'s warm-up: 100 critic steps before G's first
        assert run.state.generator_steps == 0 and run.state.critic_steps == 3
    else:
        assert run.state.generator_steps == 3
        assert any(not torch.equal(a, b) for a, b in zip(before, run.G.parameters()))  # G learnt something
    again = trainer(arch, tmp_path / "again", **overrides)
    for step in range(3):
        repeated = again.train_step(batch(step))
    assert torch.equal(repeated["d_loss"], stats["d_loss"])  # seeded: the same steps give the same losses
