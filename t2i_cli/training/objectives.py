"""What differs between the GAN types in a training step, one class a family:

- :class:`CrossEntropy` (``gan``; Reed et al. 2016, GAN-INT-CLS): D: real image +
  its caption -> real; G(z, caption) + caption -> fake; with CLS, a wrong (other-class) image +
  the caption -> fake. G: fool D on (G(z, caption), caption).
- :class:`Wasserstein` (``wgan``): the same pairs as critic scores, with a
  gradient penalty or weight clipping after D's step; G every ``diter`` critic steps (the trainer's
  schedule).
- :class:`Hinge` (``hinge``; DF-GAN, Tao et al. 2022): hinge loss on (real, its caption) -> real;
  (G(z, caption), caption) -> fake; (real image, the caption of another class's image in the batch)
  -> fake, scored from the real images' features (no second pass through D); plus the
  matching-aware gradient penalty on the real pairs every ``gp_every`` steps (weighted by it).

Each gives D's forward pass and loss (:meth:`Objective.discriminator_pass`), what follows D's
optimizer step, how D's scores read as a confidence, and G's adversarial term. Everything else of
a step (the optimizers, G's other terms, the EMA, the divergence watch) is the trainer's one
:meth:`~t2i_cli.training.trainer.Trainer.train_step`. The losses themselves are the pure
functions of :mod:`t2i_cli.training.losses`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from t2i_cli.models.pyramid import Images, detached
from t2i_cli.training import losses

if TYPE_CHECKING:
    from t2i_cli.config import TrainConfig
    from t2i_cli.data.batches import Batch
    from t2i_cli.training.trainer import Trainer

Losses = tuple[torch.Tensor, dict[str, torch.Tensor]]


@dataclass
class DiscriminatorPass:
    """D's loss on a batch, and what G's step that follows takes from it."""

    loss: torch.Tensor
    stats: dict[str, torch.Tensor]
    fake: Images  # G's images of the batch (with MSG, a pyramid), scored again in G's step
    real_scores: torch.Tensor
    fake_scores: torch.Tensor
    real_features: torch.Tensor | None = None  # D's features of the real images, for feature matching
    ca_stats: tuple[torch.Tensor, torch.Tensor] | None = None  # conditioning augmentation's (mu, logvar)


class Objective:
    # Whether D's scores are logits (the cross-entropy family), logged through a sigmoid; a critic's
    # and a hinge D's scores are no probabilities and are logged as they are.
    scores_are_logits = False
    # The hinge D is run through its parts and takes a double backward, which DDP cannot follow:
    # it stays unwrapped and its gradients are averaged by hand after backward (training/distributed.py).
    averages_d_by_hand = False
    # Whether D's weights are frozen while G's loss goes through it (saves their share of the
    # backward; a DDP-wrapped D must keep them, or its reducer waits for gradients that never come).
    freezes_d_for_g = False

    def __init__(self, config: TrainConfig, *, conditional: bool = True):
        self.config, self.conditional = config, conditional

    def discriminator_pass(self, trainer: Trainer, real: torch.Tensor, embedding: torch.Tensor | None,
                           noise: torch.Tensor, batch: Batch) -> DiscriminatorPass:
        raise NotImplementedError

    def after_discriminator_step(self, trainer: Trainer) -> None:
        """What follows D's optimizer step (nothing but for weight clipping)."""

    def confidence(self, scores: torch.Tensor) -> torch.Tensor:
        """D's mean belief that the scored pairs are real, as logged (``D(x)``, ``D(G(z))``)."""
        scores = scores.detach().float()
        return (torch.sigmoid(scores) if self.scores_are_logits else scores).mean()

    def generator_adversarial(self, fake_scores: torch.Tensor) -> Losses:
        raise NotImplementedError


class CrossEntropy(Objective):
    """The ``gan`` type: D's sigmoid cross-entropy on (real | fake | wrong, caption) pairs (without
    captions, on real and fake images alone)."""

    scores_are_logits = True

    def discriminator_pass(self, trainer, real, embedding, noise, batch) -> DiscriminatorPass:
        cfg, D, augment = self.config, trainer.D, trainer.augment
        use_cls = self.conditional and cfg.cls
        wrong = trainer.for_d(trainer.pixels(batch.wrong_image)) if use_cls else None
        with trainer.autocast():
            fake, ca_stats = trainer.G(noise, embedding)  # with MSG, a pyramid
            real_scores, real_features = D(augment(trainer.for_d(real)), embedding)
            fake_scores, _ = D(augment(detached(fake)), embedding)
            wrong_scores = D(augment(wrong), embedding)[0] if use_cls else None
            loss, stats = self.pair_loss(real_scores.float(), fake_scores.float(),
                                         None if wrong_scores is None else wrong_scores.float())
        loss = self.penalised(loss, stats, trainer, real, fake, embedding)
        return DiscriminatorPass(loss, stats, fake, real_scores, fake_scores, real_features, ca_stats)

    def pair_loss(self, real: torch.Tensor, fake: torch.Tensor, wrong: torch.Tensor | None) -> Losses:
        cfg = self.config
        return losses.discriminator_loss(real, fake, wrong, label_smoothing=cfg.label_smoothing, wrong_weight=cfg.wrong_weight,
                                         fake_weight=cfg.fake_weight)

    def penalised(self, loss, stats, trainer, real, fake, embedding) -> torch.Tensor:
        return loss

    def generator_adversarial(self, fake_scores: torch.Tensor) -> Losses:
        return losses.generator_loss(fake_scores)


