"""DF-GAN architecture, the hinge / MA-GP losses and DiffAugment, on tiny CPU configs."""

import json

from pathlib import Path

import pytest
import torch

from conftest import tiny_train_config
from t2i_cli import checkpoint
from t2i_cli.config import ModelConfig, arch_defaults
from t2i_cli.errors import T2IError
from t2i_cli.models import build_generator, build_models
from t2i_cli.models.dfgan import Affine, FusionBlock, UpBlock
from t2i_cli.pipeline import T2IPipeline
from t2i_cli.training import losses
from t2i_cli.training.diffaug import cutout, diff_augment, translate
from t2i_cli.training.run import train

TINY_DFGAN = {"arch": "dfgan", "ngf": 4, "ndf": 4, "fusion_hidden": 8}


def tiny_dfgan_config(data, **overrides):
    _, preset = arch_defaults("dfgan")
    return tiny_train_config(data, **{**preset, "batch_size": 4, **overrides})


# --- the architecture ---------------------------------------------------------------------------


def test_fusion_blocks_keep_shapes_and_start_as_the_identity():
    condition, features = torch.randn(3, 20), torch.randn(3, 6, 5, 5)
    affine = Affine(20, 6, hidden=8)
    assert torch.equal(affine(features, condition), features)  # gamma = 1, beta = 0 at the start
    with torch.no_grad():
        affine.gamma[-1].bias.fill_(2.0)
        affine.beta[-1].bias.fill_(0.5)
    assert torch.allclose(affine(features, condition), 2 * features + 0.5)
    assert FusionBlock(20, 6, hidden=8)(features, condition).shape == (3, 6, 5, 5)
    up = UpBlock(20, 6, 4, hidden=8)
    assert up(features, condition).shape == (3, 4, 10, 10)


@pytest.mark.parametrize("size", [64, 128])
def test_dfgan_shapes(size):
    config = ModelConfig(image_size=size, embedding_dim=16, **TINY_DFGAN)
    G, D = build_models(config)
    images, extra = G(torch.randn(3, 100), torch.randn(3, 16))
    assert images.shape == (3, 3, size, size) and extra is None
    assert images.min() >= -1 and images.max() <= 1
    assert len(G.blocks) == (4 if size == 64 else 5)
    scores, features = D(images, torch.randn(3, 16))
    assert scores.shape == (3,) and features.shape == (3, 8 * 4, 4, 4)


def test_an_untrained_discriminator_already_sees_detail_finer_than_its_pooling():
    """Fine texture with the same local means must move D's features from the first step, or G
    is only ever asked for blocks of the right average colour (the blocky samples of gamma = 0)."""
    torch.manual_seed(0)
    _, D = build_models(ModelConfig(embedding_dim=16, **TINY_DFGAN))
    flat = torch.rand(2, 3, 64, 64) * 2 - 1
    checker = (torch.arange(64)[:, None] + torch.arange(64)[None, :]) % 2 * 2 - 1  # zero mean over any 2x2
    textured = flat + 0.5 * checker
    with torch.no_grad():
        base, moved = D.image_features(flat), D.image_features(textured)
        change = (moved - base).norm() / base.norm()
        for block in D.blocks:
            block.gamma.zero_()  # every block its shortcut: a linear map of pooled averages
        change_without_residuals = (D.image_features(textured) - D.image_features(flat)).norm() / D.image_features(flat).norm()
    assert change > 0.02 and change > 10 * change_without_residuals, (change, change_without_residuals)


def test_dfgan_uses_caption_and_noise_and_its_discriminator_parts_compose():
    G, D = build_models(ModelConfig(embedding_dim=16, **TINY_DFGAN))
    # Move the affine heads off their identity start, as training does.
    with torch.no_grad():
        for name, p in G.named_parameters():
            if ".gamma.2.weight" in name or ".beta.2.weight" in name:
                p.normal_(0, 0.1)
    z, e = torch.randn(2, 100), torch.randn(2, 16)
    base = G(z, e)[0]
    assert not torch.allclose(base, G(z, e.flip(0))[0])
    assert not torch.allclose(base, G(z.flip(0), e)[0])
    x = torch.randn(2, 3, 64, 64)
    assert torch.allclose(D(x, e)[0], D.score(D.image_features(x), D.caption_input(e)))
    with pytest.raises(ValueError, match="conditional"):
        G(z)


