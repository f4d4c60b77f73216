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

from t2i_cli.atomic import atomic_folder
from t2i_cli.errors import T2IError

FORMAT = 1
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
    payload = json.dumps({"data": data_identity, "config": asdict(config), "format": FORMAT}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def save_image_encoder(
    model: nn.Module, folder: Path, *, config: ImageEncoderConfig, data_identity: dict, kind: str = EVAL_KIND
) -> Path:
    """Write ``folder`` atomically: weights (safetensors) + ``image_encoder.json``."""
    from safetensors.torch import save_file

    folder = Path(folder)
    with atomic_folder(folder) as partial:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(partial / "image_encoder.safetensors"))
        description = {"kind": kind, "format": FORMAT, "config": asdict(config), "data": data_identity}
        (partial / "image_encoder.json").write_text(json.dumps(description, indent=2) + "\n")
    return folder


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
    try:
        description = json.loads((folder / "image_encoder.json").read_text())
        found = description.get("kind", EVAL_KIND)  # files from before the kind was written are R-precision's
    except (OSError, ValueError, AttributeError):
        raise T2IError(f"{folder} is not a readable {what}") from None
    if found != kind:
        raise T2IError(f"{folder} is an image encoder of kind {found!r}, not {kind!r}")
    try:
        config = ImageEncoderConfig(**description["config"])
        model = (build or _default_build)(config)
        model.load_state_dict(load_file(str(folder / "image_encoder.safetensors")))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError):
        raise T2IError(f"{folder} is not a readable {what}") from None
    return model.to(device).eval(), description
