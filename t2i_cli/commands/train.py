"""``t2i train``: flags and an optional JSON config file mapped onto the typed configs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from t2i_cli.commands.options import DeviceOption, QuietOption, counted

EXPORT_EXAMPLE = "Example: t2i export runs/flowers weights/flowers-gan"
EXAMPLE = "Example: t2i train --data flowers.h5 --out runs/flowers --arch dfgan --diffaug translation,cutout --epochs 200"


def train_cli(
    data: Annotated[Optional[Path], typer.Option("--data", help="Training HDF5 file (t2i data convert).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Run folder: checkpoints, samples, metrics.jsonl.")] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue the run in this folder from its latest checkpoint.")] = None,
    config_file: Annotated[Optional[Path], typer.Option("--config", help='JSON: {"model": {...}, "train": {...}}; flags override it.')] = None,
    arch: Annotated[Optional[str], typer.Option("--arch", help="dcgan (GAN-INT-CLS, the default) or dfgan (DF-GAN; brings its own loss and optimizer defaults).")] = None,
    gan_type: Annotated[Optional[str], typer.Option("--type", help="gan | wgan | hinge (DF-GAN) | vanilla_gan | vanilla_wgan.")] = None,
    split: Annotated[Optional[str], typer.Option(help="Split to train on.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Total epochs (600 in Reed et al.).")] = None,
    time_limit: Annotated[Optional[float], typer.Option("--time-limit", help="Minutes of training (over all resumes): stop at the first epoch end past it.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Batch size (64).")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Adam learning rate of G, and of D without --lr-d (2e-4; dfgan 1e-4), halved every --lr-halve-every epochs.")] = None,
    lr_d: Annotated[Optional[float], typer.Option("--lr-d", help="D's learning rate (dfgan: 4e-4).")] = None,
    beta1: Annotated[Optional[float], typer.Option(help="Adam beta1 (0.5; dfgan 0.0).")] = None,
    beta2: Annotated[Optional[float], typer.Option(help="Adam beta2 (0.999, or 0.9 with a penalty; dfgan 0.9).")] = None,
    lr_halve_every: Annotated[Optional[int], typer.Option(help="Epochs between halvings (100; 0 = never).")] = None,
    lr_decay: Annotated[Optional[str], typer.Option("--lr-decay", help="none, linear or cosine: the rates fall to 0 over --epochs.")] = None,
    d_warmup_steps: Annotated[Optional[int], typer.Option("--d-warmup-steps", help="Train D alone for N steps first (a pretrained G with a fresh D).")] = None,
    diter: Annotated[Optional[int], typer.Option(help="WGAN critic steps per generator step (5).")] = None,
    gradient_penalty: Annotated[Optional[float], typer.Option("--gp", help="WGAN-GP lambda (e.g. 10) instead of weight clipping.")] = None,
    ma_gp: Annotated[Optional[float], typer.Option("--ma-gp", help="hinge: matching-aware gradient penalty weight (2; 0 = off).")] = None,
    gp_every: Annotated[Optional[int], typer.Option("--gp-every", help="hinge: take the penalty every N steps, weighted by N (1).")] = None,
    match_coef: Annotated[Optional[float], typer.Option("--match-coef", help="Weight of G's caption-matching loss (a frozen contrastive image encoder; 0 = off).")] = None,
    diffaug: Annotated[Optional[str], typer.Option("--diffaug", help="DiffAugment on every image D sees: translation, cutout, or translation,cutout.")] = None,
    cls: Annotated[Optional[bool], typer.Option("--cls/--no-cls", help="Matching-aware D (wrong-image term).")] = None,
    interpolate: Annotated[Optional[bool], typer.Option("--int/--no-int", help="GAN-INT: train G on interpolated captions too.")] = None,
    l1_coef: Annotated[Optional[float], typer.Option(help="L1 to the paired image.")] = None,
    feature_matching_coef: Annotated[Optional[float], typer.Option("--feature-matching", "--l2-coef", help="Weight of G matching D's features of real images (--l2-coef: its old name).")] = None,
    ngf: Annotated[Optional[int], typer.Option(help="Generator width (64).")] = None,
    ndf: Annotated[Optional[int], typer.Option(help="Discriminator width (64).")] = None,
    image_size: Annotated[Optional[int], typer.Option(help="64, or 128 for the larger variant.")] = None,
    ca: Annotated[Optional[bool], typer.Option("--ca/--no-ca", help="StackGAN conditioning augmentation.")] = None,
    minibatch_discrimination: Annotated[Optional[bool], typer.Option("--mbd/--no-mbd", help="Minibatch discrimination in D.")] = None,
    msg: Annotated[Optional[bool], typer.Option("--msg/--no-msg", help="MSG-GAN: G also draws every side 4..S/2, D takes them all in.")] = None,
    augment: Annotated[Optional[bool], typer.Option("--augment/--no-augment", help="Load at 76/64 of the size, random-crop and flip (Reed et al.).")] = None,
    preload: Annotated[Optional[bool], typer.Option("--preload/--no-preload", help="Decode every image into memory once.")] = None,
    amp: Annotated[Optional[str], typer.Option(help="Mixed precision: auto (bf16 on CUDA and on CPUs with native bf16), off, bf16.")] = None,
    channels_last: Annotated[Optional[str], typer.Option("--channels-last", help="NHWC activations: auto (on CUDA only), on, off.")] = None,
    compile_models: Annotated[Optional[bool], typer.Option("--compile/--no-compile", help="torch.compile G and D (slow first steps).")] = None,
    ema_decay: Annotated[Optional[float], typer.Option(help="EMA of G used for samples and checkpoints (0.999).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="DataLoader worker processes.")] = None,
    eval_every: Annotated[Optional[int], typer.Option("--eval-every", help="Measure the EMA generator on --eval-split every N epochs (FID, KID, colours, diversity) and keep the best checkpoint by FID (0 = never).")] = None,
    eval_split: Annotated[Optional[str], typer.Option("--eval-split", help="Split of the in-run evaluation (valid).")] = None,
    eval_metrics: Annotated[Optional[str], typer.Option("--eval-metrics", help="Its metrics: fid, colour, second_colour, diversity (all four by default).")] = None,
    save_every: Annotated[Optional[int], typer.Option(help="Checkpoint every N epochs (and at the end).")] = None,
    keep_every: Annotated[Optional[int], typer.Option(help="Keep every checkpoint of an epoch divisible by N, beside the last 3 (0 = only those).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of every random draw.")] = None,
    pretrained_generator: Annotated[Optional[Path], typer.Option("--pretrained-generator", help="Start G from these weights (checkpoint folder or .safetensors).")] = None,
    pretrained_discriminator: Annotated[Optional[Path], typer.Option("--pretrained-discriminator", help="Start D from these weights.")] = None,
    device: DeviceOption = "auto",
    quiet: QuietOption = False,
) -> None:
    """Train the conditional GAN (GAN-INT-CLS, or DF-GAN with --arch dfgan) on a caption-image HDF5 file."""
    from t2i_cli.config import ModelConfig, TrainConfig, arch_defaults, from_dict, load_config_file
    from t2i_cli.errors import T2IError
    from t2i_cli.training.run import train

    flags = {
        "data": str(data) if data else None, "gan_type": gan_type, "split": split, "epochs": epochs, "time_limit": time_limit,
        "batch_size": batch_size, "lr": lr, "lr_halve_every": lr_halve_every, "lr_decay": lr_decay,
        "d_warmup_steps": d_warmup_steps, "diter": diter,
        "gradient_penalty": gradient_penalty, "ma_gp": ma_gp, "gp_every": gp_every, "diffaug": diffaug, "match_coef": match_coef,
        "lr_d": lr_d, "beta1": beta1, "beta2": beta2, "cls": cls, "interpolate": interpolate, "l1_coef": l1_coef,
        "feature_matching_coef": feature_matching_coef, "augment": augment, "preload": preload, "amp": amp,
        "channels_last": channels_last, "compile": compile_models, "ema_decay": ema_decay, "workers": workers, "save_every": save_every, "eval_every": eval_every, "eval_split": eval_split, "eval_metrics": eval_metrics, "keep_every": keep_every, "seed": seed,
        "pretrained_generator": str(pretrained_generator) if pretrained_generator else None,
        "pretrained_discriminator": str(pretrained_discriminator) if pretrained_discriminator else None,
        "device": device if device != "auto" else None,
    }
    model_flags = {
        "arch": arch, "ngf": ngf, "ndf": ndf, "image_size": image_size, "conditioning_augmentation": ca,
        "minibatch_discrimination": minibatch_discrimination, "msg": msg,
    }
    flags = {k: v for k, v in flags.items() if v is not None}
    model_flags = {k: v for k, v in model_flags.items() if v is not None}
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
        train_section = file_config.get("train", {k: v for k, v in file_config.items() if k != "model"})
        model_section = {**file_config.get("model", {}), **model_flags}
        # The architecture's own recipe first, then the file, then the flags.
        model_preset, train_preset = arch_defaults(model_section.get("arch", "dcgan"))
        train_config = from_dict(TrainConfig, {**train_preset, **train_section, **flags}, source=str(config_file))
        model_config = from_dict(ModelConfig, {**model_preset, **model_section}, source=str(config_file))
        trainer = train(train_config, model_config, out, progress=not quiet)
    typer.echo(
        f"trained {counted(trainer.state.epoch, 'epoch')} ({counted(trainer.state.step, 'step')}, {trainer.state.train_seconds / 60:.1f} minutes); "
        f"checkpoint: {trainer.run_dir / (trainer.run_dir / 'latest').read_text().strip()}"
    )


def export_cli(
    checkpoint: Annotated[Path, typer.Argument(help="A training run or checkpoint folder.")],
    out: Annotated[Path, typer.Argument(help="Folder to write: config.json + generator.safetensors, nothing else.")],
    half: Annotated[bool, typer.Option("--half/--full", help="Store the weights as float16 (half the size).")] = True,
    force: Annotated[bool, typer.Option("--force", help="Replace OUT if it exists (only once the new one is complete).")] = False,
    best: Annotated[bool, typer.Option("--best", help="Export the run's best checkpoint by its in-run FID (t2i train --eval-every) instead of its latest.")] = False,
) -> None:
    """Export a checkpoint's EMA generator for generation only (what weights/ ships)."""
    from t2i_cli.checkpoint import GENERATOR_FILE, best_checkpoint, export_checkpoint

    if best:
        checkpoint = best_checkpoint(checkpoint)
    info = export_checkpoint(checkpoint, out, half=half, overwrite=force)
    size = (out / GENERATOR_FILE).stat().st_size / 1e6
    typer.echo(f"wrote {out} (epoch {info.epoch}, {'float16' if half else 'float32'}, {size:.1f} MB)")
