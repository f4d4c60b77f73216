"""Training and measuring the style encoder S (Reed et al. 2016, §4.4): ``t2i style train``.

S learns to invert a frozen generator: it sees images G draws from random noise z and training
captions, and minimises ``‖z − S(G(z, φ))‖²`` (the paper's loss). Those images are all S ever
sees there, yet it is used on photos, which no generator draws exactly. With ``real_weight`` > 0,
S also sees real training photos x with their own captions φ(x) and minimises the mean absolute
pixel error of ``G(S(x), φ(x))`` against x (gradients pass through the frozen G), so that the
noise it finds for a photo redraws that photo's layout.

:func:`evaluate_style_encoder` measures three things on a split of classes S never saw:
- held-out generated images: how well z and the image are recovered;
- real photos with their own captions: how close ``G(S(x), φ(x))`` comes to x, in PSNR, flower
  overlap and Inception feature distance, beside ``G(random z, φ(x))``;
- restyling: each photo with a caption of another image that names a different petal colour. Does
  ``G(S(x), new caption)`` show the new colour (the colour rule of ``t2i evaluate``), and does its
  flower lie where the photo's does (:func:`flower_overlap`), more than ``G(random z, new
  caption)``'s does (the layout kept)?
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from srcnn.metrics import psnr
from t2i_cli.data.split import InMemorySplit, draw_captions
from t2i_cli.errors import T2IError
from t2i_cli.evaluation.colour import dominant_colours, petal_colours, pixel_names
from t2i_cli.grid import to_unit_range
from t2i_cli.models.style import StyleConfig, StyleEncoder
from t2i_cli.devices import auto_amp_dtype
from t2i_cli.sampling import draw_from_noise, seeded_noise

log = logging.getLogger(__name__)


@dataclass
class StyleTrainConfig:
    steps: int = 3000
    batch_size: int = 32
    lr: float = 5e-4  # Adam (0.5, 0.999), cosine-decayed to 0 over ``steps``
    width: int = 32
    real_weight: float = 1.0  # weight of the photo-reconstruction term; 0 trains on G's images alone (the paper)
    seed: int = 0
    amp: bool = True  # bfloat16 autocast where it is native (CUDA, AVX-512 BF16 CPUs), as t2i train does

    def validate(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise T2IError("steps and batch size must be at least 1")
        if not self.lr > 0 or self.real_weight < 0 or not math.isfinite(self.real_weight):
            raise T2IError("the learning rate must be > 0 and the real-photo weight >= 0")


def style_losses(
    encoder: torch.nn.Module,
    generator: torch.nn.Module,
    *,
    noise: torch.Tensor,
    captions: torch.Tensor,
    photos: torch.Tensor | None,
    real_weight: float,
) -> tuple[torch.Tensor, dict]:
    """S's loss for one batch: ``‖z − S(G(z, φ))‖²`` (mean over rows and components), plus
    ``real_weight`` × mean ``|G(S(x), φ(x)) − x|`` when photos ``x`` (in [-1, 1]) are given, their
    captions being ``captions``. Returns ``(loss, {"noise_mse", "photo_l1"})``."""
    with torch.no_grad():
        drawn, _ = generator(noise, captions)
    noise_mse = F.mse_loss(encoder(drawn).float(), noise.float())
    loss, stats = noise_mse, {"noise_mse": noise_mse.item()}
    if photos is not None and real_weight > 0:
        redrawn, _ = generator(encoder(photos), captions)
        photo_l1 = (redrawn.float() - photos.float()).abs().mean()
        loss = loss + real_weight * photo_l1
        stats["photo_l1"] = photo_l1.item()
    return loss, stats


def train_style_encoder(
    generator: torch.nn.Module,
    train: InMemorySplit,
    *,
    config: StyleTrainConfig,
    device: torch.device,
    on_step: Callable[[int, dict], None] | None = None,
) -> tuple[StyleEncoder, dict]:
    """S for ``generator`` (frozen, in eval mode), from ``train``'s captions (and photos when
    ``config.real_weight`` > 0); returns S and a record of the run (losses at the end, seconds)."""
    config.validate()
    g_config = generator.config
    if train.image_size != g_config.image_size or train.augment:
        raise T2IError(f"the training split must be held at the generator's {g_config.image_size} px without crops")
    with torch.random.fork_rng(devices=[]):  # S's initial weights come from the seed; the caller's RNG is left as it was
        torch.manual_seed(config.seed)
        return _train(generator, train, config, device, on_step)


def _train(generator, train: InMemorySplit, config: StyleTrainConfig, device: torch.device, on_step) -> tuple[StyleEncoder, dict]:
    g_config = generator.config
    draws = torch.Generator().manual_seed(config.seed)
    encoder = StyleEncoder(StyleConfig(image_size=g_config.image_size, noise_dim=g_config.noise_dim, width=config.width)).to(device)
    generator = generator.to(device).eval().requires_grad_(False)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=config.lr, betas=(0.5, 0.999))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / config.steps)))
    amp = auto_amp_dtype(device) if config.amp else None
    started, recent = time.perf_counter(), []
    for step in range(1, config.steps + 1):
        rows = torch.randint(len(train), (config.batch_size,), generator=draws)
        picks = draw_captions(train.counts[rows], torch.rand(config.batch_size, generator=draws))
        captions = train.embeddings[rows, picks].to(device)  # (B, E)
        noise = torch.randn(config.batch_size, g_config.noise_dim, generator=draws).to(device)
        photos = to_unit_range(train.images[rows]).to(device) if config.real_weight > 0 else None
        with torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            loss, stats = style_losses(encoder, generator, noise=noise, captions=captions, photos=photos, real_weight=config.real_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        recent.append(stats)
        recent = recent[-100:]
        if on_step is not None:
            on_step(step, stats)
    record = {
        "steps": config.steps, "seconds": round(time.perf_counter() - started, 1),
        "final": {k: round(float(np.mean([s[k] for s in recent])), 5) for k in recent[-1]},  # mean of the last 100 steps
    }
    return encoder.eval().requires_grad_(False), record


# --- measuring ----------------------------------------------------------------------------------


def _draw(generator, noise: torch.Tensor, captions: torch.Tensor, device) -> torch.Tensor:
    """uint8 images of ``generator`` for rows of noise and caption embeddings."""
    return draw_from_noise(generator, noise, captions, device=device, batch_size=256)


def _invert(encoder: StyleEncoder, images: torch.Tensor, device, batch_size: int = 256) -> torch.Tensor:
    return torch.cat([encoder(to_unit_range(images[s : s + batch_size]).to(device)).cpu() for s in range(0, len(images), batch_size)])


def flower_overlap(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over image pairs of the intersection over union of their flower masks: the pixels the
    colour rule names (not foliage, not dark, not grey; ``evaluation/colour.py``). Whatever their
    colours, two images with the flower in the same place and shape overlap; uint8 (N, 3, H, W)."""
    first, second = pixel_names(a.numpy()) >= 0, pixel_names(b.numpy()) >= 0  # (N, H, W)
    union = (first | second).sum((1, 2))
    return float(np.mean(np.where(union > 0, (first & second).sum((1, 2)) / np.maximum(union, 1), 1.0)))


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over images of each pair's PSNR (uint8 images, peak 255)."""
    return float(np.mean([psnr(x.float() / 255, y.float() / 255) for x, y in zip(a, b)]))


