"""What the trainer reports to: a metrics file, TensorBoard, a progress bar."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from t2i_cli.atomic import write_text
from t2i_cli.checkpoint import RunFolder
from t2i_cli.training.trainer import Trainer

log = logging.getLogger(__name__)


class MetricsFile:
    """Appends every logged metrics dict to ``RUN/metrics.jsonl``. A resumed run first drops the
    lines logged after the checkpoint it resumes (an interrupted epoch's), so every step is in
    the file once."""

    def on_train_start(self, trainer: Trainer) -> None:
        self.path = RunFolder(trainer.run_dir).metrics
        if trainer.state.step > 0 and self.path.is_file():
            kept = [line for line in self.path.read_text(encoding="utf-8").splitlines(keepends=True)
                    if _logged_step(line) is not None and _logged_step(line) <= trainer.state.step]
            write_text(self.path, "".join(kept))

    def on_log(self, trainer: Trainer, metrics: dict) -> None:
        with open(self.path, "a") as handle:
            handle.write(json.dumps(metrics) + "\n")

    def on_epoch_end(self, trainer: Trainer, epoch: int, sample: Path | None) -> None:
        pass

    def on_evaluation(self, trainer: Trainer, epoch: int, figures: dict) -> None:
        self.on_log(trainer, {"epoch": epoch, "step": trainer.state.step, **evaluation_scalars(trainer.config.eval_split, figures)})

    def on_train_end(self, trainer: Trainer) -> None:
        pass


class TensorBoardLog:
    """Scalars and sample grids for TensorBoard, when the ``tensorboard`` package is installed."""

    def __init__(self) -> None:
        self.writer = None

    def on_train_start(self, trainer: Trainer) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.info("TensorBoard logging is off: pip install tensorboard to turn it on")
            return
        self.writer = SummaryWriter(log_dir=str(RunFolder(trainer.run_dir).tensorboard))

    def on_log(self, trainer: Trainer, metrics: dict) -> None:
        if self.writer is not None:
            for key, value in metrics.items():
                if key not in ("epoch", "step"):
                    self.writer.add_scalar(key, value, metrics["step"])

    def on_epoch_end(self, trainer: Trainer, epoch: int, sample: Path | None) -> None:
        if self.writer is not None and sample is not None:
            import numpy as np
            from PIL import Image

            with Image.open(sample) as grid:
                self.writer.add_image("samples", np.asarray(grid.convert("RGB")), epoch, dataformats="HWC")
            self.writer.flush()

    def on_evaluation(self, trainer: Trainer, epoch: int, figures: dict) -> None:
        if self.writer is not None:
            for key, value in evaluation_scalars(trainer.config.eval_split, figures).items():
                self.writer.add_scalar(key, value, trainer.state.step)
            self.writer.flush()

    def on_train_end(self, trainer: Trainer) -> None:
        if self.writer is not None:
            self.writer.close()


class RichProgress:
    """A progress bar over all epochs' steps, showing D/G losses, D(x) and D(G(z))."""

    def __init__(self) -> None:
        self.bar = None

    def on_train_start(self, trainer: Trainer) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        steps_per_epoch = len(trainer.loader)
        self.bar = Progress(
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[stats]}"),
            console=Console(stderr=True),
        )
        self.bar.start()
        self.task = self.bar.add_task(
            "train",
            total=steps_per_epoch * trainer.config.epochs,
            completed=trainer.state.step,
            epoch=trainer.state.epoch + 1,
            stats="",
        )

    def on_log(self, trainer: Trainer, metrics: dict) -> None:
        shown = " ".join(
            f"{name} {metrics[key]:.3f}"
            for key, name in (("d_loss", "D"), ("g_loss", "G"), ("D(x)", "D(x)"), ("D(G(z))", "D(G(z))"))
            if key in metrics
        )
        self.bar.update(self.task, completed=trainer.state.step, epoch=metrics["epoch"], stats=f"{shown} {metrics['images_per_s']:.0f} img/s")

    def on_epoch_end(self, trainer: Trainer, epoch: int, sample: Path | None) -> None:
        self.bar.update(self.task, completed=epoch * len(trainer.loader), epoch=epoch + 1)

    def on_evaluation(self, trainer: Trainer, epoch: int, figures: dict) -> None:
        shown = ", ".join(f"{key.split('/')[1]} {value:.4g}" for key, value in evaluation_scalars(trainer.config.eval_split, figures).items())
        self.bar.console.log(f"epoch {epoch}, {trainer.config.eval_split}: {shown}")

    def on_train_end(self, trainer: Trainer) -> None:
        self.bar.stop()


# The figures of an in-run evaluation that are logged as scalars (see evaluation/suite.py).
EVALUATION_SCALARS = ("fid", "fid_floor", "kid", "colour_match", "colour_match_real", "second_colour", "second_colour_real",
                      "diversity", "diversity_real", "diversity_lowest_tenth", "diversity_real_lowest_tenth", "seconds")


def evaluation_scalars(split: str, figures: dict) -> dict[str, float]:
    """``{"valid/fid": 102.3, ...}``: the evaluation's numbers, named by split (KID by its mean)."""
    scalars = {}
    for key in EVALUATION_SCALARS:
        value = figures.get(key)
        if isinstance(value, dict):
            value = value.get("mean")
        if isinstance(value, (int, float)):
            scalars[f"{split}/{key}"] = float(value)
    return scalars


def _logged_step(line: str) -> int | None:
    """The step a metrics line was logged at; None for a line cut short by a kill."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None
