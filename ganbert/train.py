"""Training GAN-BERT (or the supervised baseline) and the trained classifier it produces.

One step of GAN-BERT (Croce et al. 2020) on a batch mixing labelled and unlabelled sentences:

1. D step: backbone + discriminator minimise the supervised cross-entropy (labelled rows) plus the
   unsupervised real/fake loss, against G's output *detached*.
2. G step: G minimises its adversarial loss plus feature matching through the updated D, with the
   gradients taken for G's parameters only, so nothing of G's loss reaches D or the backbone (the
   authors' notebook backpropagates both losses into shared gradients before stepping).

The baseline (``mode="baseline"``) runs step 1 with the supervised term alone, on labelled rows only.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ganbert.backbone import DEFAULT_BACKBONE, load_backbone
from ganbert.data import TextExample, check_labels_known, label_table, scorable_examples
from ganbert.errors import GanBertError
from ganbert.model import Discriminator, GanBertConfig, GanBertModel, Generator

def replication_factor(labelled: int, total: int) -> int:
    """How many copies of each labelled row: ⌊log2(total / labelled)⌋, at least 1."""
    return max(1, int(math.log2(total / labelled))) if labelled else 1


class _Shuffled:
    """Endless shuffled epochs over ``indices``; ``take(n)`` continues where the last call stopped."""

    def __init__(self, indices: range, rng: np.random.Generator):
        self.indices, self.rng, self.queue = np.asarray(indices), rng, []

    def take(self, count: int) -> list[int]:
        while len(self.queue) < count:  # a fresh epoch (the tail of the last one first)
            self.queue += self.indices[self.rng.permutation(len(self.indices))].tolist()
        picked, self.queue = self.queue[:count], self.queue[count:]
        return picked


def _constant_with_warmup(optimizer, warmup_steps: int):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / max(1, warmup_steps)))


def train_ganbert(
    examples: Sequence[TextExample],
    config: GanBertConfig,
    *,
    backbone_dir: str | Path | None = None,
    labels: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    log_every: int = 10,
    evaluation: Sequence[TextExample] | None = None,
    evaluate_every: int = 0,
    on_evaluate: Callable[[int, dict[str, float]], None] | None = None,
) -> GanBertModel:
    """Train on ``examples`` (labelled and unlabelled) and return the model.

    ``labels`` fixes the label table (default: the labels that occur). ``on_step(step, stats)`` is
    called every ``log_every`` steps and at the end with the mean losses since the last call.
    With ``evaluation`` and ``evaluate_every`` > 0, ``on_evaluate(step, metrics)`` gets the
    accuracy and macro-F1 on ``evaluation`` every ``evaluate_every`` steps and at the end: the
    learning curve, to see when the few labelled rows start to be over-fitted. Evaluating draws
    no random numbers, so the trained model is the same with or without it.
    Deterministic for a seed on a given device.
    """
    config.validate()
    if evaluate_every < 0:
        raise GanBertError(f"evaluate_every must be 0 (never) or positive, got {evaluate_every}")
    labelled = [e for e in examples if e.label is not None]
    unlabelled = [e for e in examples if e.label is None]
    labels = list(labels) if labels is not None else label_table(examples)
    if not labelled:
        raise GanBertError("the labelled set is empty: GAN-BERT needs at least one labelled sentence")
    check_labels_known(labelled, labels)
    if evaluate_every:  # fail before the backbone loads, not at the first evaluation
        if evaluation is None:
            raise GanBertError("evaluate_every needs an evaluation set")
        scorable_examples(evaluation)
    if config.mode == "baseline":
        rows, streams = labelled, [(range(len(labelled)), config.batch_size)]
    elif config.batching == "paired":
        rows = labelled + unlabelled
        streams = [(range(len(labelled)), config.batch_size)]
        if unlabelled:
            streams.append((range(len(labelled), len(rows)), config.batch_size))
    else:
        rows = labelled * replication_factor(len(labelled), len(examples)) + unlabelled
        streams = [(range(len(rows)), config.batch_size)]

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    tokenizer, backbone = load_backbone(backbone_dir)
    hidden = int(backbone.config.hidden_size)
    discriminator = Discriminator(hidden, len(labels), config.discriminator_layers, config.dropout)
    generator = Generator(config.noise_dim, hidden, config.generator_layers, config.dropout) if config.mode == "ganbert" else None
    name = DEFAULT_BACKBONE if backbone_dir is None else Path(backbone_dir).name
    model = GanBertModel(tokenizer, backbone, discriminator, labels, config, generator, backbone_name=name)
    device = torch.device(device)
    for module in (backbone, discriminator, generator):
        if module is not None:
            module.to(device).train()

    warmup = int(config.warmup_fraction * config.steps)
    d_optimizer = torch.optim.AdamW(list(backbone.parameters()) + list(discriminator.parameters()), lr=config.learning_rate)
    d_schedule = _constant_with_warmup(d_optimizer, warmup)
    if generator is not None:
        g_optimizer = torch.optim.AdamW(generator.parameters(), lr=config.learning_rate)
        g_schedule = _constant_with_warmup(g_optimizer, warmup)

    index = {label: i for i, label in enumerate(labels)}
    token_ids = model.tokenize([e.text for e in rows])
    targets = torch.tensor([index[e.label] if e.label is not None else -1 for e in rows], dtype=torch.long)
    streams = [(_Shuffled(indices, rng), size) for indices, size in streams]
    totals: dict[str, float] = {}
    logged = 0
    for step in range(1, config.steps + 1):
        picked = [i for stream, size in streams for i in stream.take(size)]
        batch = model.collate([token_ids[i] for i in picked])
        batch_labels = targets[picked].to(device)
        noise = generator.sample_noise(len(picked), device=device) if generator is not None else None
        real_features, fake, stats = model.discriminator_step(batch, batch_labels, d_optimizer, noise)
        d_schedule.step()
        if generator is not None:
            stats.update(model.generator_step(real_features, fake, g_optimizer))
            g_schedule.step()
        for key, value in stats.items():
            totals[key] = totals.get(key, 0.0) + float(value)
        logged += 1
        if on_step is not None and (step % log_every == 0 or step == config.steps):
            on_step(step, {k: v / logged for k, v in totals.items()})
            totals, logged = {}, 0
        if evaluate_every and (step % evaluate_every == 0 or step == config.steps):
            metrics = model.evaluate(evaluation)  # switches to eval mode (no dropout, no RNG draws)
            if on_evaluate is not None:
                on_evaluate(step, metrics)
            backbone.train()
            discriminator.train()
    backbone.eval()
    discriminator.eval()
    return model