def test_dfgan_is_chosen_by_the_config_and_refuses_unconditional():
    assert type(build_generator(ModelConfig(embedding_dim=16, **TINY_DFGAN))).__module__ == "t2i_cli.models.dfgan"
    assert type(build_generator(ModelConfig(ngf=8, ndf=8, embedding_dim=16))).__module__ == "t2i_cli.models.dcgan"
    with pytest.raises(T2IError, match="fuses the caption into every block"):
        build_models(ModelConfig(conditional=False, **TINY_DFGAN))
    with pytest.raises(T2IError, match="conditioning_augmentation is a setting of the dcgan architecture, not of dfgan: drop it"):
        ModelConfig(conditioning_augmentation=True, **TINY_DFGAN).validate()
    with pytest.raises(T2IError, match="fusion_hidden is a setting of the dfgan architecture, not of dcgan"):
        ModelConfig(fusion_hidden=8).validate()
    with pytest.raises(T2IError, match="architecture must be one of"):
        ModelConfig(arch="stylegan").validate()


# --- losses ----------------------------------------------------------------------------------


def test_hinge_losses_on_hand_made_scores():
    real, fake, mismatched = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0]), torch.tensor([1.0, -3.0])
    loss, stats = losses.hinge_discriminator_loss(real, fake, mismatched)
    # real: relu(1 - [2, .5]) = [0, .5] -> .25; fake: relu(1 + [-2, 0]) = [0, 1] -> .5;
    # mismatched: relu(1 + [1, -3]) = [2, 0] -> 1; total .25 + (.5 + 1) / 2 = 1.0
    assert loss.item() == pytest.approx(1.0)
    assert stats["d_real"].item() == pytest.approx(0.25) and stats["d_mismatched"].item() == pytest.approx(1.0)
    assert losses.hinge_discriminator_loss(real, fake)[0].item() == pytest.approx(0.75)
    # Masked pairs leave the mean; with none left the mismatched term is 0 and the weights stay.
    masked, stats = losses.hinge_discriminator_loss(real, fake, mismatched, mismatched_mask=torch.tensor([False, True]))
    assert stats["d_mismatched"].item() == 0.0 and masked.item() == pytest.approx(0.25 + 0.5 * 0.5)
    masked, stats = losses.hinge_discriminator_loss(real, fake, mismatched, mismatched_mask=torch.tensor([True, False]))
    assert stats["d_mismatched"].item() == pytest.approx(2.0) and masked.item() == pytest.approx(0.25 + 0.5 * 2.5)
    none = losses.hinge_discriminator_loss(real, fake, mismatched, mismatched_mask=torch.zeros(2, dtype=torch.bool))[0]
    assert none.item() == pytest.approx(0.5)
    assert losses.hinge_generator_loss(torch.tensor([1.0, 3.0]))[0].item() == pytest.approx(-2.0)


def test_matching_aware_gradient_penalty_on_a_linear_critic():
    # score = <w, image> + <v, caption>: the gradient is (w, v) for every sample, so the penalty
    # is ||(w, v)||^p exactly.
    w, v = torch.full((1, 3, 2, 2), 0.5), torch.tensor([1.0, -2.0])
    images = torch.randn(4, 3, 2, 2, requires_grad=True)
    captions = torch.randn(4, 2, requires_grad=True)
    scores = (images * w).flatten(1).sum(1) + captions @ v
    penalty, stats = losses.matching_aware_gradient_penalty(scores, images, captions, power=6.0)
    norm = (12 * 0.25 + 1 + 4) ** 0.5  # sqrt(8)
    assert stats["grad_norm"].item() == pytest.approx(norm)
    assert penalty.item() == pytest.approx(norm**6)  # 512
    assert losses.matching_aware_gradient_penalty(
        (images * w).flatten(1).sum(1) + captions @ v, images, captions, power=2.0
    )[0].item() == pytest.approx(8.0)


