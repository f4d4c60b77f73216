"""The GAN loss formulas on their own, with hand-made scores."""

import math

import pytest
import torch

from t2i_cli.training import losses


def scores(value, n=8):
    return torch.full((n,), float(value))


def test_cls_term_rises_when_wrong_pairs_score_as_real():
    low, _ = losses.discriminator_loss(scores(4), scores(-4), scores(-4))
    high, stats = losses.discriminator_loss(scores(4), scores(-4), scores(4))
    assert high > low + 1.5
    assert stats["d_wrong"] > 4


def test_reed_weighting_real_plus_half_wrong_plus_half_fake():
    real, fake, wrong = scores(1.0), scores(-0.5), scores(0.3)
    loss, stats = losses.discriminator_loss(real, fake, wrong, label_smoothing=1.0)
    expected = stats["d_real"] + 0.5 * stats["d_wrong"] + 0.5 * stats["d_fake"]
    assert loss.item() == pytest.approx(expected.item())
    weighted, _ = losses.discriminator_loss(real, fake, wrong, label_smoothing=1.0, wrong_weight=1.0, fake_weight=0.25)
    assert weighted.item() == pytest.approx((stats["d_real"] + stats["d_wrong"] + 0.25 * stats["d_fake"]).item())
    without_cls, _ = losses.discriminator_loss(real, fake, label_smoothing=1.0)
    assert without_cls.item() == pytest.approx((stats["d_real"] + stats["d_fake"]).item())


def test_one_sided_label_smoothing_targets_point_nine():
    logits = torch.linspace(-1, 5, 601, requires_grad=True)
    best = None
    for logit in logits:
        loss, _ = losses.discriminator_loss(logit.view(1), scores(-20, 1))
        best = min(best or (loss.item(), logit.item()), (loss.item(), logit.item()))
    assert best[1] == pytest.approx(math.log(0.9 / 0.1), abs=0.02)  # sigmoid(logit) = 0.9


def test_generator_loss_falls_as_fakes_look_real():
    assert losses.generator_loss(scores(3))[0] < losses.generator_loss(scores(-3))[0]
    assert losses.generator_critic_loss(scores(3))[0] < losses.generator_critic_loss(scores(-3))[0]


def test_critic_loss_is_the_negative_wasserstein_estimate():
    loss, stats = losses.critic_loss(scores(2.0), scores(-1.0))
    assert loss.item() == pytest.approx(-3.0) and stats["wasserstein"].item() == pytest.approx(3.0)
    loss, _ = losses.critic_loss(scores(2.0), scores(-1.0), scores(1.0))
    assert loss.item() == pytest.approx(-2.0 + 0.5 * -1.0 + 0.5 * 1.0)


def test_gradient_penalty_is_zero_for_unit_norm_gradients_over_all_pixels():
    torch.manual_seed(0)
    real, fake = torch.randn(6, 3, 8, 8), torch.randn(6, 3, 8, 8)
    w = torch.randn(3, 8, 8)
    unit = w / w.norm()  # the critic's gradient has norm 1 over the whole image
    penalty, stats = losses.gradient_penalty(lambda x: (x * unit).flatten(1).sum(1), real, fake)
    assert penalty.item() == pytest.approx(0.0, abs=1e-10)
    assert stats["grad_norm"].item() == pytest.approx(1.0)
    doubled, _ = losses.gradient_penalty(lambda x: (x * 2 * unit).flatten(1).sum(1), real, fake)
    assert doubled.item() == pytest.approx(1.0)
    # Unit norm per pixel over channels only (what the reference computed) is not unit overall.
    per_pixel = w / w.norm(dim=0, keepdim=True)
    wrong_norm, _ = losses.gradient_penalty(lambda x: (x * per_pixel).flatten(1).sum(1), real, fake)
    assert wrong_norm.item() == pytest.approx((8.0 - 1.0) ** 2)


def test_gradient_penalty_gradients_reach_the_critic():
    weight = torch.ones(1, requires_grad=True)
    real, fake = torch.randn(4, 3, 4, 4), torch.randn(4, 3, 4, 4)
    penalty, _ = losses.gradient_penalty(lambda x: weight * x.flatten(1).sum(1), real, fake)
    penalty.backward()
    assert weight.grad is not None and weight.grad.abs() > 0


def test_interpolated_embeddings_mix_each_caption_with_another():
    e = torch.eye(4)
    mixed = losses.interpolated_embeddings(e, 0.5)
    assert torch.allclose(mixed[1], 0.5 * e[1] + 0.5 * e[0])
    assert torch.allclose(losses.interpolated_embeddings(e, 0.25)[2], 0.25 * e[2] + 0.75 * e[1])


def test_feature_matching_l1_and_kl():
    f = torch.randn(4, 16, 4, 4)
    assert losses.feature_matching(f, f.clone())[0].item() == 0
    assert losses.feature_matching(f, f + 1)[0].item() == pytest.approx(1.0)
    assert losses.l1_to_image(torch.zeros(2, 3), torch.ones(2, 3))[0].item() == 1.0
    zero, _ = losses.kl_divergence(torch.zeros(4, 8), torch.zeros(4, 8))
    assert zero.item() == 0
    assert losses.kl_divergence(torch.ones(4, 8), torch.zeros(4, 8))[0].item() == pytest.approx(0.5)
