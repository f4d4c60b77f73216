"""Training SRCNN: MSE, Adam with a 10x smaller rate on the last layer (Dong et al.), validation
PSNR every round, and the best weights kept."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from srcnn.data import PatchSampler, load_pair
from srcnn.errors import SRError
from srcnn.metrics import psnr
from srcnn.model import SRCNN, SRConfig
from srcnn.upscale import save_weights

log = logging.getLogger(__name__)


@dataclass
class SRTrainReport:
    steps: int
    best_step: int
    best_valid_psnr: float
    bicubic_valid_psnr: float
    seconds: float
    history: list[dict]


def _validation_psnr(model: SRCNN, pairs: list[tuple[torch.Tensor, torch.Tensor]], scale: int) -> float:
    model.eval()
    with torch.inference_mode():
        values = [psnr(model(x[None]).clamp(0, 1)[0], y, border=scale) for x, y in pairs]
    model.train()
    return sum(values) / len(values)


def train_srcnn(
    train_paths: list[Path],
    valid_paths: list[Path],
    out: Path,
    *,
    config: SRConfig,
    steps: int = 20000,
    batch_size: int = 64,
    patch: int = 33,
    lr: float = 1e-4,
    valid_every: int = 500,
    seed: int = 0,
    device: str | torch.device = "cpu",
    on_round: Callable[[dict], None] | None = None,
) -> SRTrainReport:
    """Train for ``steps`` batches; every ``valid_every`` steps measure PSNR on ``valid_paths``
    (Y channel, border shaved by the scale) and save the weights to ``out`` when they improve."""
    config.validate()
    if steps < 1 or batch_size < 1 or valid_every < 1:
        raise SRError("steps, batch size and valid_every must be positive")
    if patch < max(config.kernels):
        raise SRError(f"patch size {patch} is smaller than the largest kernel {max(config.kernels)}")
    torch.manual_seed(seed)
    device = torch.device(device)
    started = time.perf_counter()
    sampler = PatchSampler(train_paths, scale=config.scale, patch=patch, mode=config.mode, seed=seed)
    valid_pairs = [load_pair(p, config.scale, config.mode) for p in valid_paths]
    bicubic_psnr = sum(psnr(x, y, border=config.scale) for x, y in valid_pairs) / len(valid_pairs)
    model = SRCNN(config).to(device)
    optimizer = torch.optim.Adam(
        [
            {"params": list(model.extract.parameters()) + list(model.map.parameters()), "lr": lr},
            {"params": model.reconstruct.parameters(), "lr": lr * 0.1},
        ]
    )
    best, best_step, history, running = float("-inf"), 0, [], 0.0
    for step in range(1, steps + 1):
        inputs, targets = sampler.batch(batch_size)
        loss = F.mse_loss(model(inputs.to(device)), targets.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        running += loss.item()
        if step % valid_every == 0 or step == steps:
            value = _validation_psnr(model.cpu(), valid_pairs, config.scale)
            model.to(device)
            row = {"step": step, "train_mse": running / (step - (history[-1]["step"] if history else 0)),
                   "valid_psnr": value, "bicubic_psnr": bicubic_psnr}
            running = 0.0
            history.append(row)
            if value > best:
                best, best_step = value, step
                save_weights(model, out, extra={"valid_psnr": value, "bicubic_psnr": bicubic_psnr, "step": step})
            if on_round is not None:
                on_round(row)
    return SRTrainReport(steps, best_step, best, bicubic_psnr, time.perf_counter() - started, history)