def test_matching_aware_gradient_penalty_has_a_finite_gradient_at_a_flat_critic():
    images, captions = torch.randn(2, 3, requires_grad=True), torch.randn(2, 1, requires_grad=True)
    weight = torch.zeros(4, requires_grad=True)  # a critic with zero slope everywhere
    scores = torch.cat([images, captions], 1) @ weight
    penalty, _ = losses.matching_aware_gradient_penalty(scores, images, captions)
    (grad,) = torch.autograd.grad(penalty, weight)
    assert penalty.item() == 0.0 and torch.isfinite(grad).all()


def test_matching_aware_gradient_penalty_trains_the_critic():
    critic = torch.nn.Linear(5, 1)
    images = torch.randn(3, 4, requires_grad=True)
    captions = torch.randn(3, 1, requires_grad=True)
    scores = critic(torch.cat([images, captions], 1)).view(-1)
    penalty, _ = losses.matching_aware_gradient_penalty(scores, images, captions, power=2.0)
    penalty.backward()
    # d/dW ||W||^2 = 2W: the penalty's own gradient reaches the weights (double backward).
    assert torch.allclose(critic.weight.grad, 2 * critic.weight.detach())


# --- DiffAugment ------------------------------------------------------------------------------


def coded_images(b=6, size=16):
    """Images whose every pixel value is unique (and non-zero), so a shift can be read back."""
    return (torch.arange(b * 3 * size * size, dtype=torch.float32) + 1).view(b, 3, size, size)


def test_translation_shifts_whole_images_with_zero_fill():
    images = coded_images()
    shifted = translate(images, generator=torch.Generator().manual_seed(3))
    assert shifted.shape == images.shape
    for source, out in zip(images, shifted):
        kept = out != 0
        assert kept.any()
        # Every kept pixel comes from one (dy, dx) offset of the source, at most 2 px (1/8 of 16).
        positions = torch.nonzero(kept[0])
        origin = torch.nonzero(source[0].unsqueeze(0) == out[0][kept[0]].view(-1, 1, 1))[:, 1:]
        offsets = positions - origin
        assert (offsets == offsets[0]).all() and offsets[0].abs().max() <= 2
        assert torch.equal(out[:, kept[0]], source[:, origin[:, 0], origin[:, 1]])
        # Zeros exactly where the source is out of view.
        dy, dx = offsets[0].tolist()
        assert int(kept[0].sum()) == (16 - abs(dy)) * (16 - abs(dx))


def test_translation_keeps_the_memory_layout():
    images = torch.randn(2, 3, 16, 16)
    assert translate(images).is_contiguous()
    nhwc = images.contiguous(memory_format=torch.channels_last)
    assert translate(nhwc).is_contiguous(memory_format=torch.channels_last)


def test_cutout_zeroes_one_box_of_half_the_side_at_most():
    images = torch.ones(32, 3, 16, 16)
    cut = cutout(images, generator=torch.Generator().manual_seed(0))
    zeros = cut[:, 0] == 0
    assert torch.equal(zeros, (cut == 0).all(1))  # all channels alike
    for mask in zeros:
        rows, cols = mask.any(1).nonzero().view(-1), mask.any(0).nonzero().view(-1)
        assert 1 <= len(rows) <= 8 and 1 <= len(cols) <= 8
        assert int(mask.sum()) == len(rows) * len(cols)  # a rectangle
    assert (zeros.sum((1, 2)) == 64).any()  # some boxes lie whole inside


