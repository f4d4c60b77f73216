"""Self-describing generator checkpoints: safetensors weights + a JSON config.

A checkpoint is a component folder (:mod:`t2i_cli.component`)::

    config.json               kind, format, t2i version, model + training config, encoder identity
    generator.safetensors     the weights to sample with (the EMA copy of G)
    training/                 only in a training run's checkpoints, for --resume:
        generator.safetensors, discriminator.safetensors, state.pt (optimizers, epoch, RNG:
        a torch.save file, loaded with weights_only=True, so tensors and containers only, no code)

A training run keeps its checkpoints under ``RUN/checkpoints/epoch-NNNN`` and names the newest in
``RUN/latest``; loading accepts either a checkpoint folder or a run folder. Every checkpoint is
written to a hidden temp folder and renamed into place, and ``latest`` is replaced atomically, so
a crash mid-save never leaves a half-written checkpoint where a good one was.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from typing import ClassVar
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from t2i_cli.atomic import write_text
from t2i_cli.component import CONFIG_FILE, read_component, write_component
from t2i_cli.config import ModelConfig, TrainConfig, from_dict, split_legacy_gan_type, to_dict
from t2i_cli.errors import T2IError
from t2i_cli.models import own_settings
from t2i_cli.text.encoder import EncoderIdentity

log = logging.getLogger(__name__)

KIND = "t2i-gan"
FORMAT = 1
GENERATOR_FILE = "generator.safetensors"
TRAINING_DIR = "training"
LATEST_FILE = "latest"
BEST_FILE = "best.json"  # the checkpoint with the best in-run evaluation, and its figures
KEEP_CHECKPOINTS = 3


@dataclass(frozen=True)
class RunFolder:
    """Where a training run keeps what: the layout of a run folder, in one place.

    ::

        RUN/checkpoints/epoch-NNNN/   checkpoints (a checkpoint folder each, see the module's docstring)
        RUN/latest, RUN/best.json     the newest checkpoint's name; the best one's, with its figures
        RUN/metrics.jsonl             losses and in-run evaluations, a JSON line each
        RUN/tensorboard/              the same as TensorBoard scalars, and the sample grids
        RUN/samples/epoch-NNNN.png    fixed-noise, fixed-caption sample grids
        RUN/match-encoder/            the frozen caption-matching encoder of --match-coef
        RUN/style-encoders/epoch-N/   style encoders trained for the run's checkpoints
    """

    root: Path
    checkpoints: Path = field(init=False)
    latest: Path = field(init=False)
    best: Path = field(init=False)
    metrics: Path = field(init=False)
    tensorboard: Path = field(init=False)
    samples: Path = field(init=False)
    match_encoder: Path = field(init=False)

    CHECKPOINTS: ClassVar[str] = "checkpoints"
    LAYOUT: ClassVar[dict[str, str]] = {
        "checkpoints": CHECKPOINTS, "latest": LATEST_FILE, "best": BEST_FILE, "metrics": "metrics.jsonl",
        "tensorboard": "tensorboard", "samples": "samples", "match_encoder": "match-encoder",
    }

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        for name, relative in self.LAYOUT.items():
            object.__setattr__(self, name, self.root / relative)

    def checkpoint(self, epoch: int) -> Path:
        return self.checkpoints / f"epoch-{epoch:04d}"

    def sample_grid(self, epoch: int) -> Path:
        return self.samples / f"epoch-{epoch:04d}.png"

    def style_encoder(self, checkpoint: Path) -> Path:
        return self.root / "style-encoders" / Path(checkpoint).name

    @classmethod
    def of_checkpoint(cls, checkpoint: Path) -> "RunFolder | None":
        """The run a checkpoint folder belongs to (``RUN/checkpoints/epoch-N``), or None for an
        exported one."""
        checkpoint = Path(checkpoint)
        return cls(checkpoint.parent.parent) if checkpoint.parent.name == cls.CHECKPOINTS else None


@dataclass
class CheckpointInfo:
    path: Path
    model: ModelConfig
    train: TrainConfig | None
    encoder: EncoderIdentity | None
    epoch: int
    step: int
    train_seconds: float = 0.0  # training time so far (0 in checkpoints older than the record)
    data: dict | None = None  # what it was trained on (t2i_cli.data.split.data_record); None in older checkpoints

    @property
    def has_training_state(self) -> bool:
        return (self.path / TRAINING_DIR / "state.pt").is_file()


def unwrapped(module: torch.nn.Module) -> torch.nn.Module:
    """The model inside DataParallel/DDP (``.module``) and torch.compile (``._orig_mod``) wrappers."""
    while hasattr(module, "module") or hasattr(module, "_orig_mod"):
        module = getattr(module, "module", None) or module._orig_mod
    return module


def unwrapped_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A state dict without the wrappers' ``module.`` / ``_orig_mod.`` prefixes, contiguous, on the CPU."""
    return {k: v.detach().contiguous().cpu() for k, v in unwrapped(module).state_dict().items()}


def write_checkpoint(
    folder: Path,
    *,
    generator_weights: dict[str, torch.Tensor],
    model: ModelConfig,
    train: TrainConfig | None,
    encoder: EncoderIdentity | None,
    epoch: int,
    step: int,
    training: dict | None = None,
    half: bool = False,
    train_seconds: float | None = None,
    data: dict | None = None,
) -> Path:
    """Write a checkpoint folder atomically. ``training`` holds the resume state:
    ``{"generator": sd, "discriminator": sd, "state": dict for torch.save}``."""
    def training_state(partial: Path) -> None:
        (partial / TRAINING_DIR).mkdir()
        save_file(training["generator"], partial / TRAINING_DIR / "generator.safetensors")
        save_file(training["discriminator"], partial / TRAINING_DIR / "discriminator.safetensors")
        torch.save(training["state"], partial / TRAINING_DIR / "state.pt")

    config = {
        "epoch": epoch,
        "step": step,
        **({"train_seconds": round(train_seconds, 1)} if train_seconds is not None else {}),
        "model": to_dict(model),
        "train": to_dict(train) if train is not None else None,
        "encoder": json.loads(encoder.to_json()) if encoder is not None else None,
        **({"data": data} if data is not None else {}),
    }
    # Re-saving an epoch after a resume swaps the old folder out whole.
    return write_component(folder, kind=KIND, format=FORMAT, config=config, weights={GENERATOR_FILE: generator_weights},
                           half=half, extra=training_state if training is not None else None)


def export_checkpoint(checkpoint: Path, out: Path, *, half: bool = True, overwrite: bool = False,
                      data: dict | None = None) -> CheckpointInfo:
    """Write ``checkpoint``'s EMA generator to ``out`` for generation only (what ``weights/`` ships):
    config + weights, no training state. The training config names its data file by name alone,
    beside a record of the data by content (``data``, else the checkpoint's own)."""
    import dataclasses

    info = read_checkpoint(checkpoint)
    out = Path(out)
    if out.exists() and not overwrite:
        raise T2IError(f"{out} already exists, and replacing it was not asked for", parameter="overwrite")
    train = info.train
    if train is not None and train.data:
        train = dataclasses.replace(train, data=Path(train.data).name)
    write_checkpoint(
        out, generator_weights=load_file(str(info.path / GENERATOR_FILE)), model=info.model, train=train,
        encoder=info.encoder, epoch=info.epoch, step=info.step, half=half, data=data or info.data,
    )
    return info


def mark_latest(run_dir: Path, checkpoint: Path, *, keep_every: int = 0) -> None:
    """Point ``RUN/latest`` at ``checkpoint`` (replaced atomically), then prune old checkpoints:
    the newest ``KEEP_CHECKPOINTS`` stay, and with ``keep_every`` > 0 so does every checkpoint of
    an epoch divisible by it (for choosing a model by a later evaluation)."""
    run = RunFolder(run_dir)
    write_text(run.latest, str(Path(checkpoint).relative_to(run.root)) + "\n")
    best = read_best(run.root)
    saved = sorted(run.checkpoints.glob("epoch-*"))
    for stale in saved[:-KEEP_CHECKPOINTS]:
        epoch = stale.name.removeprefix("epoch-")
        if keep_every > 0 and epoch.isdigit() and int(epoch) % keep_every == 0:
            continue
        if best is not None and stale.name == Path(best["checkpoint"]).name:
            continue  # the best checkpoint is never pruned
        shutil.rmtree(stale, ignore_errors=True)


def mark_best(run_dir: Path, checkpoint: Path, figures: dict) -> None:
    """Name ``checkpoint`` the run's best in ``RUN/best.json`` (replaced atomically), with the
    figures that made it so; :func:`mark_latest` never prunes it."""
    record = {"checkpoint": str(Path(checkpoint).relative_to(run_dir)), **figures}
    write_text(RunFolder(run_dir).best, json.dumps(record, indent=2) + "\n")


def read_best(run_dir: Path) -> dict | None:
    """``RUN/best.json`` as a dict, or None when the run has none (no in-run evaluation yet)."""
    path = RunFolder(run_dir).best
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise T2IError(f"{path} is unreadable: {exc}") from None
    if not isinstance(record, dict) or not isinstance(record.get("checkpoint"), str):
        raise T2IError(f"{path} names no checkpoint")
    return record


def best_checkpoint(run_dir: Path) -> Path:
    """The folder ``RUN/best.json`` names, refused in one line when there is none."""
    record = read_best(run_dir)
    if record is None:
        raise T2IError(f"{run_dir} has no best checkpoint: train it with --eval-every N to evaluate during training",
                       parameter="best")
    folder = Path(run_dir) / record["checkpoint"]
    if not (folder / CONFIG_FILE).is_file():
        raise T2IError(f"{run_dir}/{BEST_FILE} names {folder}, which is missing")
    return folder


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder, or a run folder's latest checkpoint."""
    path = Path(path)
    if not path.exists():
        raise T2IError(f"checkpoint {path} does not exist")
    if (path / CONFIG_FILE).is_file():
        return path
    latest = RunFolder(path).latest
    if latest.is_file():
        target = path / latest.read_text().strip()
        if (target / CONFIG_FILE).is_file():
            return target
        raise T2IError(f"run {path} names checkpoint {target}, which is missing")
    complete = complete_checkpoints(path)
    if complete:  # killed between writing a checkpoint (whole, renamed into place) and pointing latest at it
        log.warning("run %s names no latest checkpoint; using its newest complete one, %s", path, complete[-1].name)
        return complete[-1]
    if is_unsaved_run(path):
        raise T2IError(f"{path} is a training run stopped before its first checkpoint: nothing to load or resume; "
                       f"delete it and train again")
    raise T2IError(f"{path} is neither a t2i checkpoint (no {CONFIG_FILE}) nor a training run (no {LATEST_FILE})")


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """A run's whole checkpoints, oldest first (a checkpoint folder exists only once complete)."""
    return sorted(p for p in RunFolder(run_dir).checkpoints.glob("epoch-*") if (p / CONFIG_FILE).is_file())


def is_unsaved_run(path: Path) -> bool:
    """A folder a run started writing (its log, samples or checkpoint folder) without ever
    completing a checkpoint."""
    path = Path(path)
    run = RunFolder(path)
    return (not run.latest.exists() and not complete_checkpoints(path)
            and any(p.exists() for p in (run.metrics, run.samples, run.checkpoints)))


def read_checkpoint(path: str | Path) -> CheckpointInfo:
    folder = resolve_checkpoint(path)
    config = read_component(folder, kind=KIND, newest_format=FORMAT, what="generator checkpoint")
    try:
        train_section, model_section = split_legacy_gan_type(config.get("train") or {}, config["model"], source=str(folder / CONFIG_FILE))
        model = from_dict(ModelConfig, own_settings(model_section), source=str(folder / CONFIG_FILE))
        train = from_dict(TrainConfig, train_section, source=str(folder / CONFIG_FILE)) if config.get("train") else None
        encoder = EncoderIdentity.from_json(json.dumps(config["encoder"])) if config.get("encoder") else None
        return CheckpointInfo(
            folder, model, train, encoder, int(config.get("epoch", 0)), int(config.get("step", 0)),
            float(config.get("train_seconds", 0.0)), config.get("data"),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # AttributeError: a section that is no JSON object
        raise T2IError(f"checkpoint {folder} has a malformed {CONFIG_FILE}: {exc}") from None


def load_weights(path: Path, module: torch.nn.Module, *, what: str) -> None:
    """Load a safetensors file into ``module``; any mismatch is one clear error."""
    try:
        weights = load_file(str(path))
    except FileNotFoundError:
        raise T2IError(f"{what} weights {path} are missing") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise T2IError(f"{what} weights {path} are unreadable: {exc}") from None
    broken = next((k for k, v in weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())), None)
    if broken is not None:  # such a model draws black or NaN images without a word
        raise T2IError(f"{what} weights {path} hold NaN or infinite values ({broken}): the file is damaged or came from a diverged run")
    module = unwrapped(module)
    own = module.state_dict()
    weights = {k: v.to(own[k].dtype) if k in own else v for k, v in weights.items()}
    try:
        module.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise T2IError(f"{what} weights {path} do not fit this model: {first[1].strip() if len(first) > 1 else first[0]}") from None


def load_training_state(folder: Path) -> dict:
    path = Path(folder) / TRAINING_DIR / "state.pt"
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise T2IError(f"checkpoint {folder} holds no training state (it is for generation only)") from None
    except Exception as exc:  # a corrupt or foreign file: torch raises many types here
        raise T2IError(f"training state {path} is unreadable: {type(exc).__name__}") from None
