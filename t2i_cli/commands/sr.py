"""``t2i sr train``, ``t2i sr eval`` and ``t2i upscale``: the SR stage (FSRCNN, SRCNN) from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from t2i_cli.commands.options import DeviceOption, ForceOption, QuietOption, check_output_path, counted, image_or_folder, unique_names

sr_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Train and evaluate the SR upscalers (FSRCNN, SRCNN).")

ScaleOption = Annotated[int, typer.Option("--scale", "-s", help="Upscaling factor: 2, 3 or 4.")]
SRMethodOption = Annotated[
    str, typer.Option("--sr-method", help="auto (the shipped network for the scale; bicubic where none), fsrcnn, srcnn or bicubic.")
]
SRWeightsOption = Annotated[
    Optional[Path], typer.Option("--sr-weights", help="An SR weights file, FSRCNN or SRCNN (default: the shipped one for the scale).")
]
UPSCALE_EXAMPLE = "Example: t2i upscale flower.png --upscale 4 --out big/"
TRAIN_EXAMPLE = (
    "Example: t2i sr train --arch fsrcnn --scale 2 --data T91/ --data flower_photos/ --out fsrcnn_x2.safetensors; "
    "then --scale 3 --init fsrcnn_x2.safetensors"
)


def weights_dir() -> Path:
    from t2i_cli.weights import WEIGHTS_DIR

    return WEIGHTS_DIR


@sr_app.command("train", epilog=TRAIN_EXAMPLE)
def sr_train_cli(
    scale: ScaleOption,
    data: Annotated[list[Path], typer.Option("--data", help="Image folder (repeat for several).")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the best weights (.safetensors).")],
    arch: Annotated[str, typer.Option(help="srcnn, fsrcnn (d-s-m 56-12-4) or fsrcnn-s (32-5-1), the paper's two sizes.")] = "srcnn",
    fsrcnn_size: Annotated[Optional[str], typer.Option(help="FSRCNN's d-s-m, e.g. 56-12-4 (default: the preset's).")] = None,
    output: Annotated[Optional[str], typer.Option(help="FSRCNN's enlarging layer: subpixel (the default) or deconv (the paper's, slower here).")] = None,
    init: Annotated[Optional[Path], typer.Option(help="Start from these weights (same network, any scale): all but the output layer.")] = None,
    valid_fraction: Annotated[float, typer.Option(help="Share of images held out for validation PSNR.")] = 0.1,
    steps: Annotated[int, typer.Option(help="Training batches.")] = 20000,
    batch_size: Annotated[int, typer.Option(help="Patches per batch.")] = 64,
    patch: Annotated[int, typer.Option(help="Side of the high-resolution target patch, in pixels.")] = 33,
    lr: Annotated[float, typer.Option(help="Adam rate (the output layer gets a tenth).")] = 1e-4,
    schedule: Annotated[str, typer.Option(help="Rate over the run: constant, or cosine (down to a hundredth).")] = "constant",
    scale_augment: Annotated[bool, typer.Option("--scale-augment/--no-scale-augment", help="Also train on each image at 0.9/0.8/0.7/0.6 of its size (FSRCNN's augmentation).")] = False,
    valid_every: Annotated[int, typer.Option(help="Steps between validations.")] = 500,
    kernels: Annotated[Optional[str], typer.Option(help="SRCNN's kernel sizes: 9-5-5 (the default) or the lighter 9-1-5.")] = None,
    widths: Annotated[Optional[str], typer.Option(help="SRCNN's filters of the first two layers: 64-32 (the paper's, the default), or 32-16 for speed.")] = None,
    mode: Annotated[str, typer.Option(help="y (luminance; Cb/Cr bicubic) or rgb.")] = "y",
    residual: Annotated[bool, typer.Option("--residual/--no-residual", help="Learn the detail bicubic misses.")] = True,
    seed: Annotated[int, typer.Option(help="Seed of the split and the patches.")] = 0,
    device: DeviceOption = "auto",
    quiet: QuietOption = False,
    force: ForceOption = False,
) -> None:
    """Train an SR network for one scale on image folders, keeping the weights with the best valid PSNR."""
    from srcnn.data import AUGMENT_SIZES, holdout_split
    from srcnn.errors import SRError
    from srcnn.images import list_images
    from srcnn.networks import network_config
    from srcnn.train import train_network
    from t2i_cli.devices import resolve_device

    config = network_config(
        arch, scale=scale, mode=mode, residual=residual, output=output,
        kernels=_dashed_ints(kernels, count=3, flag="--kernels", example="9-5-5") if kernels else None,
        widths=_dashed_ints(widths, count=2, flag="--widths", example="64-32") if widths else None,
        size=_dashed_ints(fsrcnn_size, count=3, flag="--fsrcnn-size", example="56-12-4", least=0) if fsrcnn_size else None,
    )
    config.validate()
    if out.suffix != ".safetensors":
        raise SRError(f"--out must end in .safetensors, got {out}", parameter="out")
    # Before minutes of training; replacing weights (the shipped ones, say) takes --force.
    check_output_path(out, as_folder=False, inputs=[init] if init else [], force=force)
    train_paths, valid_paths = holdout_split(list_images(data), valid_fraction=valid_fraction, seed=seed)

    def report(row: dict) -> None:
        if not quiet:
            typer.echo(
                f"step {row['step']}: train MSE {row['train_mse']:.6f}, valid PSNR {row['valid_psnr']:.2f} dB "
                f"(bicubic {row['bicubic_psnr']:.2f} dB), {row['seconds']:.0f} s", err=True,
            )

    result = train_network(
        train_paths, valid_paths, out, config=config, steps=steps, batch_size=batch_size, patch=patch,
        lr=lr, schedule=schedule, sizes=AUGMENT_SIZES if scale_augment else (1.0,), init=init,
        valid_every=valid_every, seed=seed, device=resolve_device(device), on_round=report,
    )
    typer.echo(
        f"wrote {out}: {arch} x{scale}, best valid PSNR {result.best_valid_psnr:.2f} dB at step {result.best_step} "
        f"(bicubic {result.bicubic_valid_psnr:.2f} dB, {len(train_paths)} train / {len(valid_paths)} valid images, "
        f"{result.seconds:.0f} s)"
    )


def _dashed_ints(text: str, *, count: int, flag: str, example: str, least: int = 1) -> tuple[int, ...]:
    from srcnn.errors import SRError

    try:
        values = tuple(int(v) for v in text.split("-"))
    except ValueError:
        values = ()
    if len(values) != count or min(values) < least:
        raise SRError(f"{flag} must look like {example}, got {text!r}")
    return values


@sr_app.command("eval", epilog="Example: t2i sr eval --scale 4 held-out-photos/")
def sr_eval_cli(
    folders: Annotated[list[Path], typer.Argument(help="Folders (or files) of high-resolution images.")],
    scale: ScaleOption,
    sr_weights: Annotated[
        Optional[list[Path]], typer.Option("--sr-weights", help="Weights files to compare (repeat; default: every shipped network for the scale).")
    ] = None,
    held_out: Annotated[Optional[float], typer.Option(help="Only the images `t2i sr train --valid-fraction F` held out (same --seed).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the held-out split.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Shrink each image by the scale, enlarge it back with bicubic and with each network, and
    compare PSNR/SSIM on the Y channel (border shaved by the scale)."""
    import json

    from srcnn.data import holdout_split
    from srcnn.errors import SRError
    from srcnn.evaluate import evaluate
    from srcnn.images import list_images
    from srcnn.upscale import PREFERENCE, Upscaler, check_scale, shipped_weights

    check_scale(scale)
    paths = sr_weights or [p for arch in reversed(PREFERENCE) if (p := shipped_weights(weights_dir(), scale, arch))]
    if not paths:
        raise SRError(f"no SR weights for x{scale} in {weights_dir()}: name some with --sr-weights", parameter="sr_weights")
    upscalers = [Upscaler.load(scale, weights=path) for path in paths]
    images = list_images(folders)
    if held_out is not None:
        images = holdout_split(images, valid_fraction=held_out, seed=seed)[1]
    result = evaluate(images, upscalers)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("method", "PSNR (dB)", "gain (dB)", "SSIM", title=f"x{scale} on {result.images} images (Y channel, border {scale})")
    for score in result.scores:
        table.add_row(score.method, f"{score.psnr:.2f}", f"{score.psnr - result.bicubic.psnr:+.2f}", f"{score.ssim:.4f}")
    Console().print(table)


