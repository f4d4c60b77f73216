"""``t2i ganbert train`` and ``t2i ganbert eval``: the semi-supervised caption encoder.

Data comes from a TSV file (``text<TAB>label``, empty label = unlabelled) or from a t2i HDF5 file,
whose train-split classes are the labels. Because the HDF5 valid and test splits hold other classes,
an HDF5 run holds out a share of the train images (all their captions, chosen by a hash of the image
name) for evaluation, keeps a share of the rest labelled, and uses the remaining captions unlabelled.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Annotated, Optional

import typer

from t2i_cli.commands.options import DeviceOption, QuietOption, check_output_path, counted
from t2i_cli.data.ganbert_split import H5Selection, captions_and_classes
from t2i_cli.errors import T2IError

log = logging.getLogger(__name__)

ganbert_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Train and evaluate the GAN-BERT caption encoder.")

TRAIN_EXAMPLE = "Example: t2i ganbert train runs/ganbert-2pct --data flowers.h5 --labelled-fraction 0.02"
EVAL_EXAMPLE = "Example: t2i ganbert eval runs/ganbert-2pct --data flowers.h5"
COMPARE_EXAMPLE = "Example: t2i ganbert compare results.json --data flowers.h5 --backbone runs/caption-bert --backbone minilm"
PRETRAIN_EXAMPLE = "Example: t2i ganbert pretrain runs/caption-bert --data flowers.h5 --steps 3000"
HELD_OUT = "heldout"
# The task's sources, as train and compare both take them.
TaskDataOption = Annotated[Optional[Path], typer.Option("--data", help="A t2i HDF5 file: its train classes are the labels, a held-out share of its images scores.")]
TsvOption = Annotated[Optional[Path], typer.Option("--tsv", help="text<TAB>label lines; an empty label = unlabelled.")]
EvalTsvOption = Annotated[Optional[Path], typer.Option("--eval-tsv", help="With --tsv: labelled sentences to score.")]


@ganbert_app.command("train", epilog=TRAIN_EXAMPLE)
def ganbert_train_cli(
    out: Annotated[Path, typer.Argument(help="Checkpoint folder to write (atomically).")],
    data: TaskDataOption = None,
    tsv: TsvOption = None,
    eval_tsv: EvalTsvOption = None,
    labelled_fraction: Annotated[float, typer.Option(help="--data: share of the non-held-out train images kept labelled.")] = 0.02,
    holdout: Annotated[float, typer.Option(help="--data: share of train images held out for evaluation.")] = 0.2,
    split_seed: Annotated[int, typer.Option(help="--data: seed of the held-out and labelled choices.")] = 0,
    baseline: Annotated[bool, typer.Option("--baseline", help="Fine-tune on the labelled rows alone (no GAN), for comparison.")] = False,
    backbone: Annotated[Optional[Path], typer.Option(help="A local BERT-family transformers folder (default: all-MiniLM-L6-v2).")] = None,
    steps: Annotated[int, typer.Option(min=1, help="Optimizer steps.")] = 1000,
    batch_size: Annotated[int, typer.Option(min=1, help="Sentences per step.")] = 32,
    lr: Annotated[float, typer.Option(help="AdamW rate of backbone, discriminator and generator.")] = 5e-5,
    max_length: Annotated[int, typer.Option(min=4, help="Tokens per sentence.")] = 64,
    batching: Annotated[str, typer.Option(help="paired: each step a labelled batch + an unlabelled batch; mixed: the authors' replicated stream.")] = "paired",
    seed: Annotated[int, typer.Option(help="Seed of initialisation, order, noise and dropout.")] = 0,
    eval_every: Annotated[int, typer.Option(min=0, help="Also score the held-out set every N steps (the learning curve, kept in the checkpoint); 0: only at the end.")] = 0,
    labels_file: Annotated[Optional[Path], typer.Option("--labels", help="The classifier's label set, one label a line (default: the labels of the labelled rows and of the evaluation set).")] = None,
    device: DeviceOption = "auto",
    force: Annotated[bool, typer.Option("--force", help="Replace OUT if it exists (once the new one is complete).")] = False,
    quiet: QuietOption = False,
) -> None:
    """Fine-tune a BERT-family caption encoder with GAN-BERT (or the supervised baseline)."""
    from ganbert.model import GanBertConfig
    from t2i_cli.data.ganbert_split import check_pretraining_unseen, check_task_source, ganbert_task
    from t2i_cli.devices import resolve_device
    from t2i_cli.progress import progress_bar
    from t2i_cli.training.caption_encoder import fine_tune_caption_encoder

    check_task_source(data, tsv)
    if data is not None and backbone is not None:
        check_pretraining_unseen(backbone, data, holdout, split_seed)
    check_output_path(out, as_folder=True)
    if out.exists() and not force:
        raise T2IError(f"{out} already exists, and replacing it was not asked for", parameter="overwrite")
    config = GanBertConfig(
        mode="baseline" if baseline else "ganbert", steps=steps, batch_size=batch_size,
        learning_rate=lr, max_length=max_length, seed=seed, batching=batching,
    )
    config.validate()
    task = ganbert_task(data=data, tsv=tsv, eval_tsv=eval_tsv, selection=H5Selection(labelled_fraction, holdout, split_seed),
                        labels_file=labels_file)
    with progress_bar(f"{config.mode} training", total=steps, enabled=not quiet) as advance:
        result = fine_tune_caption_encoder(
            task, config, out, backbone=backbone, device=resolve_device(device), eval_every=eval_every, overwrite=force,
            evaluation_name=HELD_OUT if data is not None else str(eval_tsv), progress=advance,
        )
    typer.echo(f"wrote {out}; use it as a caption encoder with --encoder ganbert:{out}")
    if result.evaluation is not None:
        metrics = result.evaluation
        typer.echo(f"{config.mode}: accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f} on {metrics['count']} held-out sentences")


@ganbert_app.command("pretrain", epilog=PRETRAIN_EXAMPLE)
def ganbert_pretrain_cli(
    out: Annotated[Path, typer.Argument(help="BERT folder to write (a transformers folder: --backbone, hf:PATH).")],
    data: Annotated[Optional[Path], typer.Option("--data", help="A t2i HDF5 file: the captions of its train split, but for the images ganbert train holds out.")] = None,
    text: Annotated[Optional[Path], typer.Option("--text", help="A UTF-8 text file, one sentence a line.")] = None,
    holdout: Annotated[float, typer.Option(help="--data: the held-out share whose captions are left out (as ganbert train's --holdout).")] = 0.2,
    split_seed: Annotated[int, typer.Option(help="--data: the seed of that held-out choice (as ganbert train's --split-seed).")] = 0,
    layers: Annotated[int, typer.Option(min=1, help="Transformer layers.")] = 4,
    hidden: Annotated[int, typer.Option(min=8, help="Width (a multiple of --heads).")] = 256,
    heads: Annotated[int, typer.Option(min=1, help="Attention heads.")] = 4,
    intermediate: Annotated[int, typer.Option(min=8, help="Feed-forward width.")] = 1024,
    max_length: Annotated[int, typer.Option(min=4, help="Tokens a sentence; longer ones are cut.")] = 32,
    steps: Annotated[int, typer.Option(min=1, help="Optimizer steps.")] = 3000,
    batch_size: Annotated[int, typer.Option(min=1, help="Sentences a step.")] = 128,
    lr: Annotated[float, typer.Option(help="Peak AdamW rate (linear warm-up, then linear decay).")] = 5e-4,
    warmup: Annotated[int, typer.Option(min=0, help="Warm-up steps.")] = 300,
    seed: Annotated[int, typer.Option(help="Seed of initialisation, order and masking.")] = 0,
    amp: Annotated[str, typer.Option(help="auto (bf16 where the CPU or GPU has it), bf16 or off.")] = "auto",
    save_every: Annotated[int, typer.Option(min=1, help="Save (and allow a resume) every N steps.")] = 500,
    time_limit: Annotated[float, typer.Option(min=0, help="Minutes of training, summed over resumes; stops at the first save past them (0: none).")] = 0.0,
    resume: Annotated[bool, typer.Option("--resume", help="Go on from OUT's last save, with the settings it was started with.")] = False,
    device: DeviceOption = "auto",
    quiet: QuietOption = False,
) -> None:
    """Pretrain a small BERT from scratch (masked-language modelling) on captions or any text: a plain backbone for GAN-BERT."""
    from ganbert.pretrain import PretrainConfig, pretrain_bert, read_sentences
    from t2i_cli.data.ganbert_split import check_task_source, pretraining_sentences
    from t2i_cli.devices import amp_dtype, resolve_device
    from t2i_cli.progress import progress_bar

    check_task_source(data, text, second="--text FILE")
    if not resume:
        check_output_path(out, as_folder=True)
    torch_device = resolve_device(device)
    config = PretrainConfig(layers=layers, hidden=hidden, heads=heads, intermediate=intermediate, max_length=max_length, steps=steps,
                            batch_size=batch_size, learning_rate=lr, warmup_steps=warmup, seed=seed,
                            bf16=amp_dtype(amp, torch_device) is not None)
    config.validate()
    if data is not None:
        sentences, source = pretraining_sentences(data, holdout=holdout, seed=split_seed)
    else:
        sentences, source = read_sentences(text), {"text": text.name}
    with progress_bar("pretraining", total=steps, enabled=not quiet) as advance:
        result = pretrain_bert(sentences, config, out, device=torch_device, save_every=save_every, resume=resume, source=source,
                               progress=advance, time_limit=time_limit)
    if result.steps < steps:
        typer.echo(f"stopped at step {result.steps} of {steps} (time limit, {result.seconds / 60:.1f} minutes): "
                   f"go on with --resume and a longer --time-limit")
        return
    typer.echo(f"wrote {out}: {result.parameters / 1e6:.1f}M parameters, {len(sentences)} sentences, {result.steps} steps in "
               f"{result.seconds / 60:.1f} minutes; masked-token accuracy on {result.held_out_sentences} held-out sentences "
               f"{result.held_out_accuracy:.3f}. Use it with --backbone {out} or --encoder hf:{out}")


@ganbert_app.command("compare", epilog=COMPARE_EXAMPLE)
def ganbert_compare_cli(
    out: Annotated[Path, typer.Argument(help="Results file (JSON), written after every run; an existing one of the same settings is gone on with.")],
    data: TaskDataOption = None,
    tsv: TsvOption = None,  # the fractions keep that share of its labelled rows labelled
    eval_tsv: EvalTsvOption = None,
    backbones: Annotated[Optional[list[str]], typer.Option("--backbone", help="A BERT folder, or minilm; repeat for several (default: minilm).")] = None,
    fractions: Annotated[str, typer.Option(help="Labelled fractions, comma-separated.")] = "0.01,0.02,0.05",
    seeds: Annotated[str, typer.Option(help="Seeds, comma-separated: each picks other labelled rows and another initialisation.")] = "0,1,2",
    holdout: Annotated[float, typer.Option(help="--data: share of train images held out to score (the same for every run).")] = 0.2,
    steps: Annotated[int, typer.Option(min=1, help="Optimizer steps a run.")] = 1000,
    batch_size: Annotated[int, typer.Option(min=1, help="Sentences per step.")] = 32,
    lr: Annotated[float, typer.Option(help="AdamW rate.")] = 5e-5,
    max_length: Annotated[int, typer.Option(min=4, help="Tokens per sentence.")] = 64,
    device: DeviceOption = "auto",
    quiet: QuietOption = False,
) -> None:
    """The GAN-BERT paper's comparison: baseline fine-tuning against GAN-BERT, per backbone, labelled fraction and seed."""
    from ganbert.model import GanBertConfig
    from t2i_cli.data.ganbert_split import check_pretraining_unseen, check_task_source, ganbert_task
    from t2i_cli.devices import resolve_device
    from t2i_cli.progress import progress_bar
    from t2i_cli.training.caption_encoder import compare_caption_encoders, comparison_table

    check_task_source(data, tsv)
    if tsv is not None and eval_tsv is None:
        raise T2IError("a comparison scores every run: give --eval-tsv FILE with --tsv", parameter="eval_tsv")
    check_output_path(out, as_folder=False)
    chosen_fractions, chosen_seeds = _numbers(fractions, float, "fractions"), _numbers(seeds, int, "seeds")
    chosen = [None if b.strip().lower() == "minilm" else b for b in (backbones or ["minilm"])]
    if data is not None:
        for backbone in chosen:
            if backbone is not None:
                check_pretraining_unseen(Path(backbone), data, holdout)
    for fraction in chosen_fractions:
        if not 0 < fraction <= 1:
            raise T2IError(f"labelled fractions must lie in (0, 1], got {fraction}", parameter="fractions")
    configs = {mode: GanBertConfig(mode=mode, steps=steps, batch_size=batch_size, learning_rate=lr, max_length=max_length)
               for mode in ("baseline", "ganbert")}
    for config in configs.values():
        config.validate()

    def task_for(fraction: float, seed: int):
        if data is not None:
            return ganbert_task(data=data, selection=H5Selection(fraction, holdout, 0, labelled_seed=seed))
        return ganbert_task(tsv=tsv, eval_tsv=eval_tsv, tsv_labelled=(fraction, seed))

    settings = {"source": str(data or tsv), "eval_tsv": str(eval_tsv) if eval_tsv else None, "holdout": holdout if data else None,
                "steps": steps, "batch_size": batch_size, "learning_rate": lr, "max_length": max_length}

    def on_run(run: dict) -> None:
        log.info("%s, %s, %.0f%% labelled, seed %d: accuracy %.4f (%.0f s)", run["backbone"], run["mode"], 100 * run["fraction"],
                 run["seed"], run["accuracy"], run["seconds"])

    total = len(chosen) * len(chosen_fractions) * len(chosen_seeds) * 2
    with progress_bar("runs", total=total, enabled=not quiet) as advance:
        runs = compare_caption_encoders(
            task_for=task_for, backbones=chosen, fractions=chosen_fractions, seeds=chosen_seeds,
            config_for=lambda mode, seed: dataclasses.replace(configs[mode], seed=seed), results=out, settings=settings,
            device=resolve_device(device), on_run=on_run, progress=advance,
        )
    typer.echo(f"accuracy on the held-out sentences (mean ± sd over seeds; {out}):")
    typer.echo(f"  {'backbone':<28} {'labelled':>8}  {'baseline':>15}  {'GAN-BERT':>15}  gain (points)")
    for row in comparison_table(runs):
        typer.echo(f"  {Path(row['backbone']).name:<28} {row['fraction']:>8.0%}  {str(row['baseline']):>15}  {str(row['ganbert']):>15}  "
                   f"{row['gain_points'].mean:+.1f} ± {row['gain_points'].std:.1f} ({counted(len(row['seeds']), 'seed')})")


