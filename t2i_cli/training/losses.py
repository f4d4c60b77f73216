"""GAN-INT-CLS losses as pure functions: scores/features in, ``(loss, stats)`` out.

Scores are raw logits (GAN) or critic values (WGAN); nothing here touches a model or an optimizer,
so every formula is tested on its own.
"""

from __future__ import annotations

from typing import Callable, Sequence

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


def hinge_discriminator_loss(
    real: torch.Tensor, fake: torch.Tensor, mismatched: torch.Tensor | None = None, *, mismatched_mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, Stats]:
    """DF-GAN's matching-aware hinge loss for D.

    ``real``: D(real image, its caption), pushed above +1; ``fake``: D(G(z, caption), caption) and
    ``mismatched``: D(real image, a caption of another image), both pushed below -1.
    Loss = relu(1 - real) + (relu(1 + fake) + relu(1 + mismatched)) / 2, each a batch mean;
    without mismatched pairs, relu(1 - real) + relu(1 + fake). ``mismatched_mask`` (B,) bool keeps
    only the pairs that really mismatch (the mean is over those; 0 if there are none), so the
    batch keeps its shape and the weights stay fixed.
    """
    loss_real, loss_fake = F.relu(1 - real).mean(), F.relu(1 + fake).mean()
    stats = {"d_real": loss_real.detach(), "d_fake": loss_fake.detach()}
    if mismatched is None:
        return loss_real + loss_fake, stats
    hinge = F.relu(1 + mismatched)
    if mismatched_mask is None:
        loss_mismatched = hinge.mean()
    else:
        weights = mismatched_mask.to(hinge.dtype)
        loss_mismatched = (hinge * weights).sum() / weights.sum().clamp(min=1)
    stats["d_mismatched"] = loss_mismatched.detach()
    return loss_real + 0.5 * (loss_fake + loss_mismatched), stats


def hinge_generator_loss(fake: torch.Tensor) -> tuple[torch.Tensor, Stats]:
    """-D(G(z, caption), caption), a batch mean."""
    loss = -fake.mean()
    return loss, {"g_adv": loss.detach()}


def matching_aware_gradient_penalty(
    scores: torch.Tensor, images: torch.Tensor | Sequence[torch.Tensor], embeddings: torch.Tensor, *, power: float = 6.0
) -> tuple[torch.Tensor, Stats]:
    """DF-GAN's MA-GP: mean over real pairs of ||(d score / d image, d score / d caption)||^power.

    ``scores`` must come from ``images`` and ``embeddings`` (both with ``requires_grad``) through D;
    the norm is over each sample's image and caption gradients together, so D is smoothed around
    the real, matching pairs in both inputs. ``images`` may be an MSG pyramid (a list of levels):
    its gradient is then every level's together. The graph is kept (``create_graph``) so the
    penalty can be backpropagated into D.
    """
    inputs = [*images] if isinstance(images, (list, tuple)) else [images]
    gradients = torch.autograd.grad(scores.float().sum(), (*inputs, embeddings), create_graph=True)
    squares = sum(g.float().flatten(1).pow(2).sum(1) for g in gradients)  # (B,)
    # ||g||^p as (||g||^2)^(p/2): a sqrt would give a NaN gradient where a norm is exactly 0.
    penalty = squares.pow(power / 2).mean()
    return penalty, {"ma_gp": penalty.detach(), "grad_norm": squares.detach().sqrt().mean()}


def caption_matching_loss(
    images: torch.Tensor, captions: torch.Tensor, *, labels: torch.Tensor | None = None, temperature: float = 0.1
) -> tuple[torch.Tensor, Stats]:
    """Symmetric InfoNCE between image vectors (B, D) and their captions' embeddings (B, D).

    Cosine similarities over ``temperature`` are the logits; image i must pick caption i among the
    batch's captions and caption i image i (AttnGAN's sentence-level DAMSM loss). Pairs of the
    same class (``labels`` equal, off the diagonal) are left out of the candidates: their
    captions may describe image i as well. ``match_accuracy`` is how often image i's nearest
    candidate caption is its own.
    """
    images, captions = F.normalize(images.float(), dim=-1), F.normalize(captions.float(), dim=-1)
    logits = images @ captions.T / temperature  # (B, B)
    if labels is not None:
        same = (labels[:, None] == labels[None, :]) & (labels[:, None] >= 0)
        same.fill_diagonal_(False)
        logits = logits.masked_fill(same, float("-inf"))
    target = torch.arange(len(images), device=images.device)
    loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    accuracy = (logits.argmax(1) == target).float().mean()
    return loss, {"match": loss.detach(), "match_accuracy": accuracy.detach()}
