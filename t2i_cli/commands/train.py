"""``t2i train``: flags and an optional JSON config file layered onto the typed configs.

Each config flag is a row of :data:`CONFIG_FLAGS`: the config field it sets, its names and its
help. Its type comes from the field, and its value goes to the field of the same name, so a new
config field needs one row here and nothing else.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from t2i_cli.commands.options import DeviceOption, QuietOption, counted

EXPORT_EXAMPLE = "Example: t2i export runs/flowers weights/flowers-gan"
EXAMPLE = "Example: t2i train --data flowers.h5 --out runs/flowers --arch dfgan --diffaug translation,cutout --epochs 200"


@dataclass(frozen=True)
class ConfigFlag:
    field: str  # of TrainConfig, or of ModelConfig with ``model``
    names: tuple[str, ...]  # as typer.Option takes them ("--cls/--no-cls" for a switch)
    help: str
    model: bool = False
    path: bool = False  # a file or folder: typed Path on the command line, stored as text in the config


CONFIG_FLAGS = (
    ConfigFlag("data", ("--data",), "Training HDF5 file (t2i data convert).", path=True),
    ConfigFlag("arch", ("--arch",), "dcgan (GAN-INT-CLS, the default) or dfgan (DF-GAN; brings its own loss and optimizer defaults).", model=True),
    ConfigFlag("gan_type", ("--type",), "The loss: gan | wgan | hinge (DF-GAN); vanilla_gan and vanilla_wgan still mean gan and wgan with --unconditional."),
    ConfigFlag("conditional", ("--conditional/--unconditional",), "Whether G and D take the caption (--unconditional: a plain GAN of the data's images).", model=True),
    ConfigFlag("split", ("--split",), "Split to train on."),
    ConfigFlag("epochs", ("--epochs",), "Total epochs (600 in Reed et al.)."),
    ConfigFlag("time_limit", ("--time-limit",), "Minutes of training (over all resumes): stop at the first epoch end past it."),
    ConfigFlag("batch_size", ("--batch-size",), "Batch size (64)."),
    ConfigFlag("lr", ("--lr",), "Adam learning rate of G, and of D without --lr-d (2e-4; dfgan 1e-4), halved every --lr-halve-every epochs."),
    ConfigFlag("lr_d", ("--lr-d",), "D's learning rate (dfgan: 4e-4)."),
    ConfigFlag("beta1", ("--beta1",), "Adam beta1 (0.5; dfgan 0.0)."),
    ConfigFlag("beta2", ("--beta2",), "Adam beta2 (0.999, or 0.9 with a penalty; dfgan 0.9)."),
    ConfigFlag("lr_halve_every", ("--lr-halve-every",), "Epochs between halvings (100; 0 = never)."),
    ConfigFlag("lr_decay", ("--lr-decay",), "none, linear or cosine: the rates fall to 0 over --epochs."),
    ConfigFlag("d_warmup_steps", ("--d-warmup-steps",), "Train D alone for N steps first (a pretrained G with a fresh D)."),
    ConfigFlag("diter", ("--diter",), "WGAN critic steps per generator step (5)."),
    ConfigFlag("gradient_penalty", ("--gp",), "WGAN-GP lambda (e.g. 10) instead of weight clipping."),
    ConfigFlag("ma_gp", ("--ma-gp",), "hinge: matching-aware gradient penalty weight (2; 0 = off)."),
    ConfigFlag("gp_every", ("--gp-every",), "hinge: take the penalty every N steps, weighted by N (1)."),
    ConfigFlag("match_coef", ("--match-coef",), "Weight of G's caption-matching loss (a frozen contrastive image encoder; 0 = off)."),
    ConfigFlag("diffaug", ("--diffaug",), "DiffAugment on every image D sees: translation, cutout, or translation,cutout."),
    ConfigFlag("cls", ("--cls/--no-cls",), "Matching-aware D (wrong-image term)."),
    ConfigFlag("interpolate", ("--int/--no-int",), "GAN-INT: train G on interpolated captions too."),
    ConfigFlag("l1_coef", ("--l1-coef",), "L1 to the paired image."),
    ConfigFlag("feature_matching_coef", ("--feature-matching", "--l2-coef"), "Weight of G matching D's features of real images (--l2-coef: its old name)."),
    ConfigFlag("ngf", ("--ngf",), "Generator width (64).", model=True),
    ConfigFlag("ndf", ("--ndf",), "Discriminator width (64).", model=True),
    ConfigFlag("image_size", ("--image-size",), "64, or 128 for the larger variant.", model=True),
    ConfigFlag("conditioning_augmentation", ("--ca/--no-ca",), "StackGAN conditioning augmentation.", model=True),
    ConfigFlag("minibatch_discrimination", ("--mbd/--no-mbd",), "Minibatch discrimination in D.", model=True),
    ConfigFlag("msg", ("--msg/--no-msg",), "MSG-GAN: G also draws every side 4..S/2, D takes them all in.", model=True),
    ConfigFlag("augment", ("--augment/--no-augment",), "Load at 76/64 of the size, random-crop and flip (Reed et al.)."),
    ConfigFlag("preload", ("--preload/--no-preload",), "Decode every image into memory once."),
    ConfigFlag("amp", ("--amp",), "Mixed precision: auto (bf16 on CUDA and on CPUs with native bf16), off, bf16."),
    ConfigFlag("channels_last", ("--channels-last",), "NHWC activations: auto (on CUDA only), on, off."),
    ConfigFlag("compile", ("--compile/--no-compile",), "torch.compile G and D (slow first steps)."),
    ConfigFlag("ema_decay", ("--ema-decay",), "EMA of G used for samples and checkpoints (0.999)."),
    ConfigFlag("workers", ("--workers",), "DataLoader worker processes."),
    ConfigFlag("eval_every", ("--eval-every",), "Measure the EMA generator on --eval-split every N epochs (FID, KID, colours, diversity) and keep the best checkpoint by FID (0 = never)."),
    ConfigFlag("eval_split", ("--eval-split",), "Split of the in-run evaluation (valid)."),
    ConfigFlag("eval_metrics", ("--eval-metrics",), "Its metrics: fid, colour, second_colour, diversity (all four by default)."),
    ConfigFlag("save_every", ("--save-every",), "Checkpoint every N epochs (and at the end)."),
    ConfigFlag("keep_every", ("--keep-every",), "Keep every checkpoint of an epoch divisible by N, beside the last 3 (0 = only those)."),
    ConfigFlag("seed", ("--seed",), "Seed of every random draw."),
    ConfigFlag("pretrained_generator", ("--pretrained-generator",), "Start G from these weights (checkpoint folder or .safetensors).", path=True),
    ConfigFlag("pretrained_discriminator", ("--pretrained-discriminator",), "Start D from these weights.", path=True),
)
_PYTHON_TYPES = {"int": int, "float": float, "bool": bool, "str": str, "float | None": float}


def _config_parameters() -> list[inspect.Parameter]:
    """One optional keyword parameter per :data:`CONFIG_FLAGS` row, typed as its config field."""
    from dataclasses import fields

    from t2i_cli.config import ModelConfig, TrainConfig

    types = {False: {f.name: f.type for f in fields(TrainConfig)}, True: {f.name: f.type for f in fields(ModelConfig)}}
    return [
        inspect.Parameter(flag.field, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
            Optional[Path if flag.path else _PYTHON_TYPES[str(types[flag.model][flag.field])]], typer.Option(*flag.names, help=flag.help)])
        for flag in CONFIG_FLAGS
    ]


def train_cli(
    out: Annotated[Optional[Path], typer.Option("--out", help="Run folder: checkpoints, samples, metrics.jsonl.")] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue the run in this folder from its latest checkpoint.")] = None,
    config_file: Annotated[Optional[Path], typer.Option("--config", help='JSON: {"model": {...}, "train": {...}}; flags override it.')] = None,
    device: DeviceOption = "auto",
    quiet: QuietOption = False,
    **values,
) -> None:
    """Train the conditional GAN (GAN-INT-CLS, or DF-GAN with --arch dfgan) on a caption-image HDF5 file."""
    from t2i_cli.config import ModelConfig, TrainConfig, layered_configs, load_config_file
    from t2i_cli.errors import T2IError
    from t2i_cli.training.run import train

    unknown = set(values) - {flag.field for flag in CONFIG_FLAGS}
    if unknown:
        raise TypeError(f"train_cli() got unexpected keyword arguments: {', '.join(sorted(unknown))}")
    given = [(flag, str(values[flag.field]) if flag.path else values[flag.field]) for flag in CONFIG_FLAGS if values.get(flag.field) is not None]
    flags = {flag.field: value for flag, value in given if not flag.model} | ({"device": device} if device != "auto" else {})
    model_flags = {flag.field: value for flag, value in given if flag.model}
    for name, value in flags.items():  # --lr nan: refused here, before a config file could be blamed
        if isinstance(value, float) and not math.isfinite(value):
            raise T2IError(f"{name} must be a finite number, got {value}", parameter=name)

    if resume is not None:
        if out is not None and Path(out) != Path(resume):
            raise T2IError("--resume RUN continues RUN in place; leave out --out")
        if config_file is not None or model_flags:
            raise T2IError("--resume keeps the run's model and config; drop --config and model flags")
        trainer = train(TrainConfig(), ModelConfig(), resume, resume=True, overrides=flags, progress=not quiet)
    else:
        if out is None:
            raise T2IError("pass --out RUN_FOLDER for the new run (or --resume RUN_FOLDER)")
        file_config = load_config_file(config_file) if config_file else {}
        model_config, train_config = layered_configs(file_config, flags, model_flags, source=str(config_file))
        trainer = train(train_config, model_config, out, progress=not quiet)
    typer.echo(
        f"trained {counted(trainer.state.epoch, 'epoch')} ({counted(trainer.state.step, 'step')}, {trainer.state.train_seconds / 60:.1f} minutes); "
        f"checkpoint: {trainer.run_dir / (trainer.run_dir / 'latest').read_text().strip()}"
    )


# Typer reads a command's options from its signature: the fixed ones and one per config flag.
# (--out, --resume and --config first, --device and --quiet last, as the help has always listed them.)
_fixed = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in inspect.signature(train_cli, eval_str=True).parameters.values()
          if p.kind != inspect.Parameter.VAR_KEYWORD]
train_cli.__signature__ = inspect.Signature(_fixed[:3] + _config_parameters() + _fixed[3:])


def export_cli(
    checkpoint: Annotated[Path, typer.Argument(help="A training run or checkpoint folder.")],
    out: Annotated[Path, typer.Argument(help="Folder to write: config.json + generator.safetensors, nothing else.")],
    half: Annotated[bool, typer.Option("--half/--full", help="Store the weights as float16 (half the size).")] = True,
    force: Annotated[bool, typer.Option("--force", help="Replace OUT if it exists (only once the new one is complete).")] = False,
    best: Annotated[bool, typer.Option("--best", help="Export the run's best checkpoint by its in-run FID (t2i train --eval-every) instead of its latest.")] = False,
) -> None:
    """Export a checkpoint's EMA generator for generation only (what weights/ ships)."""
    from t2i_cli.checkpoint import GENERATOR_FILE
    from t2i_cli.training.run import export_run

    info = export_run(checkpoint, out, best=best, half=half, overwrite=force)
    size = (out / GENERATOR_FILE).stat().st_size / 1e6
    typer.echo(f"wrote {out} (epoch {info.epoch}, {'float16' if half else 'float32'}, {size:.1f} MB)")