def recolour_partners(captions: list[list[str]], dominant: list[str | None], rng: np.random.Generator,
                      counts: list[int] | None = None) -> list[tuple[int, int, int, str]]:
    """For each photo with a dominant colour, one caption of another image that names exactly one
    petal colour, different from the photo's, drawn by ``rng`` (a colour uniformly among the other
    colours, then one of its captions): (photo row, partner row, partner caption index, the colour
    it names). Photos with no flower colour are left out. ``counts[row]``: how many of the row's
    captions have an embedding (reference files may hold fewer); only those are drawn."""
    by_colour: dict[str, list[tuple[int, int]]] = {}
    for row, texts in enumerate(captions):
        for k, text in enumerate(texts[: None if counts is None else counts[row]]):
            if len(names := petal_colours(text)) == 1:
                by_colour.setdefault(names[0], []).append((row, k))
    out = []
    for photo, colour in enumerate(dominant):
        if colour is None:
            continue
        colours = [name for name in sorted(by_colour) if name != colour]
        if not colours:
            continue
        name = colours[rng.integers(len(colours))]
        entries = [entry for entry in by_colour[name] if entry[0] != photo]
        if entries:
            out.append((photo, *entries[rng.integers(len(entries))], name))
    return out


@torch.inference_mode()
def evaluate_style_encoder(
    generator: torch.nn.Module,
    encoder: StyleEncoder,
    split: InMemorySplit,
    *,
    device: torch.device,
    features: Callable[[torch.Tensor], np.ndarray],
    generated: int = 512,
    seed: int = 0,
) -> dict:
    """The figures described in the module docstring; ``features`` maps uint8 images to
    Inception pool features (:class:`~t2i_cli.evaluation.inception.InceptionFeatures`)."""
    generator = generator.to(device).eval()
    encoder = encoder.to(device).eval()
    rng = np.random.default_rng(seed)
    noise_dim = generator.config.noise_dim

    # 1. Held-out generated images: G(z, φ) for captions of this split, z from seeds S never drew.
    rows = rng.integers(len(split), size=generated)
    picks = (rng.random(generated) * split.counts[rows].numpy()).astype(np.int64)
    captions = split.embeddings[torch.from_numpy(rows), torch.from_numpy(picks)]
    noise = seeded_noise(noise_dim, list(range(10**9 + seed, 10**9 + seed + generated)))
    drawn = _draw(generator, noise, captions, device)
    found = _invert(encoder, drawn, device)
    redrawn = _draw(generator, found, captions, device)
    generated_report = {
        "images": generated,
        "noise_mse": round(F.mse_loss(found, noise).item(), 4),  # 1.0 is what guessing z = 0 scores
        "noise_cosine": round(F.cosine_similarity(found, noise, dim=1).mean().item(), 4),
        "image_psnr": round(_psnr(redrawn, drawn), 2),
    }

    # 2. Photos with their own first caption: G(S(x), φ(x)) against x, and G(random z, φ(x)).
    photos = split.images
    own = split.embeddings[:, 0]
    random_noise = seeded_noise(noise_dim, list(range(seed, seed + len(photos))))
    found = _invert(encoder, photos, device)
    redrawn = _draw(generator, found, own, device)
    random_drawn = _draw(generator, random_noise, own, device)
    photo_features, redrawn_features, random_features = features(photos), features(redrawn), features(random_drawn)

    def distance(a, b) -> float:
        return round(float(np.linalg.norm(a - b, axis=1).mean()), 3)

    photos_report = {
        "images": len(photos),
        "psnr": round(_psnr(redrawn, photos), 2), "psnr_random_noise": round(_psnr(random_drawn, photos), 2),
        "inception_distance": distance(redrawn_features, photo_features),
        "inception_distance_random_noise": distance(random_features, photo_features),
        "flower_overlap": round(flower_overlap(redrawn, photos), 3),
        "flower_overlap_random_noise": round(flower_overlap(random_drawn, photos), 3),
        "noise_norm": round(found.norm(dim=1).mean().item() / math.sqrt(noise_dim), 3),  # random z: ~1.0
    }

    # 3. Restyling: each photo with another image's caption naming a different petal colour.
    pairs = recolour_partners(split.captions, dominant_colours(photos.numpy()), rng, split.counts.tolist())
    if not pairs:
        return {"split": split.split, "generated": generated_report, "photos": photos_report, "restyle": {"pairs": 0}}
    photo_rows = torch.tensor([p[0] for p in pairs], dtype=torch.long)
    targets = split.embeddings[torch.tensor([p[1] for p in pairs]), torch.tensor([p[2] for p in pairs])]
    restyled = _draw(generator, found[photo_rows], targets, device)
    random_restyled = _draw(generator, random_noise[photo_rows], targets, device)
    wanted = [p[3] for p in pairs]

    def colour_share(images) -> float:
        return round(float(np.mean([got == want for got, want in zip(dominant_colours(images.numpy()), wanted)])), 3)

    restyle_report = {
        "pairs": len(pairs),
        "new_colour_match": colour_share(restyled), "new_colour_match_random_noise": colour_share(random_restyled),
        "flower_overlap_with_photo": round(flower_overlap(restyled, photos[photo_rows]), 3),
        "flower_overlap_with_photo_random_noise": round(flower_overlap(random_restyled, photos[photo_rows]), 3),
        "inception_distance_to_photo": distance(features(restyled), photo_features[photo_rows.numpy()]),
        "inception_distance_to_photo_random_noise": distance(features(random_restyled), photo_features[photo_rows.numpy()]),
    }
    return {"split": split.split, "generated": generated_report, "photos": photos_report, "restyle": restyle_report}


