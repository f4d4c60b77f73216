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


# --- the paper's comparison: baseline fine-tuning against GAN-BERT ---------------------------------
COMPARISON_KIND = "t2i-ganbert-comparison"
MODES = ("baseline", "ganbert")


@dataclass
class OverSeeds:
    mean: float
    std: float  # the sample standard deviation over seeds (0 for one)
    low: float
    high: float
    runs: int

    @classmethod
    def of(cls, values: list[float]) -> "OverSeeds":
        import statistics

        return cls(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0, min(values), max(values), len(values))

    def __str__(self) -> str:
        return f"{self.mean:.3f} ± {self.std:.3f}"


def comparison_table(runs: list[dict], metric: str = "accuracy") -> list[dict]:
    """Per backbone and labelled fraction: the baseline's and GAN-BERT's ``metric`` over the seeds
    both have, and GAN-BERT's mean gain (in points of the metric, x100)."""
    rows = []
    for backbone, fraction in dict.fromkeys((run["backbone"], run["fraction"]) for run in runs):
        by_mode = {mode: {run["seed"]: run[metric] for run in runs
                          if (run["backbone"], run["fraction"], run["mode"]) == (backbone, fraction, mode)} for mode in MODES}
        seeds = sorted(set(by_mode["baseline"]) & set(by_mode["ganbert"]))
        if not seeds:
            continue
        baseline = OverSeeds.of([by_mode["baseline"][s] for s in seeds])
        ganbert = OverSeeds.of([by_mode["ganbert"][s] for s in seeds])
        gains = OverSeeds.of([100 * (by_mode["ganbert"][s] - by_mode["baseline"][s]) for s in seeds])
        rows.append({"backbone": backbone, "fraction": fraction, "seeds": seeds, "baseline": baseline, "ganbert": ganbert,
                     "gain_points": gains})
    return rows


def compare_caption_encoders(
    *, task_for: Callable[[float, int], object], backbones: list[str | None], fractions: list[float], seeds: list[int],
    config_for: Callable[[str, int], object], results: Path, settings: dict, device: torch.device,
    on_run: Callable[[dict], None] | None = None, progress: Callable[[int], None] | None = None,
) -> list[dict]:
    """Fine-tune each backbone (None: MiniLM) with the baseline and with GAN-BERT, at each labelled
    fraction and seed (``task_for(fraction, seed)``: the task, its labelled rows chosen by the seed;
    ``config_for(mode, seed)``: the run's config), score the held-out sentences, and keep every
    run's figures in ``results`` (JSON, rewritten atomically after each run). A results file of
    the same ``settings`` is gone on with: its runs are not trained again. Returns the runs."""
    import itertools
    import json
    import tempfile
    import time as clock

    from t2i_cli.atomic import write_text

    results = Path(results)
    runs: list[dict] = []
    if results.exists():
        try:
            previous = json.loads(results.read_text())
        except (OSError, ValueError) as exc:
            raise T2IError(f"{results} is unreadable: {exc}") from None
        if not isinstance(previous, dict) or previous.get("kind") != COMPARISON_KIND:
            raise T2IError(f"{results} exists and is not a GAN-BERT comparison; name another file", parameter="out")
        if previous.get("settings") != settings:
            raise T2IError(f"{results} holds a comparison with other settings; name another file to start a new one", parameter="out")
        runs = previous["runs"]
    done = {(run["backbone"], run["fraction"], run["seed"], run["mode"]) for run in runs}
    tasks: dict[tuple[float, int], object] = {}  # a task a (fraction, seed): made once, for every backbone and mode
    for backbone, fraction, seed, mode in itertools.product(backbones, fractions, seeds, MODES):
        name = "all-MiniLM-L6-v2" if backbone is None else str(backbone)
        if (name, fraction, seed, mode) not in done:
            if (fraction, seed) not in tasks:
                tasks[fraction, seed] = task_for(fraction, seed)
            started = clock.perf_counter()
            with tempfile.TemporaryDirectory(prefix="t2i-compare-") as scratch:
                result = fine_tune_caption_encoder(tasks[fraction, seed], config_for(mode, seed), Path(scratch) / "model",
                                                   backbone=None if backbone is None else Path(backbone), device=device,
                                                   evaluation_name="held-out")
            run = {"backbone": name, "fraction": fraction, "seed": seed, "mode": mode, "labelled": result.labelled,
                   "sentences": result.sentences, **{k: result.evaluation[k] for k in ("accuracy", "macro_f1", "count")},
                   "seconds": round(clock.perf_counter() - started, 1)}
            runs.append(run)
            write_text(results, json.dumps({"kind": COMPARISON_KIND, "settings": settings, "runs": runs}, indent=2) + "\n")
            if on_run is not None:
                on_run(run)
        if progress is not None:
            progress(1)
    return runs
