"""``t2i data``: build, inspect and re-embed caption-image HDF5 files."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Optional

import typer

from t2i_cli.commands.options import (
    DEFAULT_ENCODER,
    BatchSizeOption,
    DeviceOption,
    EmbeddingDtype,
    EmbeddingDtypeOption,
    EncoderOption,
    QuietOption,
    check_output_path,
    counted,
)

log = logging.getLogger(__name__)

data_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Build, inspect and re-embed caption-image HDF5 files.")


@data_app.command(
    "convert",
    epilog="Example: t2i data convert oxford102-64/ flowers.h5   (the Reed et al. release: jpg/, text_c10/, *classes.txt);  "
    "t2i data convert coco2014/ coco.h5 --image-size 128   (annotations/captions_{train,val}2014.json, train2014/, val2014/)",
)
def convert_cli(
    source: Annotated[Path, typer.Argument(help="Folder: the Reed et al. release layout, COCO captions JSON(s) with their images, or images with same-name .txt captions.")],
    output: Annotated[Path, typer.Argument(help="HDF5 file to write (atomically).")],
    layout: Annotated[str, typer.Option(help="auto, reed (jpg/ + text_c10/ + class lists), coco (captions*.json, in the folder or annotations/) or folder.")] = "auto",
    encoder: EncoderOption = DEFAULT_ENCODER,
    image_size: Annotated[Optional[int], typer.Option(help="Centre-crop and resize every image to this square size; default keeps the files as they are.")] = None,
    class_table: Annotated[Optional[Path], typer.Option(help="folder layout: CSV/TSV of image,class[,split].")] = None,
    class_from_folder: Annotated[bool, typer.Option(help="folder layout: each image's parent folder is its class.")] = False,
    valid_fraction: Annotated[Optional[float], typer.Option(help="Share held out for valid: of classes (reed, when no valclasses.txt; default 0.15) or of images (folder, and coco without one captions file per split; default 0.1).")] = None,
    test_fraction: Annotated[float, typer.Option(help="folder and coco layouts: share of images for test (coco: unless each split has its own captions file).")] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of the split draws.")] = 0,
    embedding_dtype: EmbeddingDtypeOption = EmbeddingDtype.float16,
    batch_size: BatchSizeOption = 128,
    device: DeviceOption = "auto",
    force: Annotated[bool, typer.Option("--force", help="Replace OUTPUT if it exists (only once the new file is complete).")] = False,
    strict: Annotated[bool, typer.Option(help="Stop at the first unusable image or caption file instead of skipping it.")] = False,
    quiet: QuietOption = False,
) -> None:
    """Convert a folder of images and captions into a t2i HDF5 file, embedding every caption."""
    from t2i_cli.data.convert import convert, skip_summary
    from t2i_cli.data.h5 import is_hdf5
    from t2i_cli.errors import T2IError
    from t2i_cli.text.encoder import load_text_encoder

    # Before the encoder's seconds of loading (the writer checks again). --force replaces a data
    # file only: a caption file named by mistake would otherwise become HDF5.
    check_output_path(output, as_folder=False, force=force)
    if output.exists() and not is_hdf5(output):
        raise T2IError(f"{output} exists and is not an HDF5 data file; --force replaces only data files: name another output",
                       parameter="output")
    text_encoder = load_text_encoder(encoder, device=device)
    report = convert(
        source,
        output,
        encoder=text_encoder,
        layout=layout,
        image_size=image_size,
        class_table=class_table,
        class_from_folder=class_from_folder,
        valid_fraction=valid_fraction,
        test_fraction=test_fraction,
        seed=seed,
        embedding_dtype=embedding_dtype.value,
        batch_size=batch_size,
        overwrite=force,
        strict=strict,
        progress=not quiet,
    )
    counts = ", ".join(f"{split} {n}" for split, n in report.counts.items())
    size_mb = report.output.stat().st_size / 1e6
    typer.echo(
        f"wrote {report.output} ({report.layout} layout): {counts} images, {report.captions} captions, "
        f"{text_encoder.identity}, {size_mb:.1f} MB in {report.seconds:.1f} s"
    )
    if report.skipped:
        log.warning("skipped %s: %s", counted(sum(report.skipped.values()), "item"), skip_summary(report))


@data_app.command("info", epilog="Example: t2i data info flowers.h5")
def info_cli(
    path: Annotated[Path, typer.Argument(help="A caption-image HDF5 file (t2i or reference layout).")],
    samples: Annotated[int, typer.Option(min=0, help="Sample captions to show per split.")] = 2,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show a data file's splits, counts, classes, encoder, image size and a few captions."""
    from t2i_cli.data.convert import describe

    info = describe(path, samples=samples)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    encoder = info["encoder"]
    encoder_text = (
        f"{encoder['name']} ({encoder['dim']}-d, {encoder['revision']})"
        if encoder
        else f"unknown ({info['embedding_dim']}-d embeddings; re-embed with t2i data embed)"
    )
    console = Console()
    console.print(f"[bold]{info['path']}[/bold]  {info['file_bytes'] / 1e6:.1f} MB, {info['layout']} layout")
    console.print(f"encoder: {encoder_text}")
    console.print(f"image size: {info['image_size'] or 'varies'}  classes: {info['classes']}")
    if info["source"]:
        console.print(f"source: {info['source']}")
    table = Table("split", "images", "captions", "classes")
    for split, row in info["splits"].items():
        table.add_row(split, str(row["images"]), str(row["captions"]), str(row["classes"]))
    console.print(table)
    for sample in info["samples"]:
        console.print(f"  [dim]{sample['split']}/{sample['example']}[/dim] {sample['caption']}", highlight=False)


@data_app.command("embed", epilog="Example: t2i data embed flowers.h5 --encoder hf:./my-bert")
def embed_cli(
    path: Annotated[Path, typer.Argument(help="The HDF5 file to re-embed in place (replaced only when complete).")],
    encoder: EncoderOption = DEFAULT_ENCODER,
    embedding_dtype: EmbeddingDtypeOption = EmbeddingDtype.float16,
    batch_size: BatchSizeOption = 128,
    device: DeviceOption = "auto",
    quiet: QuietOption = False,
) -> None:
    """Re-embed every caption of a data file with another encoder, in place and atomically."""
    from t2i_cli.data.convert import reembed
    from t2i_cli.data.h5 import CaptionImageFile
    from t2i_cli.text.encoder import load_text_encoder

    CaptionImageFile(path).close()  # a wrong path or layout fails before the encoder loads
    text_encoder = load_text_encoder(encoder, device=device)
    report = reembed(path, encoder=text_encoder, embedding_dtype=embedding_dtype.value, batch_size=batch_size, progress=not quiet)
    typer.echo(
        f"re-embedded {report.captions} captions of {sum(report.counts.values())} images in {path} "
        f"with {text_encoder.identity} in {report.seconds:.1f} s"
    )