def test_diffaug_is_reproducible_from_its_generator_and_differentiable():
    real, fake = torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16, requires_grad=True)
    policy = ("translation", "cutout")
    # Two calls from one generator state apply the very same shifts and boxes to both tensors.
    a = diff_augment(real, policy, generator=torch.Generator().manual_seed(7))
    b = diff_augment(fake, policy, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a == 0, b == 0)
    assert torch.equal(a, diff_augment(real, policy, generator=torch.Generator().manual_seed(7)))
    b.sum().backward()
    # The gradient is 1 where a fake pixel is still seen after the augmentation, 0 elsewhere.
    assert set(fake.grad.unique().tolist()) <= {0.0, 1.0} and fake.grad.sum() > 0
    assert diff_augment(real, ()) is real


def test_unknown_diffaug_policy_is_refused():
    with pytest.raises(T2IError, match="unknown DiffAugment policy 'color'"):
        tiny_train_config("x.h5", diffaug="translation,color").validate()


# --- training --------------------------------------------------------------------------------


def test_dfgan_with_diffaug_trains_and_generates_without_flags(tmp_path, flowers_h5):
    config = tiny_dfgan_config(flowers_h5, epochs=1, diffaug="translation,cutout")
    trainer = train(config, ModelConfig(**TINY_DFGAN), tmp_path / "run", progress=False)
    assert trainer.state.step == 2 and trainer.state.generator_steps == 2
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(k in rows[0] for k in ("d_real", "d_fake", "ma_gp", "grad_norm", "g_adv"))
    assert trainer.opt_D.param_groups[0]["lr"] == 4e-4 and trainer.opt_G.param_groups[0]["lr"] == 1e-4
    assert trainer.opt_D.param_groups[0]["betas"] == (0.0, 0.9)
    info = checkpoint.read_checkpoint(tmp_path / "run")
    assert info.model.arch == "dfgan" and info.train.gan_type == "hinge" and info.train.diffaug == "translation,cutout"
    pipe = T2IPipeline.from_pretrained(tmp_path / "run", device="cpu")
    result = pipe(["pink petals", "white petals"], num_images=2, seed=3)
    again = pipe(["pink petals"], num_images=2, seed=3)
    assert [im.size for im in result.images] == [(64, 64)] * 4
    assert [x.tobytes() for x in result.images[:2]] == [y.tobytes() for y in again.images]
    assert len(pipe.interpolate("pink petals", "white petals", steps=3).images) == 3


@pytest.mark.slow
def test_dfgan_resume_is_bit_exact_with_lazy_penalty_and_diffaug(tmp_path, flowers_h5):
    settings = dict(diffaug="translation,cutout", gp_every=2)
    model = ModelConfig(**TINY_DFGAN)
    straight = train(tiny_dfgan_config(flowers_h5, epochs=3, **settings), model, tmp_path / "straight", progress=False)
    train(tiny_dfgan_config(flowers_h5, epochs=1, **settings), model, tmp_path / "split", progress=False)
    resumed = train(tiny_dfgan_config(flowers_h5, **settings), model, tmp_path / "split", resume=True, overrides={"epochs": 3}, progress=False)
    assert resumed.state == straight.state
    for a, b in ((straight.G, resumed.G), (straight.D, resumed.D), (straight.G_ema, resumed.G_ema)):
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            assert torch.equal(x, y), name
    rows = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    assert ["ma_gp" in r for r in rows] == [True, False] * 3  # the lazy penalty on every 2nd step


@pytest.mark.slow
def test_diffaug_leaves_a_dcgan_run_unchanged_when_off_and_changes_it_when_on(tmp_path, flowers_h5):
    from conftest import TINY_MODEL

    plain = train(tiny_train_config(flowers_h5, epochs=1), ModelConfig(**TINY_MODEL), tmp_path / "a", progress=False)
    again = train(tiny_train_config(flowers_h5, epochs=1, diffaug=""), ModelConfig(**TINY_MODEL), tmp_path / "b", progress=False)
    augmented = train(tiny_train_config(flowers_h5, epochs=1, diffaug="translation"), ModelConfig(**TINY_MODEL), tmp_path / "c", progress=False)
    same = [torch.equal(x, y) for x, y in zip(plain.G.state_dict().values(), again.G.state_dict().values())]
    assert all(same)
    assert not all(torch.equal(x, y) for x, y in zip(plain.D.state_dict().values(), augmented.D.state_dict().values()))


