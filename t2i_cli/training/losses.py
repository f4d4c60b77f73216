"""GAN-INT-CLS losses as pure functions: scores/features in, ``(loss, stats)`` out.

Scores are raw logits (GAN) or critic values (WGAN); nothing here touches a model or an optimizer,
so every formula is tested on its own.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

# Detached tensors, not floats: reading a value forces a host sync, so the trainer does it only
# when it logs.
Stats = dict[str, torch.Tensor]


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def discriminator_loss(
    real: torch.Tensor,
    fake: torch.Tensor,
    wrong: torch.Tensor | None = None,
    *,
    label_smoothing: float = 0.9,
    wrong_weight: float = 0.5,
    fake_weight: float = 0.5,
) -> tuple[torch.Tensor, Stats]:
    """Matching-aware D loss (Reed et al. 2016, GAN-CLS).

    ``real``: D(real image, its caption) -> target ``label_smoothing`` (one-sided smoothing);
    ``fake``: D(G(z, caption), caption) -> 0; ``wrong``: D(real image, another class's caption) -> 0.
    Loss = real + wrong_weight * wrong + fake_weight * fake; without ``wrong`` (plain conditional
    or unconditional GAN) it is real + fake.
    """
    loss_real, loss_fake = _bce(real, label_smoothing), _bce(fake, 0.0)
    stats = {"d_real": loss_real.detach(), "d_fake": loss_fake.detach()}
    if wrong is None:
        return loss_real + loss_fake, stats
    loss_wrong = _bce(wrong, 0.0)
    stats["d_wrong"] = loss_wrong.detach()
    return loss_real + wrong_weight * loss_wrong + fake_weight * loss_fake, stats


def generator_loss(fake: torch.Tensor) -> tuple[torch.Tensor, Stats]:
    """Non-saturating G loss: -log D(G(z, caption), caption)."""
    loss = _bce(fake, 1.0)
    return loss, {"g_adv": loss.detach()}


def critic_loss(
    real: torch.Tensor,
    fake: torch.Tensor,
    wrong: torch.Tensor | None = None,
    *,
    wrong_weight: float = 0.5,
    fake_weight: float = 0.5,
) -> tuple[torch.Tensor, Stats]:
    """WGAN critic loss, matching-aware: mismatched pairs are pushed down like fakes."""
    loss = -real.mean()
    stats = {"critic_real": real.mean().detach(), "critic_fake": fake.mean().detach()}
    if wrong is None:
        loss = loss + fake.mean()
    else:
        loss = loss + fake_weight * fake.mean() + wrong_weight * wrong.mean()
        stats["critic_wrong"] = wrong.mean().detach()
    stats["wasserstein"] = (real.mean() - fake.mean()).detach()
    return loss, stats


def generator_critic_loss(fake: torch.Tensor) -> tuple[torch.Tensor, Stats]:
    loss = -fake.mean()
    return loss, {"g_adv": loss.detach()}


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, Stats]:
    """WGAN-GP (Gulrajani et al. 2017): mean over samples of (||grad_x critic(x_hat)||_2 - 1)^2.

    The norm is taken over all pixels and channels of each sample (the reference port took it
    over channels only, giving one "norm" per pixel). ``critic`` maps images to (B,) scores; any
    conditioning is closed over by the caller.
    """
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, generator=generator, dtype=real.dtype)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = critic(mixed)
    (grads,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    norms = grads.flatten(1).norm(2, dim=1)  # (B,): one norm per sample
    penalty = ((norms - 1) ** 2).mean()
    return penalty, {"gp": penalty.detach(), "grad_norm": norms.mean().detach()}


def interpolated_embeddings(embeddings: torch.Tensor, beta: float = 0.5) -> torch.Tensor:
    """GAN-INT: beta * e_i + (1 - beta) * e_j, pairing each caption with the next in the batch."""
    return beta * embeddings + (1 - beta) * embeddings.roll(1, dims=0)


def feature_matching(real_features: torch.Tensor, fake_features: torch.Tensor) -> tuple[torch.Tensor, Stats]:
    """Squared distance between batch means of D's intermediate features (Salimans et al. 2016)."""
    loss = F.mse_loss(fake_features.flatten(1).mean(0), real_features.detach().flatten(1).mean(0))
    return loss, {"feature_matching": loss.detach()}


def l1_to_image(fake: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, Stats]:
    loss = F.l1_loss(fake, real)
    return loss, {"l1": loss.detach()}


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, Stats]:
    """KL(N(mu, sigma^2) || N(0, I)), mean over the batch and dimensions (StackGAN's CA term)."""
    loss = -0.5 * torch.mean(1 + logvar - mu.pow(2) - logvar.exp())
    return loss, {"kl": loss.detach()}
