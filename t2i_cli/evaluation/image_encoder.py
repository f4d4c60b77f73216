"""The image side of R-precision's shared image-text space.

A small CNN maps a 64 px image to the caption encoder's space and is trained contrastively
(symmetric InfoNCE, CLIP-style) against the *frozen* caption embeddings of the train split, so
"does this image match this caption" is scored in the space the generator was conditioned on.
Trained once per (data file content, caption encoder, settings) and cached.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from t2i_cli.component import CONFIG_FILE, read_component, write_component
from t2i_cli.errors import T2IError

# 2: a component folder (config.json); 1: the same fields in image_encoder.json, still read.
FORMAT = 2
# What a cache key covers: how the encoder is trained (not how it is stored, which FORMAT says).
TRAINING_VERSION = 1
WEIGHTS_FILE = "image_encoder.safetensors"
LEGACY_DESCRIPTION = "image_encoder.json"
EVAL_KIND = "t2i-eval-image-encoder"  # R-precision's; the caption-matching one (training/matching.py) has its own


@dataclass(frozen=True)
class ImageEncoderConfig:
    dim: int
    width: int = 32
    steps: int = 1500
    batch_size: int = 128
    lr: float = 1e-3
    temperature: float = 0.07
    seed: int = 0


class ImageEncoder(nn.Module):
    """Four stride-2 conv blocks, global average pool, linear projection, L2-normalised output."""

    def __init__(self, dim: int, width: int = 32):
        super().__init__()
        layers, channels = [], 3
        for multiple in (1, 2, 4, 8):
            layers += [nn.Conv2d(channels, width * multiple, 4, 2, 1, bias=False), nn.BatchNorm2d(width * multiple), nn.LeakyReLU(0.2)]
            channels = width * multiple
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.project = nn.Linear(channels, dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 or float in [0, 255], ``(B, 3, H, W)`` -> unit vectors ``(B, dim)``."""
        x = images.float() / 127.5 - 1
        return nn.functional.normalize(self.project(self.features(x)), dim=-1)

    @torch.inference_mode()
    def embed(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        self.eval()
        device = next(self.parameters()).device
        return torch.cat([self(images[i : i + batch_size].to(device)).cpu() for i in range(0, len(images), batch_size)])


def _default_build(config: ImageEncoderConfig) -> ImageEncoder:
    return ImageEncoder(config.dim, config.width)


def train_image_encoder(
    images: torch.Tensor, embeddings: torch.Tensor, counts: torch.Tensor, config: ImageEncoderConfig,
    *, device: torch.device, progress=None, build: Callable[[ImageEncoderConfig], nn.Module] | None = None,
) -> nn.Module:
    """``images`` uint8 (N, 3, S, S); ``embeddings`` (N, C, D) caption embeddings padded to C per
    image, ``counts`` (N,) how many are real. Each step pairs a batch of images (randomly flipped)
    with one random caption each. ``build`` makes the model to train (images in [0, 255] -> unit
    vectors; default :class:`ImageEncoder`), called once the seed is set."""
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    model = (build or _default_build)(config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps)
    targets = nn.functional.normalize(embeddings.float(), dim=-1)
    labels = torch.arange(min(config.batch_size, len(images)), device=device)
    for _ in range(config.steps):
        index = torch.randperm(len(images), generator=generator)[: config.batch_size]
        pick = (torch.rand(len(index), generator=generator) * counts[index]).long()
        flip = torch.rand(len(index), generator=generator) < 0.5
        batch = images[index]
        batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch).to(device)
        captions = targets[index, pick].to(device)
        logits = model(batch) @ captions.T / config.temperature
        loss = (nn.functional.cross_entropy(logits, labels) + nn.functional.cross_entropy(logits.T, labels)) / 2
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if progress is not None:
            progress(1)
    return model.eval()


def cache_key(data_identity: dict, config: ImageEncoderConfig) -> str:
    payload = json.dumps({"data": data_identity, "config": asdict(config), "format": TRAINING_VERSION}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def save_image_encoder(
    model: nn.Module, folder: Path, *, config: ImageEncoderConfig, data_identity: dict, kind: str = EVAL_KIND
) -> Path:
    """Write ``folder`` atomically, a component (:mod:`t2i_cli.component`): ``config.json`` (kind,
    format, the encoder's config and the data it was trained on) + ``image_encoder.safetensors``."""
    return write_component(folder, kind=kind, format=FORMAT, config={"config": asdict(config), "data": data_identity},
                           weights={WEIGHTS_FILE: model.state_dict()})


def is_image_encoder(folder: Path) -> bool:
    """Whether ``folder`` holds a saved image encoder, of either layout (for caches and waits)."""
    return (Path(folder) / CONFIG_FILE).is_file() or (Path(folder) / LEGACY_DESCRIPTION).is_file()


def _description(folder: Path, *, kind: str, what: str) -> dict:
    """The checked description of a saved encoder: ``config.json``, or a format-1 folder's
    ``image_encoder.json`` (whose first files named no kind: they are all R-precision's)."""
    name = CONFIG_FILE if (folder / CONFIG_FILE).is_file() else LEGACY_DESCRIPTION
    try:
        description = json.loads((folder / name).read_text())
        found = description.get("kind", EVAL_KIND)
    except (OSError, ValueError, AttributeError, RecursionError):
        raise T2IError(f"{folder} is not a readable {what}") from None
    if found != kind:
        raise T2IError(f"{folder} is an image encoder of kind {found!r}, not {kind!r}")
    if name == CONFIG_FILE:
        return read_component(folder, kind=kind, newest_format=FORMAT, what=what)
    return description


def load_image_encoder(
    folder: Path, *, device: torch.device, build: Callable[[ImageEncoderConfig], nn.Module] | None = None,
    kind: str = EVAL_KIND,
) -> tuple[nn.Module, dict]:
    """A saved encoder and its description, refused unless it is of ``kind`` (R-precision's, or the
    caption-matching one of ``--rerank`` and ``--match-coef``); ``build`` as in :func:`train_image_encoder`."""
    from safetensors.torch import load_file

    folder = Path(folder)
    what = "evaluation image encoder (t2i eval-encoder train writes one)" if kind == EVAL_KIND else \
        "caption-matching encoder (t2i eval-encoder train --matcher writes one)"
    description = _description(folder, kind=kind, what=what)
    try:
        config = ImageEncoderConfig(**description["config"])
        model = (build or _default_build)(config)
        model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError):
        raise T2IError(f"{folder} is not a readable {what}") from None
    return model.to(device).eval(), description
