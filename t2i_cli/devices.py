"""Choosing the torch device: CUDA, then Apple MPS, then CPU, unless the user names one; and
tuning the C allocator that CPU tensors live in."""

from __future__ import annotations

import ctypes
import sys

from t2i_cli.errors import T2IError

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_BELOW = 1 << 30  # bytes
_tuned = False


def keep_freed_memory() -> bool:
    """Let glibc keep freed tensor memory for the next allocation instead of giving it back.

    By default glibc maps every large block (a batch of activations: 33 MB for 64 images at
    64 px) fresh from the kernel and unmaps it on free, so each new tensor pays a page fault per
    4 kB page; in the VMs this project runs on that made a 64-caption draw 2.5x slower than its
    arithmetic, and each DF-GAN training step 14 % slower (benchmarks/README.md). Raising the
    mmap and trim thresholds to 1 GB keeps such blocks in the heap for reuse. The peak memory is
    the same; what a process frees is returned when it exits. No effect (False) off glibc.
    """
    global _tuned
    if _tuned or not sys.platform.startswith("linux"):
        return _tuned
    try:
        libc = ctypes.CDLL("libc.so.6")
        _tuned = bool(libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_BELOW)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_BELOW))
    except (OSError, AttributeError):  # not glibc (musl, ...): its allocator keeps its own policy
        _tuned = False
    return _tuned


def resolve_device(spec: str = "auto"):
    """Return a ``torch.device`` for ``spec`` ("auto", "cpu", "cuda", "cuda:1", "mps")."""
    import torch

    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise T2IError(f"unknown device {spec!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise T2IError(f"device {spec!r} was asked for but this torch build sees no CUDA GPU")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise T2IError(f"device {spec!r} was asked for but MPS is not available here")
    return device
