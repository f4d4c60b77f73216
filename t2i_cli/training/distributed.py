"""Data-parallel training through PyTorch's own engine: ``torchrun`` + DistributedDataParallel.

Why torchrun/DDP rather than Accelerate: the trainer already owns its loop, AMP, checkpoints and
EMA, and DDP is the part of torch that Accelerate would call anyway; torchrun ships with torch (no
new dependency) and launches on one machine or many with the same flags. ``t2i train`` reads the
environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK); without it, nothing here is used.

    torchrun --nproc_per_node 4 -m t2i_cli train --data flowers.h5 --out runs/flowers
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from t2i_cli.errors import T2IError


@dataclass(frozen=True)
class ProcessGroup:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, requested: torch.device) -> torch.device:
        """Each process drives its own GPU (LOCAL_RANK); CPU processes share the CPU."""
        if self.distributed and requested.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return requested

    def wrap(self, module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        if not self.distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)

    def maximum(self, value: float, device: torch.device) -> float:
        """The largest ``value`` over ranks (itself in one process): decisions every rank must
        take alike, such as whether the time limit is reached, are taken on it."""
        if not self.distributed:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=device)
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
        return float(tensor.item())

    def share_parameters(self, module: torch.nn.Module) -> None:
        """Start every rank from rank 0's parameters, for a module synchronised by
        :meth:`average_gradients` instead of DDP (which does this itself)."""
        if self.distributed:
            for tensor in [*module.parameters(), *module.buffers()]:
                torch.distributed.broadcast(tensor.data, src=0)

    def average_gradients(self, module: torch.nn.Module) -> None:
        """All-reduce the gradients of ``module`` to their mean over ranks, after ``backward``.

        Used instead of DDP for a discriminator whose loss takes a gradient penalty (a double
        backward, which DDP's reducer does not support) and is computed through its parts
        (``image_features``/``score``, which bypass ``DDP.forward``, so DDP would never arm its
        reducer): here the gradients are just averaged once the whole backward is done, whatever
        it went through (StyleGAN2-ADA trains this way).
        """
        if not self.distributed:
            return
        params = [p for p in module.parameters() if p.requires_grad]
        for p in params:  # every rank must send the same layout, used or not
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        grads = [p.grad for p in params]
        flat = torch.cat([g.flatten() for g in grads])
        torch.distributed.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    def close(self) -> None:
        if self.distributed and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def join_process_group(device_type: str) -> ProcessGroup:
    """Join the group torchrun described in the environment (NCCL on GPUs, gloo on CPUs)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return ProcessGroup()
    try:
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    except (KeyError, ValueError):
        raise T2IError("WORLD_SIZE is set but RANK is not: launch multi-process training with torchrun") from None
    if not torch.distributed.is_available():
        raise T2IError("this torch build has no torch.distributed; multi-process training is unavailable")
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return ProcessGroup(rank=rank, world_size=world_size, local_rank=local_rank)
