"""``t2i restyle`` and ``t2i style train|eval``: a photo's layout drawn with a new caption."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from t2i_cli.commands.generate import CheckpointOption, EncoderOverride
from t2i_cli.commands.options import DeviceOption, ForceOption, QuietOption, check_output_path, counted, image_or_folder
from t2i_cli.commands.sr import SRMethodOption

RESTYLE_EXAMPLE = 'Example: t2i restyle my-rose.jpg "this flower has yellow petals" --upscale 4 --out yellow-rose.png'
TRAIN_EXAMPLE = "Example: t2i style train --data flowers.h5 -c weights/flowers-gan   (writes weights/flowers-gan/style-encoder)"
EVAL_EXAMPLE = "Example: t2i style eval --data flowers.h5 -c weights/flowers-gan --split test --out style-test.json"

style_app = typer.Typer(no_args_is_help=True, add_completion=False, help="The style encoder behind t2i restyle: train it for a generator, measure it.")

StyleOption = Annotated[
    Optional[Path],
    typer.Option("--style", help="Style encoder folder (default: style-encoder/ inside the generator's checkpoint; RUN/style-encoders/epoch-N for a run's)."),
]
DataOption = Annotated[Path, typer.Option("--data", help="The HDF5 file (embedded with the generator's caption encoder).")]


def restyle_cli(
    photo: Annotated[Path, typer.Argument(help="The photo whose layout to keep (any size; its centre square is used).")],
    captions: Annotated[list[str], typer.Argument(help="One or more captions to draw it with.")],
    photo_caption: Annotated[Optional[str], typer.Option(help="What the photo shows: adds the generator's redrawing of the photo itself to --sheet.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Image file: the restyled image (a captioned sheet for several captions).")] = Path("restyled.png"),
    sheet: Annotated[Optional[Path], typer.Option(help="Also write the photo, its redrawing and every restyled image as one sheet.")] = None,
    upscale: Annotated[int, typer.Option("--upscale", "-u", help="Enlarge x2, x3 or x4 (1: no).")] = 1,
    sr_method: SRMethodOption = "auto",
    checkpoint: CheckpointOption = None,
    style: StyleOption = None,
    encoder: EncoderOverride = None,
    device: DeviceOption = "auto",
    force: ForceOption = False,
) -> None:
    """Keep a photo's layout (pose, place, background) and change its content to a caption's (Reed et al. 2016, §5.3)."""
    import logging

    from t2i_cli.data.images import open_image
    from t2i_cli.errors import T2IError
    from t2i_cli.grid import IMAGE_FORMATS, save_image
    from t2i_cli.outputs import same_file
    from t2i_cli.pipeline import T2IPipeline, check_request, validate_captions

    captions = check_request(captions, upscale=upscale, sr_method=sr_method)
    if photo_caption is not None:
        validate_captions([photo_caption])
        if sheet is None:
            logging.getLogger(__name__).warning("--photo-caption only adds the photo's redrawing to --sheet, which was not asked for")
    for path, parameter in ((out, "out"), (sheet, "sheet")):
        if path is not None:
            if not image_or_folder(path):
                raise T2IError(f"name an image file ({', '.join(IMAGE_FORMATS)}), got {path}", parameter=parameter)
            check_output_path(path, as_folder=False, inputs=[photo], force=force, parameter=parameter)
    if sheet is not None and (same_file(sheet, out) or sheet.resolve() == out.resolve()):
        raise T2IError(f"--sheet and --out both name {out}; name two files", parameter="sheet")
    picture = open_image(photo, what=f"photo {photo}")

    pipeline = T2IPipeline.from_pretrained(checkpoint, device=device, encoder=encoder)
    result = pipeline.restyle(picture, captions, photo_caption=photo_caption, upscale=upscale, sr_method=sr_method, style=style)
    restyled = result.final.restyled
    if len(restyled) == 1:
        save_image(restyled[0], out)
    else:
        from t2i_cli.grid import captioned_grid

        save_image(captioned_grid([(c, [i]) for c, i in zip(result.captions, restyled)]), out)
    typer.echo(f"wrote {out} ({counted(len(restyled), 'image')}, {restyled[0].width} px)")
    if sheet is not None:
        save_image(result.grid(), sheet)
        typer.echo(f"wrote {sheet}")


def _print_report(report: dict) -> None:
    generated, photos, restyle = report["generated"], report["photos"], report["restyle"]
    typer.echo(f"  generated images ({generated['images']}): noise MSE {generated['noise_mse']:.3f} (guessing 0: 1.0), "
               f"cosine {generated['noise_cosine']:.3f}; image PSNR {generated['image_psnr']:.2f} dB")
    typer.echo(f"  photos ({photos['images']}), own caption: PSNR {photos['psnr']:.2f} dB (random noise {photos['psnr_random_noise']:.2f}); "
               f"flower overlap {photos['flower_overlap']:.3f} (random noise {photos['flower_overlap_random_noise']:.3f}); "
               f"Inception distance {photos['inception_distance']:.2f} (random noise {photos['inception_distance_random_noise']:.2f})")
    if not restyle["pairs"]:
        typer.echo("  restyled to another colour: no photo of this split has a flower colour and another colour's caption")
        return
    typer.echo(f"  restyled to another colour ({restyle['pairs']} photos): new colour shown {restyle['new_colour_match']:.3f} "
               f"(random noise {restyle['new_colour_match_random_noise']:.3f}); flower overlap with the photo "
               f"{restyle['flower_overlap_with_photo']:.3f} (random noise {restyle['flower_overlap_with_photo_random_noise']:.3f}); Inception distance to the photo "
               f"{restyle['inception_distance_to_photo']:.2f} (random noise {restyle['inception_distance_to_photo_random_noise']:.2f})")


@style_app.command("train", epilog=TRAIN_EXAMPLE)
def style_train_cli(
    data: DataOption,
    checkpoint: CheckpointOption = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Folder to write (default: style-encoder/ inside the checkpoint; RUN/style-encoders/epoch-N for a run's).")] = None,
    steps: Annotated[int, typer.Option(min=1, help="Training steps (learning rate cosine-decayed over them).")] = 3000,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per step.")] = 32,
    lr: Annotated[float, typer.Option(min=0.0, help="Adam learning rate.")] = 5e-4,
    width: Annotated[int, typer.Option(min=1, help="Base channel width of S.")] = 32,
    real_weight: Annotated[float, typer.Option(min=0.0, help="Weight of redrawing real training photos (0: the paper's loss on generated images alone).")] = 1.0,
    eval_split: Annotated[str, typer.Option(help="Split to measure S on after training (valid, test), or none.")] = "valid",
    seed: Annotated[int, typer.Option(help="Seed of every draw.")] = 0,
    half: Annotated[bool, typer.Option("--half/--full", help="Store the weights as float16 (half the size; restyled images differ by ~0.01 grey levels).")] = True,
    force: Annotated[bool, typer.Option("--force", help="Replace the output folder if it exists (only once the new one is complete).")] = False,
    device: DeviceOption = "auto",
    quiet: QuietOption = False,
) -> None:
    """Train S, an image -> noise inverse of a frozen generator, on its drawings (and real photos) of the train split."""
    from t2i_cli.devices import resolve_device
    from t2i_cli.progress import progress_bar
    from t2i_cli.training.style import StyleTrainConfig, train_style_for

    config = StyleTrainConfig(steps=steps, batch_size=batch_size, lr=lr, width=width, real_weight=real_weight, seed=seed)
    def on_trained(folder: Path, record: dict) -> None:  # said before the minutes of measuring
        trained = record["trained"]
        typer.echo(f"trained {counted(steps, 'step')} in {trained['seconds']:.0f} s; last 100 steps: "
                   + ", ".join(f"{k} {v:.4f}" for k, v in trained["final"].items()))
        typer.echo(f"wrote {folder}; use it with t2i restyle PHOTO CAPTION -c {trained['generator']}")

    with progress_bar("style encoder", total=steps, enabled=not quiet) as advance:
        train_style_for(checkpoint, data, out, config, eval_split=eval_split, half=half, overwrite=force, device=resolve_device(device),
                        on_step=lambda step, stats: advance(1), on_trained=on_trained, on_evaluated=_print_evaluation)


def _print_evaluation(split, report: dict) -> None:
    unseen = " of classes the generator and S never saw" if split.split != "train" and split.classes else ""
    typer.echo(f"{split.split} split ({len(split)} photos{unseen}):")
    _print_report(report)


@style_app.command("eval", epilog=EVAL_EXAMPLE)
def style_eval_cli(
    data: DataOption,
    checkpoint: CheckpointOption = None,
    style: StyleOption = None,
    split: Annotated[str, typer.Option(help="train, valid or test (test classes are unseen in training).")] = "test",
    out: Annotated[Optional[Path], typer.Option("--out", help="JSON report to write.")] = None,
    device: DeviceOption = "auto",
) -> None:
    """Measure a style encoder: noise and image recovery on generated images, photo redrawing, restyling to another colour."""
    from t2i_cli.atomic import write_text
    from t2i_cli.devices import resolve_device
    from t2i_cli.style import default_style_path, load_style_encoder
    from t2i_cli.training.style import conditional_generator, evaluate_style_encoder, style_split

    if out is not None:
        check_output_path(out, as_folder=False)
    from t2i_cli.evaluation.inception import InceptionFeatures

    generator, info = conditional_generator(checkpoint)
    encoder = load_style_encoder(style or default_style_path(info.path), generator_checkpoint=info.path)
    torch_device = resolve_device(device)
    measured = style_split(data, split, info)
    report = evaluate_style_encoder(generator, encoder, measured, device=torch_device, features=InceptionFeatures(torch_device))
    _print_evaluation(measured, report)
    if out is not None:
        write_text(out, json.dumps(report, indent=2) + "\n")
        typer.echo(f"wrote {out}")
