"""GAN-BERT's losses as pure functions of logits and features (Croce et al. 2020, eq. 1-4).

Conventions: ``logits`` are ``(B, k + 1)`` with the fake class last; ``labels`` are class indices in
``[0, k)`` and are ignored where ``labelled`` is False. Each function returns a scalar tensor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPSILON = 1e-8  # keeps log() finite when a probability reaches exactly 0 or 1


def supervised_loss(logits: torch.Tensor, labels: torch.Tensor, labelled: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the k real classes, on the labelled rows only (0 when there are none).

    The fake column is left out of the softmax, as in the authors' code: the supervised term says
    which real class a sentence is, the unsupervised terms say whether it is real.
    """
    if not bool(labelled.any()):
        return logits.sum() * 0.0  # keeps the graph (and the device) without a host-side branch later
    log_probs = F.log_softmax(logits[labelled, :-1], dim=-1)
    return F.nll_loss(log_probs, labels[labelled])


def fake_probability(logits: torch.Tensor) -> torch.Tensor:
    """P(fake | x): the softmax mass on the last column."""
    return F.softmax(logits, dim=-1)[:, -1]


def discriminator_unsupervised_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-E[log(1 - P(fake|real))] - E[log P(fake|G(z))]: every real sentence, labelled or not, is real."""
    real_term = -torch.log(1 - fake_probability(real_logits) + EPSILON).mean()
    fake_term = -torch.log(fake_probability(fake_logits) + EPSILON).mean()
    return real_term + fake_term


def generator_loss(
    fake_logits: torch.Tensor, real_features: torch.Tensor, fake_features: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(adversarial, feature matching): -E[log(1 - P(fake|G(z)))] and ||E f(real) - E f(G(z))||².

    ``real_features`` should be detached by the caller: G's loss must not train D or the backbone.
    """
    adversarial = -torch.log(1 - fake_probability(fake_logits) + EPSILON).mean()
    matching = (real_features.mean(0) - fake_features.mean(0)).pow(2).mean()
    return adversarial, matching