def upscale_cli(
    inputs: Annotated[list[Path], typer.Argument(help="Images to enlarge.")],
    # --upscale as generate and interpolate name it; --scale as sr train and sr eval do (and scripts may)
    scale: Annotated[int, typer.Option("--upscale", "--scale", "-u", "-s", help="Upscaling factor: 2, 3 or 4.")] = 2,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (or a .png file for a single input).")] = Path("upscaled"),
    sr_method: SRMethodOption = "auto",
    sr_weights: SRWeightsOption = None,
    device: DeviceOption = "auto",
    force: ForceOption = False,
) -> None:
    """Enlarge images x2, x3 or x4 with the shipped SR network (bicubic where no weights exist)."""
    from srcnn.errors import SRError
    from srcnn.upscale import Upscaler, check_output_size, check_scale
    from t2i_cli.data.images import to_8bit
    from t2i_cli.devices import resolve_device
    from t2i_cli.grid import save_image

    check_scale(scale)
    single_file = image_or_folder(out)
    if single_file and len(inputs) != 1:
        raise SRError("an image file takes one input image; name a folder for several", parameter="out")
    check_output_path(out, as_folder=not single_file, inputs=inputs, force=force)
    targets = [out] if single_file else [out / f"{name}.png" for name in unique_names([f"{path.stem}_x{scale}" for path in inputs])]
    if not single_file:
        from t2i_cli.outputs import check_outputs

        check_outputs(targets, inputs=inputs, force=force)
    from PIL import Image

    images = []
    for path in inputs:
        try:
            with Image.open(path) as image:
                check_output_size(image.size, scale, what=str(path))  # from the header, before decoding
                image.load()
                # RGB, RGBA and grayscale (with alpha) keep their mode through the upscaler, with
                # their range and transparency; every other mode is brought to one of those first.
                images.append(to_8bit(image.copy()))
        except FileNotFoundError:
            raise SRError(f"image {path} does not exist") from None
        except Image.DecompressionBombError:
            raise SRError(f"image {path} has more pixels than Pillow decodes safely (a decompression bomb?)") from None
        except OSError as exc:
            raise SRError(f"cannot read image {path}: {exc}") from None
    upscaler = Upscaler.load(scale, weights_dir=weights_dir(), weights=sr_weights, method=sr_method, device=resolve_device(device))
    results = upscaler.upscale_images(images)
    if single_file:
        save_image(results[0], out)
        typer.echo(f"wrote {out} ({results[0].width}x{results[0].height}, {upscaler.describe()})")
        return
    out.mkdir(parents=True, exist_ok=True)
    for target, image in zip(targets, results):
        save_image(image, target)
    typer.echo(f"wrote {counted(len(results), 'image')} to {out}/ ({upscaler.describe()})")