@pytest.mark.slow
def test_hinge_with_the_dcgan_architecture_uses_per_sample_norms(tmp_path, flowers_h5):
    from conftest import TINY_MODEL

    trainer = train(tiny_train_config(flowers_h5, epochs=1, gan_type="hinge"), ModelConfig(**TINY_MODEL), tmp_path / "r", progress=False)
    assert checkpoint.read_checkpoint(tmp_path / "r").model.d_norm == "layer"
    assert trainer.state.step == 2


def test_drawing_upsamples_as_training_does():
    """The drawing path's upsampling (pixel repeats, for speed) gives F.interpolate's values exactly."""
    import torch.nn.functional as F

    from t2i_cli.models.dfgan import upsample_nearest

    x = torch.randn(3, 5, 7, 6)
    expected = F.interpolate(x, scale_factor=2, mode="nearest")
    with torch.inference_mode():
        assert torch.equal(upsample_nearest(x), expected)
        assert torch.equal(upsample_nearest(x.contiguous(memory_format=torch.channels_last)), expected)
    assert torch.equal(upsample_nearest(x.requires_grad_()), expected)  # training: F.interpolate itself


def test_building_without_initialisation_skips_only_inside_the_block_and_its_thread():
    import threading

    from torch import nn

    from t2i_cli.building import no_initialisation

    other = []
    with pytest.raises(RuntimeError), no_initialisation():
        torch.manual_seed(0)
        skipped = nn.Linear(8, 8, bias=False)
        worker = threading.Thread(target=lambda: other.append(nn.Embedding(1000, 8).weight.std().item()))
        worker.start()
        worker.join()
        raise RuntimeError("a failed build")
    assert 0.8 < other[0] < 1.2  # another thread's module drew its N(0, 1) weights meanwhile
    torch.manual_seed(0)
    fresh = nn.Linear(8, 8, bias=False).weight
    assert not torch.equal(skipped.weight, fresh)  # inside: left as allocated, not the seeded draw
    assert fresh.abs().sum() > 0  # drawn again once the block is left


def test_each_architecture_stores_its_own_settings_and_older_checkpoints_with_every_field_load(tmp_path, tiny_run):
    """A model section holds the shared fields and its architecture's own (SETTINGS beside each
    model); checkpoints from before held every field (the shipped DF-GAN's has mbd_kernels and a
    d_norm it never read), and still load as they were trained."""
    import json
    import shutil

    from t2i_cli.config import to_dict
    from t2i_cli.models import ARCH_SETTINGS
    from t2i_cli.sampling import load_generator

    stored = to_dict(ModelConfig(**TINY_DFGAN))
    assert "fusion_hidden" in stored and not set(ARCH_SETTINGS["dcgan"]) & set(stored)
    assert "d_norm" in to_dict(ModelConfig()) and "fusion_hidden" not in to_dict(ModelConfig())
    shipped = json.loads((Path(__file__).resolve().parents[1] / "weights" / "flowers-gan" / "config.json").read_text())["model"]
    assert shipped["arch"] == "dfgan" and "mbd_kernels" in shipped and shipped["d_norm"] == "layer"  # written before
    generator, info = load_generator(Path(__file__).resolve().parents[1] / "weights" / "flowers-gan")
    assert info.model.fusion_hidden == shipped["fusion_hidden"] and info.model.ngf == shipped["ngf"]
    # A dcgan checkpoint of before, with the dfgan fields at their defaults: loads, draws the same.
    folder = tmp_path / "before"
    shutil.copytree(checkpoint.read_checkpoint(tiny_run).path, folder)
    config = json.loads((folder / "config.json").read_text())
    config["model"]["fusion_hidden"] = 256
    (folder / "config.json").write_text(json.dumps(config))
    old, _ = load_generator(folder)
    new, _ = load_generator(tiny_run)
    noise, embedding = torch.randn(2, 100), torch.randn(2, 384)
    assert torch.equal(old(noise, embedding)[0], new(noise, embedding)[0])
