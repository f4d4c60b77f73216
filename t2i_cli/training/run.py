"""Assembling a training run: data, models, sample captions, callbacks, resume."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch

from t2i_cli.atomic import remove_stale_partials
from t2i_cli.checkpoint import (
    RunFolder,
    CONFIG_FILE,
    CheckpointInfo,
    best_checkpoint,
    complete_checkpoints,
    export_checkpoint,
    is_unsaved_run,
    read_checkpoint,
)
from t2i_cli.config import ModelConfig, TrainConfig, run_model, validate_run
from t2i_cli.data.batches import Batch, InMemoryBatches
from t2i_cli.data.dataset import CaptionImageDataset
from t2i_cli.data.h5 import CaptionImageFile
from t2i_cli.data.split import InMemorySplit, data_record, sample_rows
from t2i_cli.devices import resolve_device
from t2i_cli.errors import T2IError
from t2i_cli.models import build_models
from t2i_cli.training.callbacks import MetricsFile, RichProgress, TensorBoardLog
from t2i_cli.training.distributed import join_process_group
from t2i_cli.training.trainer import SampleSet, Trainer

log = logging.getLogger(__name__)

SAMPLE_ROWS = 8
# Settings that may change when a run resumes; everything else is the run's identity.
RESUMABLE_OVERRIDES = (
    "epochs", "time_limit", "workers", "device", "amp", "channels_last", "compile", "preload", "save_every", "keep_every", "sample_every",
    "log_every", "data", "eval_every", "eval_split", "eval_metrics",
)


def pick_sample_captions(source: InMemorySplit | CaptionImageDataset, rows: int = SAMPLE_ROWS) -> SampleSet:
    """The first caption of one image from each of ``rows`` classes spread over the split."""
    chosen = sample_rows(source.class_indices, rows)
    if isinstance(source, InMemorySplit):
        return SampleSet([source.captions[i][0] for i in chosen], source.embeddings[chosen, 0].clone())
    with CaptionImageFile(source.path) as data:
        names = [source.names[i] for i in chosen]
        captions = [data.captions(source.split, n)[0] for n in names]
        embeddings = torch.stack([torch.from_numpy(data.embeddings(source.split, n)[0]) for n in names])
    return SampleSet(captions, embeddings)


def _out_of_time(run_dir: Path, seconds: float) -> T2IError:
    minutes = seconds / 60
    return T2IError(f"{run_dir} already trained {minutes:.1f} minutes, its time limit; give a longer limit to go on", parameter="time_limit")


def check_run_data(config: TrainConfig, model_config: ModelConfig, encoder, embedding_dim: int | None, *, resume: bool) -> None:
    """What the data file must offer this run: a recorded encoder for a conditional generator (free
    text could never be encoded otherwise), and, on resume, the run's embedding size."""
    if model_config.conditional and encoder is None:
        raise T2IError(
            f"{config.data} does not record its caption encoder, so free text could never be encoded "
            f"for this generator; re-embed it first: t2i data embed {config.data}"
        )
    if resume and model_config.embedding_dim != embedding_dim:
        raise T2IError(f"the run expects {model_config.embedding_dim}-d embeddings, {config.data} has {embedding_dim}-d")


