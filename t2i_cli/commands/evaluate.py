"""``t2i evaluate`` and ``t2i eval-encoder train``: sample quality and caption faithfulness."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from t2i_cli.commands.generate import RerankOption, TruncationOption
from t2i_cli.commands.options import DeviceOption, QuietOption, check_output_path

EVALUATE_EXAMPLE = "Example: t2i evaluate --checkpoint weights/flowers-gan --data flowers.h5 --split test --out test.json"
eval_encoder_app = typer.Typer(no_args_is_help=True, add_completion=False, help="The image encoder behind R-precision.")


def evaluate_cli(
    data: Annotated[Path, typer.Option("--data", help="The HDF5 file (embedded with the checkpoint's caption encoder).")],
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", "-c", help="Checkpoint or run folder (default: the shipped generator).")] = None,
    split: Annotated[str, typer.Option(help="train, valid or test (test classes are unseen in training).")] = "valid",
    out: Annotated[Optional[Path], typer.Option("--out", help="JSON report to write (a sample sheet goes beside it as .png).")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of caption picks, halves and noise.")] = 0,
    image_encoder: Annotated[Optional[Path], typer.Option(help="An image encoder from t2i eval-encoder train (default: trained once and cached).")] = None,
    metrics: Annotated[str, typer.Option("--metrics", help="all, or a comma-separated choice of fid (with KID), r_precision, colour, second_colour, diversity (the colour ones only on flower captions).")] = "all",
    truncation: TruncationOption = 1.0,
    rerank: RerankOption = 1,
    device: DeviceOption = "auto",
    quiet: QuietOption = False,
) -> None:
    """FID and KID against the split's real images (beside the real-vs-real floor), R-precision, colour match and diversity."""
    from t2i_cli.atomic import write_text
    from t2i_cli.devices import resolve_device
    from t2i_cli.evaluation.evaluate import evaluate, parse_metrics
    from t2i_cli.grid import save_png
    from t2i_cli.weights import default_checkpoint

    if out is not None:
        check_output_path(out, as_folder=False)
    evaluation, sheet = evaluate(
        checkpoint or default_checkpoint(), data, split, seed=seed, device=resolve_device(device), image_encoder=image_encoder,
        metrics=parse_metrics(metrics), truncation=truncation, rerank=rerank, show_progress=not quiet,
    )
    sampling = ("" if truncation == 1 else f", truncation {truncation:g}") + ("" if rerank == 1 else f", best of {rerank}")
    typer.echo(f"{evaluation.checkpoint} on {data} ({split}, {evaluation.report.images} images{sampling}):")
    for line in evaluation.report.lines():
        typer.echo("  " + line)
    if out is not None:
        sheet_path = save_png(sheet, out.with_suffix(".png"))
        write_text(out, json.dumps({**evaluation.to_json(), "sheet": str(sheet_path)}, indent=2) + "\n")
        typer.echo(f"wrote {out} and {sheet_path}")


@eval_encoder_app.command("train", epilog="Example: t2i eval-encoder train --data flowers.h5 --out eval-encoder")
def eval_encoder_train_cli(
    data: Annotated[Path, typer.Option("--data", help="The HDF5 file; its train split is used.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write.")],
    steps: Annotated[int, typer.Option(min=1, help="Contrastive training steps.")] = 1500,
    image_size: Annotated[int, typer.Option(help="Image size of the generator it will judge.")] = 64,
    seed: Annotated[Optional[int], typer.Option(help="Seed (0; 1 with --matcher).")] = None,
    matcher: Annotated[bool, typer.Option("--matcher", help="Train the caption-matching model of generate --rerank instead (another architecture and seed than R-precision's); write it to CHECKPOINT/matcher.")] = False,
    device: DeviceOption = "auto",
    quiet: QuietOption = False,
) -> None:
    """Train the image encoder of R-precision (or, with --matcher, of --rerank) against the caption embeddings of the train split."""
    from t2i_cli.devices import resolve_device
    from t2i_cli.data.split import InMemorySplit
    from t2i_cli.evaluation.image_encoder import ImageEncoderConfig, save_image_encoder, train_image_encoder
    from t2i_cli.progress import progress_bar

    check_output_path(out, as_folder=True)
    if matcher:
        from t2i_cli.training.matching import KIND, train_match_encoder

        with progress_bar("caption-matching encoder", total=steps, enabled=not quiet) as advance:
            model, config, identity = train_match_encoder(data, image_size, device=resolve_device(device), steps=steps, seed=seed,
                                                          progress=advance)
        save_image_encoder(model, out, config=config, data_identity=identity, kind=KIND)
        typer.echo(f"wrote {out}; generate --rerank K uses it when it is the folder 'matcher' beside the generator's weights")
        return
    train = InMemorySplit.load(data, "train", image_size=image_size)
    config = ImageEncoderConfig(dim=int(train.embeddings.shape[-1]), steps=steps, seed=0 if seed is None else seed)
    with progress_bar("image encoder", total=steps, enabled=not quiet) as advance:
        model = train_image_encoder(train.images, train.embeddings, train.counts, config, device=resolve_device(device), progress=advance)
    save_image_encoder(model, out, config=config, data_identity=train.identity)
    typer.echo(f"wrote {out}; use it with t2i evaluate --image-encoder {out}")
