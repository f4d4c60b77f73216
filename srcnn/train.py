"""Training an SR network (SRCNN or FSRCNN): MSE, Adam with a 10x smaller rate on the output layer
(Dong et al.), validation PSNR every round, and the best weights kept.

A network for one scale can start from another scale's weights (``init``): every layer but the
output layer is copied, as FSRCNN fine-tunes x3 and x4 from x2.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from srcnn.data import PatchSampler, make_pair
from srcnn.errors import SRError
from srcnn.images import load_rgb
from srcnn.metrics import psnr
from srcnn.networks import build_network, display_name
from srcnn.upscale import load_model, save_weights

log = logging.getLogger(__name__)

SCHEDULES = ("constant", "cosine")  # cosine: the rate falls to a hundredth of itself by the last step


@dataclass
class SRTrainReport:
    steps: int
    best_step: int
    best_valid_psnr: float
    bicubic_valid_psnr: float
    seconds: float
    history: list[dict]


def _validation_psnr(model: nn.Module, pairs: list[tuple[torch.Tensor, torch.Tensor]], scale: int) -> float:
    model.eval()
    with torch.inference_mode():
        values = [psnr(model(x[None]).clamp(0, 1)[0], y, border=scale) for x, y in pairs]
    model.train()
    return sum(values) / len(values)


def start_from(model: nn.Module, path: Path) -> None:
    """Copy every layer but the output layer from the weights at ``path``: the same architecture
    and sizes, possibly for another scale."""
    source = load_model(path)
    if dataclasses.replace(source.config, scale=model.config.scale) != model.config:
        raise SRError(
            f"--init {path} holds {display_name(source.config.arch)} {source.config.to_json()}, "
            f"which differs from the network being trained ({model.config.to_json()}) in more than the scale"
        )
    output_names = {f"{name}.{p}" for name, module in model.named_modules() if module is model.output_layer()
                    for p, _ in module.named_parameters()}
    copied = {k: v for k, v in source.state_dict().items() if k not in output_names}
    missing, unexpected = model.load_state_dict(copied, strict=False)
    if unexpected or set(missing) != output_names:
        raise SRError(f"--init {path}: its layers do not match the network being trained ({sorted(unexpected or missing)})")


def _cosine(step: int, steps: int) -> float:
    return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * step / steps))


def train_network(
    train_paths: list[Path],
    valid_paths: list[Path],
    out: Path,
    *,
    config,
    steps: int = 20000,
    batch_size: int = 64,
    patch: int = 33,
    lr: float = 1e-4,
    schedule: str = "constant",
    sizes: tuple[float, ...] = (1.0,),
    init: Path | None = None,
    valid_every: int = 500,
    seed: int = 0,
    device: str | torch.device = "cpu",
    on_round: Callable[[dict], None] | None = None,
) -> SRTrainReport:
    """Train for ``steps`` batches of ``patch``-pixel target patches (from each image at every
    fraction of its size in ``sizes``); every ``valid_every`` steps measure PSNR on ``valid_paths``
    (Y channel, border shaved by the scale) and save the weights to ``out`` when they improve."""
    config.validate()
    if steps < 1 or batch_size < 1 or valid_every < 1:
        raise SRError("steps, batch size and valid_every must be positive")
    if schedule not in SCHEDULES:
        raise SRError(f"the rate schedule must be {' or '.join(SCHEDULES)}, got {schedule!r}")
    torch.manual_seed(seed)
    model = build_network(config)
    low_input = model.input_is_low_resolution
    if not low_input and patch < max(config.kernels):
        raise SRError(f"patch size {patch} is smaller than the largest kernel {max(config.kernels)}")
    if init is not None:
        start_from(model, init)
    device = torch.device(device)
    model.to(device)
    started = time.perf_counter()
    sampler = PatchSampler(train_paths, scale=config.scale, patch=patch, mode=config.mode, seed=seed,
                           low_resolution_input=low_input, sizes=sizes)
    valid_images = [load_rgb(p) for p in valid_paths]  # read once: FSRCNN's pairs and the bicubic baseline's differ
    valid_pairs = [make_pair(image, config.scale, config.mode, low_resolution_input=low_input) for image in valid_images]
    bicubic_pairs = valid_pairs if not low_input else [make_pair(image, config.scale, config.mode) for image in valid_images]
    bicubic_psnr = sum(psnr(x, y, border=config.scale) for x, y in bicubic_pairs) / len(bicubic_pairs)
    output_params = list(model.output_layer().parameters())
    optimizer = torch.optim.Adam(
        [
            {"params": [p for p in model.parameters() if all(p is not q for q in output_params)], "lr": lr},
            {"params": output_params, "lr": lr * 0.1},
        ]
    )
    rate = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _cosine(step, steps) if schedule == "cosine" else 1.0)
    best, best_step, history, running = float("-inf"), 0, [], 0.0
    for step in range(1, steps + 1):
        inputs, targets = sampler.batch(batch_size)
        loss = F.mse_loss(model(inputs.to(device)), targets.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        rate.step()
        running += loss.item()
        if step % valid_every == 0 or step == steps:
            value = _validation_psnr(model.cpu(), valid_pairs, config.scale)
            model.to(device)
            row = {"step": step, "train_mse": running / (step - (history[-1]["step"] if history else 0)),
                   "valid_psnr": value, "bicubic_psnr": bicubic_psnr, "seconds": round(time.perf_counter() - started, 1)}
            running = 0.0
            history.append(row)
            if value > best:
                best, best_step = value, step
                save_weights(model, out, extra={"valid_psnr": value, "bicubic_psnr": bicubic_psnr, "step": step})
            if on_round is not None:
                on_round(row)
    return SRTrainReport(steps, best_step, best, bicubic_psnr, time.perf_counter() - started, history)
