"""``t2i evaluate``: how good a generator is on one split of a data file, by a fixed protocol.

1. Every real image of the split gets one of its captions (seeded); the generator draws one image
   from that caption's stored embedding (noise seed ``seed + i`` for image i).
2. The real images are split in two seeded halves A and B of equal size. FID and KID compare the
   real half A with the images generated from half B's captions; the floor is the same metric
   between real A and real B. Same sizes on both sides, so the floor is what a perfect generator
   would score under this protocol (small sets bias FID upwards; the floor shows by how much).
3. R-precision: each generated image, in the shared image-text space (see
   :mod:`~t2i_cli.evaluation.image_encoder`), must rank its own caption first among it and
   ``candidates - 1`` captions of other images of the split; the same on the real images is the
   reference (not a hard ceiling: a generated image is drawn from its very caption's embedding).
   Beside both, the R-precision of each image's *other* captions (their mean embedding): how
   distinctive the split's captions are at all.
4. Colour faithfulness (:mod:`~t2i_cli.evaluation.colour`): of the images whose caption names a
   petal colour, the share whose dominant flower colour (a fixed pixel rule) is that colour; the
   same rule on the real images with the same captions is the reference (what the rule and the
   captions allow at best, about 9 in 10 on oxford102-64).
5. Diversity: the mean pairwise Inception-feature distance between images of one caption drawn
   with different noise seeds, averaged over a seeded set of the split's captions; beside it, the
   same between real images of one class, averaged over the split's classes. A generator that
   ignores its noise scores 0. One class is wider than one caption (captions also fix a colour),
   so the real figure is a scale, not a target.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from t2i_cli.atomic import atomic_file
from t2i_cli.data.h5 import CaptionImageFile
from t2i_cli.data.split import InMemorySplit
from t2i_cli.errors import T2IError
from t2i_cli.evaluation.colour import colour_match, dominant_colours, petal_colours
from t2i_cli.evaluation.image_encoder import (
    ImageEncoderConfig,
    cache_key,
    load_image_encoder,
    save_image_encoder,
    train_image_encoder,
)
from t2i_cli.evaluation.inception import PREPROCESSING, InceptionFeatures
from t2i_cli.evaluation.metrics import (
    frechet_distance,
    kernel_inception_distance,
    mean_pairwise_distance,
    other_captions_embeddings,
    r_precision,
)
from t2i_cli.grid import captioned_grid, to_pil
from t2i_cli.pipeline import draw_images, load_generator
from t2i_cli.progress import progress_bar

log = logging.getLogger(__name__)

R_CANDIDATES = 100
SHEET_ROWS = 12
SHEET_SAMPLES = 4
DIVERSITY_CAPTIONS = 32
DIVERSITY_SAMPLES = 8  # images per caption (noise seeds) and real images per class


def cache_dir() -> Path:
    """Where trained image encoders and real-image features are kept ($T2I_CACHE_DIR or ~/.cache/t2i)."""
    return Path(os.environ.get("T2I_CACHE_DIR") or Path.home() / ".cache" / "t2i")


def eval_image_encoder(data: Path, *, image_size: int, device: torch.device, config: ImageEncoderConfig | None = None,
                       folder: Path | None = None, show_progress: bool = False):
    """The R-precision image encoder for ``data``: loaded from ``folder`` or the cache, else trained
    on the train split (and cached). Returns ``(model, description)``."""
    if folder is not None:
        return load_image_encoder(folder, device=device)
    train = InMemorySplit.load(data, "train", image_size=image_size)
    config = config or ImageEncoderConfig(dim=int(train.embeddings.shape[-1]))
    cached = cache_dir() / "eval-image-encoders" / cache_key(train.identity, config)
    if (cached / "image_encoder.json").is_file():
        return load_image_encoder(cached, device=device)
    log.info("training the evaluation image encoder on %d train images (once; cached in %s)", len(train.images), cached)
    with progress_bar("image encoder (once)", total=config.steps, enabled=show_progress) as advance:
        model = train_image_encoder(train.images, train.embeddings, train.counts, config, device=device, progress=advance)
    cached.parent.mkdir(parents=True, exist_ok=True)
    save_image_encoder(model, cached, config=config, data_identity=train.identity)
    return load_image_encoder(cached, device=device)


def _real_features(split: InMemorySplit, inception: InceptionFeatures, progress) -> np.ndarray:
    key = hashlib.sha256(json.dumps([split.identity, PREPROCESSING], sort_keys=True).encode()).hexdigest()[:20]
    path = cache_dir() / "inception-features" / f"{key}.npy"
    if path.is_file():
        return np.load(path)
    features = inception(split.images, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as partial, open(partial, "wb") as stream:
        np.save(stream, features)  # to a stream: given a path, np.save would append .npy
    return features


def _generate(generator, embeddings: torch.Tensor, seed: int, device: torch.device) -> torch.Tensor:
    """uint8 images, row i from noise seed ``seed + i``: the pipeline's own drawing."""
    return draw_images(generator, embeddings, list(range(seed, seed + len(embeddings))), device=device, batch_size=256)


