"""MSG-GAN (--msg): pyramids out of G and into D for both architectures, their augmentation, the
penalty over every level, and training that resumes bit-exactly."""

import pytest
import torch
from typer.testing import CliRunner

from conftest import TINY_MODEL, tiny_train_config
from t2i_cli.checkpoint import read_checkpoint
from t2i_cli.cli import app
from t2i_cli.config import ModelConfig, arch_defaults
from t2i_cli.models import build_models
from t2i_cli.models.pyramid import image_pyramid
from t2i_cli.training import losses
from t2i_cli.training.diffaug import diff_augment
from t2i_cli.training.run import train
from test_cli import assert_one_line_error

TINY = {"dcgan": {**TINY_MODEL, "d_norm": "layer"}, "dfgan": {"arch": "dfgan", "ngf": 4, "ndf": 4, "fusion_hidden": 8}}


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("arch", ["dcgan", "dfgan"])
@pytest.mark.parametrize("size", [32, 64])
def test_generator_draws_every_side_in_training_and_one_image_in_eval(arch, size):
    torch.manual_seed(0)
    G, D = build_models(ModelConfig(**TINY[arch], image_size=size, msg=True))
    noise, captions = torch.randn(2, 100), torch.randn(2, 384)
    pyramid, _ = G.train()(noise, captions)
    assert [tuple(level.shape) for level in pyramid] == [(2, 3, s, s) for s in [size >> k for k in range(len(pyramid))]]
    assert pyramid[-1].shape[-1] == 4 and all(level.abs().max() <= 1 for level in pyramid)
    image, _ = G.eval()(noise, captions)
    assert torch.equal(image, G.eval()(noise, captions)[0]) and image.shape == (2, 3, size, size)
    if arch == "dfgan":  # no batch statistics: the eval image is the training pyramid's finest level
        assert torch.allclose(image, pyramid[0], atol=1e-6)
    scores, features = D(pyramid, captions)
    assert scores.shape == (2,) and features.shape[1] == D.feature_width
    # Every level reaches D's verdict.
    grads = torch.autograd.grad(scores.sum(), pyramid)
    assert all(g.abs().sum() > 0 for g in grads)
    # A plain batch is pooled into its pyramid.
    real = torch.rand(2, 3, size, size) * 2 - 1
    assert torch.allclose(D(real, captions)[0], D(image_pyramid(real), captions)[0])


# Sums of a seeded model's outputs, measured before MSG existed (commit 07dd773): image, D scores, D features.
BEFORE_MSG = {"dcgan": (0.3512541132104996, 0.586552232503891, 587.052481911931),
              "dfgan": (1423.4612728635548, 0.030866466462612152, 65.94584491220303)}


@pytest.mark.parametrize("arch", ["dcgan", "dfgan"])
def test_without_msg_the_models_and_their_weights_are_as_before(arch):
    torch.manual_seed(0)
    G, D = build_models(ModelConfig(**TINY[arch]))
    assert not any("side_rgb" in name for name in G.state_dict())
    noise = torch.randn(2, 100, generator=torch.Generator().manual_seed(1))
    captions = torch.randn(2, 384, generator=torch.Generator().manual_seed(2))
    image, _ = G.eval()(noise, captions)
    scores, features = D.eval()(image, captions)
    sums = (image.double().sum().item(), scores.double().sum().item(), features.double().sum().item())
    assert sums == pytest.approx(BEFORE_MSG[arch], rel=1e-4)
    image, _ = G.train()(noise, captions)
    assert isinstance(image, torch.Tensor)
    _, msg_d = build_models(ModelConfig(**TINY[arch], msg=True))
    changed = {k for k, v in D.state_dict().items() if v.shape != msg_d.state_dict()[k].shape}
    assert changed and set(D.state_dict()) <= set(msg_d.state_dict())  # wider where RGB joins (plus shortcuts that must now change width)


def test_a_pyramid_is_augmented_with_one_draw_for_every_level():
    real = image_pyramid(torch.ones(3, 3, 32, 32))
    policy = ("translation", "cutout")
    augmented = diff_augment(real, policy, generator=torch.Generator().manual_seed(4))
    # The finest level gets exactly what a plain batch gets from the same generator state.
    assert torch.equal(augmented[0], diff_augment(real[0], policy, generator=torch.Generator().manual_seed(4)))
    # A generated pyramid with the same draws loses the same pixels at every level.
    fake = [torch.full_like(level, 0.5).requires_grad_(True) for level in real]
    fake_augmented = diff_augment(fake, policy, generator=torch.Generator().manual_seed(4))
    for a, b in zip(augmented, fake_augmented):
        assert torch.equal(a == 0, b == 0)
    # The hidden share of each image is about the same at every side (scaled shifts and boxes).
    hidden = [(level == 0).float().mean(dim=(1, 2, 3)) for level in augmented[:-1]]
    for share in hidden[1:]:
        assert torch.allclose(share, hidden[0], atol=0.2)
    sum(level.sum() for level in fake_augmented).backward()
    assert all(level.grad.sum() > 0 for level in fake)


def test_matching_aware_penalty_sums_the_gradient_over_every_level():
    levels = [torch.randn(2, 3, 4, 4, requires_grad=True), torch.randn(2, 3, 2, 2, requires_grad=True)]
    captions = torch.randn(2, 5, requires_grad=True)
    # A linear critic: score = 2 * sum(level 0) + 1 * sum(level 1) + 3 * sum(caption).
    scores = 2 * levels[0].sum((1, 2, 3)) + levels[1].sum((1, 2, 3)) + 3 * captions.sum(1)
    penalty, stats = losses.matching_aware_gradient_penalty(scores, levels, captions, power=2)
    squares = 4 * 48 + 1 * 12 + 9 * 5  # per sample
    assert penalty.item() == pytest.approx(squares) and stats["grad_norm"].item() == pytest.approx(squares**0.5)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["dcgan", "dfgan"])
def test_msg_training_resumes_bit_exactly(tmp_path, flowers_h5, arch):
    model = ModelConfig(**TINY[arch], msg=True)
    _, preset = arch_defaults(arch)
    preset = {**preset, "batch_size": 4} if arch == "dfgan" else {}
    settings = dict(preset, diffaug="translation,cutout")
    straight = train(tiny_train_config(flowers_h5, epochs=2, **settings), model, tmp_path / "straight", progress=False)
    train(tiny_train_config(flowers_h5, epochs=1, **settings), model, tmp_path / "split", progress=False)
    resumed = train(tiny_train_config(flowers_h5, **settings), model, tmp_path / "split", resume=True, overrides={"epochs": 2}, progress=False)
    for a, b in ((straight.G, resumed.G), (straight.D, resumed.D), (straight.G_ema, resumed.G_ema)):
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            assert torch.equal(x, y), name
    assert read_checkpoint(tmp_path / "split").model.msg


@pytest.mark.slow
def test_msg_through_the_cli_then_generate(tmp_path, flowers_h5):
    out = tmp_path / "run"
    result = run("train", "--data", flowers_h5, "--out", out, "--arch", "dfgan", "--msg", "--ngf", 4, "--ndf", 4,
                 "--batch-size", 4, "--epochs", 1, "-q", "--device", "cpu")
    assert result.exit_code == 0, result.output
    generated = run("generate", "pink petals", "-c", out, "-n", 2, "--out", tmp_path / "pink.png")
    assert generated.exit_code == 0, generated.output
    assert_one_line_error(run("train", "--data", flowers_h5, "--out", tmp_path / "w", "--msg", "--type", "wgan", "--gp", 10, "-q"),
                          "MSG-GAN works with the gan and hinge types")
