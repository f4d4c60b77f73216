"""``t2i generate`` and ``t2i interpolate``: captions in, PNG files out."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Optional

import typer

from t2i_cli.commands.options import DeviceOption, ForceOption, check_image_outputs, counted, write_images
from t2i_cli.commands.sr import SRMethodOption, SRWeightsOption

GENERATE_EXAMPLE = 'Example: t2i generate "this flower has pink petals" -n 8 --seed 1 --out pink.png'
INTERPOLATE_EXAMPLE = 'Example: t2i interpolate "red petals" "white petals" --steps 8 --out red-to-white.png'

CheckpointOption = Annotated[
    Optional[Path],
    typer.Option("--checkpoint", "-c", help="Checkpoint or training-run folder (default: the shipped flowers generator)."),
]
EncoderOverride = Annotated[
    Optional[str],
    typer.Option("--encoder", "-e", help="Where to find the checkpoint's caption encoder, if not MiniLM (hf:PATH or ganbert:PATH)."),
]
PROGRESS_FROM = 64  # images: a bar for requests that take seconds, none for the quick ones
SeedOption = Annotated[Optional[int], typer.Option("--seed", "-s", help="Image j of each caption uses seed + j (0 unless given).")]
RerankOption = Annotated[
    int,
    typer.Option("--rerank", help="Draw K candidates for each image and keep the one the generator's caption-matching "
                                  "model scores best (1: no reranking)."),
]
NoiseFromOption = Annotated[
    Optional[str],
    typer.Option("--noise-from", help="Draw with one flower's noise, as the demo names it: a seed (12), a reranked candidate "
                                      "(12c3) or a variation (12~0.3:40). Its pose stays; the caption sets the content."),
]
TruncationOption = Annotated[
    float,
    typer.Option("--truncation", help="Share of the noise distribution kept (BigGAN's truncation trick): 1 = all, "
                                      "lower trades variety for typical images."),
]


def safe_stem(caption: str, limit: int = 40) -> str:
    """A file-name fragment from a caption: lowercase ASCII words joined by '-', never empty."""
    words = re.findall(r"[a-z0-9]+", caption.lower())
    stem = "-".join(words)[:limit].rstrip("-")
    return stem or "caption"


def generate_cli(
    captions: Annotated[Optional[list[str]], typer.Argument(help="One or more captions.")] = None,
    captions_file: Annotated[Optional[Path], typer.Option("--captions-file", help="A text file, one caption a line.")] = None,
    num_images: Annotated[int, typer.Option("--num-images", "-n", help="Images per caption.")] = 1,
    seed: SeedOption = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="An image file (.png, .jpg, .webp: one image, or a captioned sheet of all) or a folder (one PNG per image).")] = Path("generated.png"),
    upscale: Annotated[int, typer.Option("--upscale", "-u", help="Enlarge the 64 px images x2, x3 or x4 (1: no).")] = 1,
    sr_method: SRMethodOption = "auto",
    sr_weights: SRWeightsOption = None,
    truncation: TruncationOption = 1.0,
    variation_of: Annotated[Optional[str], typer.Option("--variation-of", help="Draw variations of this flower (a seed, or noise as --noise-from takes it): image j's noise moves from it towards seed + j's by --strength.")] = None,
    strength: Annotated[float, typer.Option("--strength", help="With --variation-of: 0 keeps the flower's noise, 1 is seed + j's own (0.3: near variations).")] = 0.3,
    noise_from: NoiseFromOption = None,
    rerank: RerankOption = 1,
    checkpoint: CheckpointOption = None,
    encoder: EncoderOverride = None,
    device: DeviceOption = "auto",
    force: ForceOption = False,
) -> None:
    """Generate images from captions with a trained generator, optionally upscaled."""
    from t2i_cli.errors import T2IError
    from t2i_cli.grid import save_image
    from t2i_cli.pipeline import check_request
    from t2i_cli.progress import progress_bar

    texts = list(captions or [])
    if captions_file is not None:
        try:
            texts += [line for line in captions_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        except FileNotFoundError:
            raise T2IError(f"captions file {captions_file} does not exist") from None
        except UnicodeDecodeError:
            raise T2IError(f"captions file {captions_file} is not UTF-8 text") from None
    seed = seed_or_noise(seed, noise_from)
    texts = check_request(texts, num_images=num_images, seed=seed, upscale=upscale, sr_method=sr_method, truncation=truncation,
                          variation_of=variation_of, strength=strength, rerank=rerank, noise_from=noise_from)
    drawn_from = [f"noise{re.sub(r'[^0-9a-z.]+', '-', noise_from)}"] if noise_from else [f"seed{seed + j}" for j in range(num_images)]
    names = [f"{index:03d}-{safe_stem(caption)}-{name}.png" for index, caption in enumerate(texts) for name in drawn_from]
    as_file = check_image_outputs(out, names, inputs=[captions_file] if captions_file is not None else [], force=force)

    pipeline = load_pipeline(checkpoint, device=device, encoder=encoder, sr_weights=sr_weights, upscale=upscale)
    total = len(texts) * num_images
    with progress_bar("generating", total=total, enabled=total > PROGRESS_FROM) as advance:
        result = pipeline(texts, num_images=num_images, seed=seed, upscale=upscale, sr_method=sr_method, truncation=truncation,
                          variation_of=variation_of, strength=strength, rerank=rerank, noise_from=noise_from, progress=advance)
    images = result.final
    if rerank > 1:  # which candidate each image is, so --noise-from can draw it again without reranking
        typer.echo(f"noise drawn: {' '.join(str(noise) for noise in result.noise)}")
    if as_file:  # one image, or a sheet with a row per caption, wrapped past 16 images
        picture = images[0] if len(images) == 1 else result.grid()
        save_image(picture, out)
        typer.echo(f"wrote {out} ({counted(len(images), 'image')}, {picture.width}x{picture.height})")
        return
    write_images(images, out, names)


def interpolate_cli(
    first: Annotated[str, typer.Argument(help="Caption at the start.")],
    second: Annotated[str, typer.Argument(help="Caption at the end.")],
    steps: Annotated[int, typer.Option(help="Images along the way, ends included.")] = 8,
    seed: Annotated[Optional[int], typer.Option("--seed", "-s", help="Seed of the one noise every image is drawn with (0 unless given).")] = None,
    noise_from: NoiseFromOption = None,
    truncation: TruncationOption = 1.0,
    out: Annotated[Path, typer.Option("--out", "-o", help="An image file for the row of images (.png, .jpg, .webp), or a folder (one PNG per step: 000.png, 001.png, ...).")] = Path("interpolation.png"),
    upscale: Annotated[int, typer.Option("--upscale", "-u", help="Enlarge the images x2, x3 or x4 (1: no).")] = 1,
    sr_method: SRMethodOption = "auto",
    sr_weights: SRWeightsOption = None,
    checkpoint: CheckpointOption = None,
    encoder: EncoderOverride = None,
    device: DeviceOption = "auto",
    force: ForceOption = False,
) -> None:
    """Walk the caption-embedding space from one caption to another with the noise held fixed."""
    from t2i_cli.grid import save_image
    from t2i_cli.pipeline import check_interpolation, interpolation_file

    seed = seed_or_noise(seed, noise_from)
    first, second = check_interpolation(first, second, steps=steps, seed=seed, noise_from=noise_from, truncation=truncation,
                                        upscale=upscale, sr_method=sr_method)
    names = [interpolation_file(step) for step in range(steps)]
    as_file = check_image_outputs(out, names, force=force)
    pipeline = load_pipeline(checkpoint, device=device, encoder=encoder, sr_weights=sr_weights, upscale=upscale)
    result = pipeline.interpolate(first, second, steps=steps, seed=seed, noise_from=noise_from, truncation=truncation,
                                  upscale=upscale, sr_method=sr_method)
    if as_file:
        save_image(result.grid(), out)
        typer.echo(f"wrote {out} ({steps} images)")
        return
    write_images(result.final, out, names)


def seed_or_noise(seed: int | None, noise_from: str | None) -> int:
    """The seed to draw from (0 unless given); refuses one given beside --noise-from, which it would not change."""
    from t2i_cli.errors import T2IError

    if seed is not None and noise_from is not None:
        raise T2IError("--noise-from names the noise to draw with, so --seed would change nothing: give one of them", parameter="noise_from")
    return 0 if seed is None else seed


def load_pipeline(checkpoint: Path | None, *, device: str, encoder: str | None, sr_weights: Path | None, upscale: int):
    """The pipeline of ``checkpoint``, upscaling with ``sr_weights`` (which must be for ``upscale``) when given."""
    from t2i_cli.errors import T2IError
    from t2i_cli.pipeline import T2IPipeline

    pipeline = T2IPipeline.from_pretrained(checkpoint, device=device, encoder=encoder, sr_weights=[sr_weights] if sr_weights else [])
    if sr_weights is not None and upscale not in pipeline.sr_weights:
        raise T2IError(f"--sr-weights {sr_weights} are for x{next(iter(pipeline.sr_weights))}, but --upscale is {upscale}", parameter="upscale")
    return pipeline