def caption_diversity(generator, embeddings: torch.Tensor, features, *, seed: int, device: torch.device,
                      samples: int | None = None) -> float:
    """Mean pairwise feature distance within the ``samples`` images (default
    :data:`DIVERSITY_SAMPLES`) drawn from each row of ``embeddings`` (K, D), averaged over the K
    captions. ``features``: uint8 images (M, 3, S, S) -> (M, F) array (Inception pool features).
    Only ``generator(noise, embeddings)`` and ``generator.config.noise_dim`` are used."""
    samples = samples or DIVERSITY_SAMPLES
    # Caption k's images are rows k*samples ... k*samples + samples - 1; every row has its own noise
    # seed (seed + row), so the images of one caption differ by their noise only.
    images = _generate(generator, embeddings.repeat_interleave(samples, 0), seed, device)
    return mean_pairwise_distance(np.asarray(features(images)).reshape(len(embeddings), samples, -1))


def _class_groups(class_indices: np.ndarray | None, size: int, rng: np.random.Generator) -> np.ndarray:
    """(G, size) image indices: ``size`` images drawn without replacement from each class that has
    that many (classes in sorted order, so the draw depends on the seed only); (0, size) if none."""
    groups = []
    if class_indices is not None:
        for label in np.unique(class_indices):
            members = np.flatnonzero(class_indices == label)
            if label >= 0 and len(members) >= size:
                groups.append(np.sort(rng.choice(members, size, replace=False)))
    return np.array(groups, dtype=np.int64).reshape(-1, size)


