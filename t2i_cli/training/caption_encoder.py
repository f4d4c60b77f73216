"""Fine-tuning the caption encoder with GAN-BERT (or its supervised baseline) on a task of
:mod:`t2i_cli.data.ganbert_split`: train, save the checkpoint with its learning curve, then score
the task's held-out sentences and record the figures in it. What ``t2i ganbert train`` runs, and
what a comparison of several runs calls once a run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from t2i_cli.errors import T2IError

log = logging.getLogger(__name__)


@dataclass
class FineTuned:
    """A saved run: where, on how many sentences, its learning curve and its held-out figures."""

    folder: Path
    sentences: int
    labelled: int
    curve: list[dict] = field(default_factory=list)
    evaluation: dict | None = None  # accuracy, macro_f1, count, ... of the held-out sentences


def fine_tune_caption_encoder(
    task, config, out: Path, *, backbone: Path | None, device: torch.device, evaluation_name: str,
    eval_every: int = 0, overwrite: bool = False, progress: Callable[[int], None] | None = None,
) -> FineTuned:
    """Train ``config`` (a :class:`ganbert.model.GanBertConfig`) on ``task`` and write the
    checkpoint to ``out`` (atomically; before the evaluation, so a failed one does not cost the
    model), then score ``task.evaluation`` if it has one and record it as ``evaluation_name``.
    ``eval_every`` > 0 also scores it along the way (the curve, kept in the checkpoint)."""
    from ganbert.model import update_metadata
    from ganbert.train import train_ganbert

    config.validate()
    if eval_every and task.evaluation is None:
        raise T2IError("--eval-every needs a set to score: --eval-tsv FILE (with --tsv) or --data", parameter="eval_every")
    labelled = sum(example.label is not None for example in task.examples)
    log.info("%s on %d sentences (%d labelled, %d unlabelled), %d labels, %d steps",
             config.mode, len(task.examples), labelled, len(task.examples) - labelled, len(task.labels), config.steps)
    done, curve = [0], []

    def on_step(step: int, stats: dict[str, float]) -> None:
        if progress is not None:
            progress(step - done[0])
        done[0] = step

    def on_evaluate(step: int, metrics: dict[str, float]) -> None:
        curve.append({"step": step, **metrics})
        log.info("step %d: held-out accuracy %.4f, macro-F1 %.4f", step, metrics["accuracy"], metrics["macro_f1"])

    model = train_ganbert(
        task.examples, config, backbone_dir=backbone, labels=task.labels, device=device, on_step=on_step,
        evaluation=task.evaluation if eval_every else None, evaluate_every=eval_every, on_evaluate=on_evaluate,
    )
    metadata = {"source": task.source, "labelled_sentences": labelled, "sentences": len(task.examples)}
    if curve:
        metadata["curve"] = curve
    model.save(out, metadata=metadata, overwrite=overwrite)
    result = FineTuned(Path(out), len(task.examples), labelled, curve)
    if task.evaluation is not None:  # the curve's last point already scored the final model
        result.evaluation = {k: v for k, v in curve[-1].items() if k != "step"} if curve else model.evaluate(task.evaluation)
        update_metadata(out, {"evaluation": {"set": evaluation_name, **result.evaluation}})
    return result