def train(
    config: TrainConfig,
    model_config: ModelConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    overrides: dict | None = None,
    progress: bool = True,
) -> Trainer:
    """Train (or resume) a run in ``run_dir``; returns the finished trainer."""
    run_dir = Path(run_dir)
    if resume:
        owner = RunFolder.of_checkpoint(run_dir)
        if (run_dir / CONFIG_FILE).is_file() and owner is not None:
            raise T2IError(f"{run_dir} is one checkpoint of the run {owner.root}: resume the run folder "
                           f"(--resume {owner.root}), which goes on from its latest checkpoint", parameter="resume")
        if (run_dir / CONFIG_FILE).is_file():
            raise T2IError(f"{run_dir} is a checkpoint, not a training run: resume a run folder, or start a new run from "
                           f"these weights with --pretrained-generator", parameter="resume")
        info = read_checkpoint(run_dir)
        if info.train is None:
            raise T2IError(f"{info.path} holds no training config to resume")
        changes = {k: v for k, v in (overrides or {}).items() if k in RESUMABLE_OVERRIDES}
        ignored = sorted(set(overrides or {}) - set(changes))
        if ignored:
            raise T2IError(f"a resumed run keeps its settings; these cannot change: {', '.join(ignored)}")
        config = dataclasses.replace(info.train, **changes)
        model_config = info.model
        if config.epochs <= info.epoch:
            raise T2IError(f"{run_dir} already finished epoch {info.epoch}; give more epochs than {info.epoch} to go on", parameter="epochs")
        if config.time_limit > 0 and info.train_seconds >= config.time_limit * 60:
            raise _out_of_time(run_dir, info.train_seconds)
    elif RunFolder(run_dir).latest.exists() or complete_checkpoints(run_dir):
        raise T2IError(f"{run_dir} already holds a training run; resume it or train into another folder", parameter=("resume", "out"))
    elif is_unsaved_run(run_dir):
        raise T2IError(f"{run_dir} holds a run stopped before its first checkpoint; delete it or train into another folder", parameter="out")
    validate_run(model_config, config)  # before any data is read
    if not config.data:
        raise T2IError("no data file given: an HDF5 file made by t2i data convert", parameter="data")

    requested = resolve_device(config.device)
    group = join_process_group(requested.type)
    device = group.device(requested)
    if group.distributed and config.gradient_penalty > 0:
        raise T2IError("WGAN-GP needs double backward, which DistributedDataParallel does not support; train it in one process",
                       parameter="gradient_penalty")
    if group.distributed and not (config.preload and config.workers == 0):
        raise T2IError("multi-process training shards the in-memory batches: keep the split preloaded, with no loader workers",
                       parameter=("preload", "workers"))
    torch.manual_seed(config.seed)
    in_memory = config.preload and config.workers == 0
    with CaptionImageFile(config.data) as data:  # the one read of the file (a streamed split reads on)
        encoder, embedding_dim = data.encoder, data.embedding_dim
        check_run_data(config, model_config, encoder, embedding_dim, resume=resume)
        if in_memory:
            source = InMemorySplit.read(data, config.split, image_size=model_config.image_size, augment=config.augment)
            record = source.record
        else:
            record = data_record(data, config.split)
    if not in_memory:
        source = CaptionImageDataset(
            config.data, config.split, image_size=model_config.image_size, augment=config.augment, preload=config.preload
        )
    if not resume:
        built = run_model(model_config, config, embedding_dim=embedding_dim)
        if built.d_norm != model_config.d_norm:
            log.info("D normalises per sample (d_norm layer, not %s): this loss takes a per-sample gradient penalty", model_config.d_norm)
        model_config = built
    if len(source) < config.batch_size:
        raise T2IError(f"the {config.split} split has {len(source)} images, fewer than one batch of {config.batch_size}")

    loader_generator = torch.Generator().manual_seed(config.seed)
    if in_memory:
        loader = InMemoryBatches(
            source, batch_size=config.batch_size, device=device, seed=config.seed,
            rank=group.rank, world_size=group.world_size,
        )
    else:  # streaming from the file, decoded per sample in worker processes
        loader = torch.utils.data.DataLoader(
            source,
            batch_size=config.batch_size,
            shuffle=True,
            drop_last=True,  # BatchNorm needs more than one sample, and equal batches keep steps comparable
            num_workers=config.workers,
            persistent_workers=config.workers > 0,
            pin_memory=device.type == "cuda",
            generator=loader_generator,
            collate_fn=Batch.collate,
        )
    matcher = None
    if config.match_coef > 0:
        from t2i_cli.training.matching import match_encoder_for_run

        # Rank 0 trains (or finds) it; the others wait for its copy in the run folder.
        matcher = match_encoder_for_run(run_dir, Path(config.data), model_config.image_size, device=device, make=group.is_main)
        torch.manual_seed(config.seed)  # training the encoder drew from the global generator
    evaluator = None
    if config.eval_every > 0 and group.is_main:
        from t2i_cli.evaluation.evaluate import SplitEvaluator

        if not model_config.conditional:
            raise T2IError("the in-run evaluation draws from captions: an unconditional run cannot have one", parameter="eval_every")
        evaluator = SplitEvaluator(Path(config.data), config.eval_split, image_size=model_config.image_size, device=device,
                                   metrics=config.eval_metrics, seed=config.seed)
    generator, discriminator = build_models(model_config)
    # Only rank 0 writes logs, samples and checkpoints.
    callbacks = ([MetricsFile(), TensorBoardLog()] + ([RichProgress()] if progress else [])) if group.is_main else []
    trainer = Trainer(
        generator=generator,
        discriminator=discriminator,
        loader=loader,
        loader_generator=loader_generator,
        config=config,
        model_config=model_config,
        run_dir=run_dir,
        device=device,
        encoder=encoder if model_config.conditional else None,
        samples=pick_sample_captions(source),
        callbacks=callbacks,
        group=group,
        matcher=matcher,
        data_record=record,
        evaluator=evaluator,
    )
    if resume:
        trainer.resume(run_dir)
        if trainer.out_of_time():  # the checkpoint's own record rounds the seconds; the state does not
            raise _out_of_time(run_dir, trainer.state.train_seconds)
    else:
        trainer.load_pretrained(config.pretrained_generator, config.pretrained_discriminator)
    if group.is_main:  # what a killed run left half-written: never complete, never read
        layout = RunFolder(run_dir)
        leftovers = [p for folder in (run_dir, layout.checkpoints, layout.samples) for p in remove_stale_partials(folder)]
        if leftovers:
            log.info("removed %d partial file(s) an interrupted run left in %s", len(leftovers), run_dir)
    log.debug("model config: %s", model_config)
    log.debug("train config: %s", config)
    log.debug("data: %s", record)
    log.info(
        "training %s on %s (%s, %d images, %d steps/epoch) into %s",
        config.gan_type, device, config.data, len(source), len(loader), run_dir,
    )
    try:
        trainer.fit()
    finally:
        group.close()
    return trainer


def export_run(run: Path, out: Path, *, best: bool = False, half: bool = True, overwrite: bool = False) -> CheckpointInfo:
    """``t2i export``: a run's latest (or ``best``) checkpoint, or a checkpoint folder, written to
    ``out`` for generation only. A checkpoint from before data records were kept gets one from its
    data file, if that is still where training read it."""
    checkpoint = best_checkpoint(run) if best else run
    info = read_checkpoint(checkpoint)
    data = info.data
    if data is None and info.train is not None and info.train.data and Path(info.train.data).is_file():
        with CaptionImageFile(info.train.data) as file:
            data = data_record(file, info.train.split)
    return export_checkpoint(checkpoint, out, half=half, overwrite=overwrite, data=data)