def evaluate(checkpoint: Path, data: Path, split: str, *, seed: int = 0, device: torch.device,
             image_encoder: Path | None = None, show_progress: bool = False) -> tuple[dict, Image.Image]:
    """Run the protocol; returns the JSON-ready report and the sample sheet."""
    started = time.perf_counter()
    generator, info = load_generator(checkpoint)
    if not info.model.conditional:
        raise T2IError(f"{checkpoint} is unconditional; t2i evaluate measures caption-conditioned generators")
    with CaptionImageFile(data) as file:
        if file.encoder != info.encoder:
            raise T2IError(
                f"{data} is embedded with {file.encoder}, but {checkpoint} was trained with {info.encoder}; "
                f"re-embed a copy with that encoder (t2i data embed)"
            )
    real = InMemorySplit.load(data, split, image_size=info.model.image_size)
    count = len(real.images)
    if count < 4:
        raise T2IError(f"the {split} split of {data} has {count} images; evaluation needs at least 4")
    # The image encoder first: a wrong one fails before minutes of Inception features.
    encoder, description = eval_image_encoder(data, image_size=info.model.image_size, device=device, folder=image_encoder, show_progress=show_progress)
    if description.get("data", {}).get("encoder") != real.identity["encoder"]:
        raise T2IError("the evaluation image encoder was trained against another caption encoder's embeddings")
    rng = np.random.default_rng(seed)
    pick = torch.from_numpy((rng.random(count) * real.counts.numpy()).astype(np.int64))
    caption_embeddings = real.embeddings[torch.arange(count), pick]
    captions = [real.captions[i][int(pick[i])] if int(pick[i]) < len(real.captions[i]) else "" for i in range(count)]
    order = rng.permutation(count)
    half = count // 2
    half_a, half_b = order[:half], order[half : 2 * half]

    generator.to(device)
    fake = _generate(generator, caption_embeddings, seed, device)
    inception = InceptionFeatures(device)
    with progress_bar("Inception, real images", total=count, enabled=show_progress) as advance:
        real_features = _real_features(real, inception, advance)
    with progress_bar("Inception, generated", total=count, enabled=show_progress) as advance:
        fake_features = inception(fake, progress=advance)

    # Subsets of half the half (at most 1,000, as Bińkowski et al.): the spread over them then says
    # how much the figure moves with the sample; subsets of all of it would all be the same set.
    subset = min(1000, max(2, half // 2))
    fid = frechet_distance(real_features[half_a], fake_features[half_b])
    fid_floor = frechet_distance(real_features[half_a], real_features[half_b])
    kid = kernel_inception_distance(real_features[half_a], fake_features[half_b], subset_size=subset, seed=seed)
    kid_floor = kernel_inception_distance(real_features[half_a], real_features[half_b], subset_size=subset, seed=seed)

    candidates = min(R_CANDIDATES, count)
    text = caption_embeddings.numpy()
    r_fake = r_precision(encoder.embed(fake).numpy(), text, candidates=candidates, seed=seed)
    r_real = r_precision(encoder.embed(real.images).numpy(), text, candidates=candidates, seed=seed)
    other_captions = other_captions_embeddings(real.embeddings.numpy(), real.counts.numpy(), pick.numpy())
    r_other_captions = r_precision(other_captions, text, candidates=candidates, seed=seed)

    # Generated image i and real image i are judged against the same caption, the one picked for i.
    named = [petal_colours(caption) for caption in captions]
    colour_fake = colour_match(dominant_colours(fake.numpy()), named)
    colour_real = colour_match(dominant_colours(real.images.numpy()), named)
    per_colour = {
        name: {"captions": row["captions"], "generated": round(row["match"], 4),
               "real": round(colour_real["per_colour"][name]["match"], 4)}
        for name, row in colour_fake["per_colour"].items()
    }

    # A stream of its own, so that the draws above (and their figures) do not depend on it.
    diversity_rng = np.random.default_rng([seed, 5])
    chosen = np.sort(diversity_rng.choice(count, min(DIVERSITY_CAPTIONS, count), replace=False))
    with progress_bar("diversity", total=len(chosen) * DIVERSITY_SAMPLES, enabled=show_progress) as advance:
        diversity = caption_diversity(
            generator, caption_embeddings[torch.from_numpy(chosen)], lambda images: inception(images, progress=advance),
            seed=seed, device=device,
        )
    groups = _class_groups(real.class_indices, DIVERSITY_SAMPLES, diversity_rng)
    diversity_real = mean_pairwise_distance(real_features[groups]) if len(groups) else None

    log.debug("FID %.2f (floor %.2f), KID %.4f, R-precision %.3f (real %.3f), %.0f s so far",
              fid, fid_floor, kid[0], r_fake, r_real, time.perf_counter() - started)
    report = {
        "checkpoint": str(checkpoint), "epoch": info.epoch, "data": str(data), "split": split, "seed": seed,
        "images": count, "half_size": half,
        "fid": round(fid, 3), "fid_floor": round(fid_floor, 3),
        "kid": {"mean": kid[0], "std": kid[1]}, "kid_floor": {"mean": kid_floor[0], "std": kid_floor[1]},
        "kid_subset_size": subset,
        "r_precision": round(r_fake, 4), "r_precision_real": round(r_real, 4),
        "r_precision_other_captions": round(r_other_captions, 4), "r_candidates": candidates,
        "colour_match": _rounded(colour_fake["match"]), "colour_match_real": _rounded(colour_real["match"]),
        "colour_captions": colour_fake["captions"], "colour_match_per_colour": per_colour,
        "diversity": round(diversity, 3), "diversity_real": None if diversity_real is None else round(diversity_real, 3),
        "diversity_captions": len(chosen), "diversity_samples": DIVERSITY_SAMPLES, "diversity_classes": len(groups),
        "protocol": {
            "fid_kid": "real half A vs images generated from half B's captions; floor: real A vs real B",
            "inception": PREPROCESSING,
            "r_precision": f"own caption ranked first among {candidates} (cosine, eval image encoder)",
            "image_encoder": {k: description[k] for k in ("config", "data") if k in description},
            "colour": "dominant flower colour (centre-weighted HSV rule, t2i_cli/evaluation/colour.py) "
                      "is a petal colour the picked caption names; real: the split's images, same captions",
            "diversity": f"mean pairwise Inception pool3 distance within {DIVERSITY_SAMPLES} images of one caption "
                         f"(noise seeds), over {len(chosen)} seeded captions; real: {DIVERSITY_SAMPLES} real images "
                         f"of one class, over {len(groups)} classes",
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    rows = []
    for i in order[:SHEET_ROWS]:
        samples = _generate(generator, caption_embeddings[i : i + 1].repeat(SHEET_SAMPLES, 1), seed, device)
        rows.append((captions[i], to_pil(real.images[i : i + 1]) + to_pil(samples)))
    return report, captioned_grid(rows)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