class Wasserstein(CrossEntropy):
    """The ``wgan`` type: critic scores on the same pairs, Lipschitz by a gradient penalty
    (``gradient_penalty`` > 0) or by clipping D's weights to ``clip`` after each step."""

    scores_are_logits = False

    def pair_loss(self, real, fake, wrong) -> Losses:
        return losses.critic_loss(real, fake, wrong, wrong_weight=self.config.wrong_weight, fake_weight=self.config.fake_weight)

    def penalised(self, loss, stats, trainer, real, fake, embedding) -> torch.Tensor:
        if self.config.gradient_penalty <= 0:
            return loss
        penalty, gp_stats = losses.gradient_penalty(lambda x: trainer.D(trainer.augment(x), embedding)[0].float(), real, fake)
        stats.update(gp_stats)
        return loss + self.config.gradient_penalty * penalty

    def after_discriminator_step(self, trainer) -> None:
        if self.config.gradient_penalty <= 0:
            with torch.no_grad():
                for p in trainer.D.parameters():
                    p.clamp_(-self.config.clip, self.config.clip)

    def generator_adversarial(self, fake_scores: torch.Tensor) -> Losses:
        return losses.generator_critic_loss(fake_scores)


class Hinge(Objective):
    """The ``hinge`` type (DF-GAN): real, fake and mismatched pairs, and the matching-aware gradient
    penalty. Always conditional (validate_run refuses it otherwise)."""

    averages_d_by_hand = True
    freezes_d_for_g = True

    def discriminator_pass(self, trainer, real, embedding, noise, batch) -> DiscriminatorPass:
        cfg, D, dev = self.config, trainer.D, trainer.device
        # Mismatched pairs: image i - 1 with caption i, kept only where the two are of different
        # classes (in a class-less file every image is its own class).
        key = batch.class_keys(dev)
        mismatched = key.roll(1) != key  # (B,) bool
        penalised = cfg.ma_gp > 0 and trainer.state.step % cfg.gp_every == 0

        real_in = trainer.augment(trainer.for_d(real))
        caption_in = D.caption_input(embedding)
        if penalised:  # the penalty differentiates D's score by its image and caption inputs
            real_in = [level.detach().requires_grad_(True) for level in real_in] if isinstance(real_in, list) \
                else real_in.detach().requires_grad_(True)
            caption_in = caption_in.detach().requires_grad_(True)
        with trainer.autocast():
            fake, _ = trainer.G(noise, embedding)  # with MSG, a pyramid
            real_features = D.image_features(real_in)
            real_scores = D.score(real_features, caption_in)
            fake_scores, _ = D(trainer.augment(detached(fake)), embedding)
            # Every rolled pair is scored and the same-class ones are masked out of the mean: a
            # boolean index would cost a device sync and a batch of varying shape each step.
            mismatched_scores = D.score(real_features.roll(1, 0), caption_in.detach())
        loss, stats = losses.hinge_discriminator_loss(
            real_scores.float(), fake_scores.float(), mismatched_scores.float(), mismatched_mask=mismatched
        )
        if penalised:
            penalty, gp_stats = losses.matching_aware_gradient_penalty(real_scores, real_in, caption_in, power=cfg.ma_gp_power)
            loss = loss + cfg.ma_gp * cfg.gp_every * penalty
            stats.update(gp_stats)
        # real_features are D's scoring features, not the feature-matching ones (the hinge type takes none).
        return DiscriminatorPass(loss, stats, fake, real_scores, fake_scores)

    def generator_adversarial(self, fake_scores: torch.Tensor) -> Losses:
        return losses.hinge_generator_loss(fake_scores)


OBJECTIVES: dict[str, type[Objective]] = {"gan": CrossEntropy, "wgan": Wasserstein, "hinge": Hinge}


def objective_for(config: TrainConfig, *, conditional: bool = True) -> Objective:
    """The objective of ``config``'s GAN type, for a model that takes captions (``conditional``) or not."""
    return OBJECTIVES[config.gan_type](config, conditional=conditional)