def conditional_generator(checkpoint: str | Path | None):
    """The frozen generator of ``checkpoint`` (default: the shipped one) and its checkpoint info;
    an unconditional one is refused (S restyles with captions)."""
    from t2i_cli.weights import default_checkpoint
    from t2i_cli.sampling import load_generator

    generator, info = load_generator(checkpoint or default_checkpoint())
    if not info.model.conditional:
        raise T2IError(f"{info.path} is an unconditional generator: a style encoder restyles with captions", parameter="checkpoint")
    return generator, info


def style_split(data: Path, split: str, info) -> InMemorySplit:
    """``split`` of ``data`` at the generator's image size; refused if embedded with another encoder."""
    return InMemorySplit.load(data, split, image_size=info.model.image_size, expected_encoder=info.encoder)


def train_style_for(checkpoint: str | Path | None, data: Path, out: Path | None, config: StyleTrainConfig, *,
                    eval_split: str = "valid", half: bool = True, overwrite: bool = False, device: torch.device,
                    on_step=None, on_trained=None, on_evaluated=None) -> tuple[Path, dict]:
    """Train S for ``checkpoint``'s generator on ``data``'s train split, write it to ``out``
    (default: beside the generator, :func:`~t2i_cli.style.default_style_path`), then measure it on
    ``eval_split`` (or not: "none") and write it again with the figures. Everything the end needs
    is loaded before the minutes of training, so no failure there loses them. Returns the folder
    and its record; ``on_trained(out, record)`` hears of the first write (before the minutes of
    measuring), ``on_evaluated(split, report)`` sees the figures first."""
    from t2i_cli.outputs import check_output
    from t2i_cli.style import check_replaceable, default_style_path, generator_sha256, write_style_encoder

    if eval_split not in ("train", "valid", "test", "none"):
        raise T2IError(f"the evaluation split must be train, valid, test or none, got {eval_split!r}")
    config.validate()
    generator, info = conditional_generator(checkpoint)
    if out is None:
        out = default_style_path(info.path)
        out.parent.mkdir(exist_ok=True)  # RUN/style-encoders/ for a run's checkpoint
    if out.exists() and not overwrite:
        raise T2IError(f"{out} already exists, and replacing it was not asked for", parameter="overwrite")
    check_replaceable(out)
    check_output(out, as_folder=True)
    digest = generator_sha256(info.path)  # now: a run that goes on may prune this checkpoint meanwhile
    train = style_split(data, "train", info)
    evaluation = None
    if eval_split != "none":
        from t2i_cli.evaluation.inception import InceptionFeatures

        evaluation = (style_split(data, eval_split, info), InceptionFeatures(device))
    encoder, trained = train_style_encoder(generator, train, config=config, device=device, on_step=on_step)
    record = {"trained": {**trained, "config": {k: getattr(config, k) for k in ("batch_size", "lr", "width", "real_weight", "seed")},
                          "data": train.record, "generator": str(info.path)}}
    write_style_encoder(out, encoder, generator_sha256=digest, record=record, half=half)
    if on_trained is not None:
        on_trained(out, record)
    if evaluation is not None:
        split, features = evaluation
        record["evaluation"] = evaluate_style_encoder(generator, encoder, split, device=device, features=features)
        if on_evaluated is not None:
            on_evaluated(split, record["evaluation"])
        write_style_encoder(out, encoder, generator_sha256=digest, record=record, half=half)
    return out, record
