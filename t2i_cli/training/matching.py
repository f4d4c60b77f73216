"""The caption-matching loss for G: AttnGAN's sentence-level DAMSM idea on our caption space.

An image encoder is trained contrastively (symmetric InfoNCE) to map images of the train split
next to their *frozen* caption embeddings, then frozen; during GAN training G's loss gains
``match_coef`` times a contrastive loss of its images against the batch's captions (each image
must be closer to its own caption than to the batch's captions of other classes, and each caption
to its own image). This gives G a direct signal for "is this the colour the caption asked for",
which a discriminator's single score gives only indirectly.

Kept apart from what measures the result:
- it is *not* the encoder behind R-precision (``evaluation/image_encoder.py``): another
  architecture (3x3 convolutions, GroupNorm, SiLU, average-pool downsampling) from another seed,
  so R-precision does not score G against the very model G was trained to please. Both are
  still trained the same way on the same captions, so R-precision stays correlated with this
  signal: read it beside FID and colour faithfulness, which share nothing with it;
- nothing here touches the Inception network behind FID and KID.

The encoder is trained once per (data, settings), cached beside the evaluation encoders, and
copied into the run folder (``RUN/match-encoder``) so that ``--resume`` never depends on the cache.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from t2i_cli.atomic import atomic_folder
from t2i_cli.checkpoint import RunFolder
from t2i_cli.errors import T2IError
from t2i_cli.evaluation.image_encoder import ImageEncoderConfig, cache_key, is_image_encoder, load_image_encoder
from t2i_cli.evaluation.image_encoder import save_image_encoder, train_image_encoder

log = logging.getLogger(__name__)

MATCHER_DIR = "matcher"  # beside a generator's weights: the model --rerank scores candidates with
# Another seed than the evaluation encoder's 0; width 32 keeps its one-off training to minutes on a CPU.
MATCH_ENCODER = ImageEncoderConfig(dim=0, width=32, steps=1500, batch_size=128, lr=1e-3, temperature=0.07, seed=1)
KIND = "t2i-match-encoder"


class MatchEncoder(nn.Module):
    """3x3 conv -> GroupNorm -> SiLU, average-pooled to half size, four times; mean pool; linear."""

    def __init__(self, dim: int, width: int = 64):
        super().__init__()
        layers, channels = [], 3
        for multiple in (1, 2, 4, 4):
            out = width * multiple
            layers += [nn.Conv2d(channels, out, 3, 1, 1), nn.GroupNorm(8, out), nn.SiLU(), nn.AvgPool2d(2)]
            channels = out
        self.features = nn.Sequential(*layers)
        self.project = nn.Linear(channels, dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 or float in [0, 255], ``(B, 3, H, W)`` -> unit vectors ``(B, dim)``."""
        return self.encode(images.float() / 127.5 - 1)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] (G's output range) -> unit vectors ``(B, dim)``."""
        return F.normalize(self.project(self.features(images).mean((2, 3))), dim=-1)


def _build(config: ImageEncoderConfig) -> MatchEncoder:
    return MatchEncoder(config.dim, config.width)


def match_encoder_for_run(
    run_dir: Path, data: Path, image_size: int, *, device: torch.device, progress=None, make: bool = True
) -> MatchEncoder:
    """The run's frozen match encoder: from ``RUN/match-encoder``, else the cache, else trained
    on the train split of ``data`` (and cached); copied into the run either way.

    ``make=False`` (the other ranks of a torchrun job) waits for rank 0 to put it in the run
    folder, polling the file system rather than in a collective, whose timeout its training could
    outlast; if rank 0 fails, torchrun stops this process too.
    """
    from t2i_cli.data.split import InMemorySplit
    from t2i_cli.cache import cache_dir

    folder = RunFolder(Path(run_dir)).match_encoder
    while not make and not is_image_encoder(folder):
        time.sleep(2)
    if not is_image_encoder(folder):
        train = InMemorySplit.load(data, "train", image_size=image_size)
        config = replace(MATCH_ENCODER, dim=int(train.embeddings.shape[-1]))
        cached = cache_dir() / "match-encoders" / cache_key({**train.identity, "kind": KIND}, config)
        if not is_image_encoder(cached):
            log.info("training the caption-matching image encoder on %d train images (once; cached in %s)", len(train.images), cached)
            started = time.perf_counter()
            model = train_image_encoder(train.images, train.embeddings, train.counts, config, device=device, progress=progress, build=_build)
            cached.parent.mkdir(parents=True, exist_ok=True)
            save_image_encoder(model, cached, config=config, data_identity=train.identity, kind=KIND)
            log.info("trained the caption-matching encoder in %.0f s (not counted in the run's training time)", time.perf_counter() - started)
        with atomic_folder(folder) as partial:
            shutil.copytree(cached, partial, dirs_exist_ok=True)
    try:
        model, _ = load_image_encoder(folder, device=device, build=_build, kind=KIND)
    except T2IError:
        raise T2IError(f"the run's caption-matching encoder {folder} is unreadable; delete that folder to train it again") from None
    return model.eval().requires_grad_(False)


def load_match_encoder(folder: Path, *, device: torch.device | str = "cpu", encoder: dict | None = None) -> MatchEncoder:
    """A caption-matching encoder saved by :func:`save_image_encoder` with this module's kind, in
    eval mode; with ``encoder`` (a caption encoder identity as JSON), refused unless it was trained
    against that encoder's embeddings."""
    model, description = load_image_encoder(Path(folder), device=torch.device(device), build=_build, kind=KIND)
    if encoder is not None and description.get("data", {}).get("encoder") != encoder:
        raise T2IError(f"the caption-matching encoder {folder} was trained against another caption encoder's embeddings",
                       parameter="rerank")
    return model.eval().requires_grad_(False)


def checkpoint_scorer(checkpoint: Path, *, device: torch.device | str = "cpu", encoder: dict | None = None):
    """The :func:`caption_scorer` of ``--rerank`` for the generator in ``checkpoint`` (a checkpoint
    folder): its ``matcher`` folder, refused in one line when there is none."""
    folder = Path(checkpoint) / MATCHER_DIR
    if not folder.is_dir():
        raise T2IError(f"this generator has no caption-matching model to rerank with: make one with "
                       f"t2i eval-encoder train --matcher --data DATA.h5 --out {folder}", parameter="rerank")
    return caption_scorer(load_match_encoder(folder, device=device, encoder=encoder), device)


def caption_scorer(model: MatchEncoder, device: torch.device | str = "cpu"):
    """``score(images, captions)``: the cosine between each uint8 image's matching vector and its
    caption embedding, ``(N,)`` on the CPU (what ``--rerank`` keeps the highest of)."""

    def score(images: torch.Tensor, captions: torch.Tensor) -> torch.Tensor:
        vectors = model(images.to(device))
        return (vectors * F.normalize(captions.to(device).float(), dim=-1)).sum(-1).float().cpu()

    return score


def train_match_encoder(data: Path, image_size: int, *, device: torch.device, steps: int | None = None, seed: int | None = None,
                        progress=None) -> tuple[MatchEncoder, ImageEncoderConfig, dict]:
    """Train a caption-matching encoder on the train split of ``data`` (the recipe of
    :data:`MATCH_ENCODER`, ``steps``/``seed`` overriding it); returns it, its config and the
    split's identity (for :func:`save_image_encoder` with ``kind=KIND``)."""
    from t2i_cli.data.split import InMemorySplit

    train = InMemorySplit.load(data, "train", image_size=image_size)
    config = replace(MATCH_ENCODER, dim=int(train.embeddings.shape[-1]))
    config = replace(config, **{k: v for k, v in (("steps", steps), ("seed", seed)) if v is not None})
    model = train_image_encoder(train.images, train.embeddings, train.counts, config, device=device, progress=progress, build=_build)
    return model, config, train.identity