def _numbers(text: str, kind: type, parameter: str) -> list:
    try:
        values = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise T2IError(f"--{parameter} takes comma-separated numbers, got {text!r}", parameter=parameter) from None
    if not values:
        raise T2IError(f"--{parameter} names none", parameter=parameter)
    return values


@ganbert_app.command("eval", epilog=EVAL_EXAMPLE)
def ganbert_eval_cli(
    checkpoint: Annotated[Path, typer.Argument(help="A folder written by t2i ganbert train.")],
    data: Annotated[Optional[Path], typer.Option("--data", help="A t2i HDF5 file.")] = None,
    split: Annotated[str, typer.Option(help=f"--data: {HELD_OUT} (the train images the checkpoint held out), train, valid or test.")] = HELD_OUT,
    tsv: Annotated[Optional[Path], typer.Option("--tsv", help="text<TAB>label lines to score.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    device: DeviceOption = "auto",
) -> None:
    """Accuracy and macro-F1 of a GAN-BERT checkpoint on a labelled split."""
    from ganbert.data import TextExample, read_tsv
    from ganbert.model import GanBertModel, read_description
    from t2i_cli.devices import resolve_device

    if (data is None) == (tsv is None):
        raise T2IError("give exactly one of --data FILE.h5 or --tsv FILE.tsv")
    description = read_description(checkpoint)
    if tsv is not None:
        examples, name = read_tsv(tsv), str(tsv)
    elif split == HELD_OUT:
        recorded = description.get("metadata", {}).get("source", {})
        if "holdout" not in recorded:
            raise T2IError(f"{checkpoint} was not trained from an HDF5 file, so it has no held-out split; use --split train/valid/test or --tsv")
        selection = H5Selection(recorded["labelled_fraction"], recorded["holdout"], recorded["split_seed"])
        examples, name = selection.held_out(data), f"{data} ({HELD_OUT}: {recorded['holdout']:.0%} of train, seed {recorded['split_seed']})"
    else:
        captions, classes = captions_and_classes(data, split)
        examples, name = [TextExample(t, classes[n]) for n in sorted(captions) for t in captions[n]], f"{data} ({split})"
    model = GanBertModel.load(checkpoint, device=resolve_device(device))
    metrics = model.evaluate(examples)
    if as_json:
        typer.echo(json.dumps({"checkpoint": str(checkpoint), "set": name, "mode": model.config.mode, **metrics}, indent=2))
    else:
        typer.echo(f"{checkpoint} ({model.config.mode}) on {name}: accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}, {metrics['count']} sentences")
        if metrics["outside_labels"]:
            typer.echo(f"  {metrics['outside_labels']} of them have labels outside the model's {len(model.labels)}; they count as errors")
