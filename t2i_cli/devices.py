"""The device and precision policy: choosing the torch device (CUDA, then Apple MPS, then CPU,
unless the user names one), mixed precision and memory layout for training, and tuning the C
allocator that CPU tensors live in. Torch is imported only inside the functions that need it."""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path

from t2i_cli.errors import T2IError

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_BELOW = 256 << 20  # bytes: above a batch's largest activations (33 MB for 64 images at 64 px)
_tuned = False


def keep_freed_memory() -> bool:
    """Let glibc keep freed tensor memory for the next allocation instead of giving it back.

    By default glibc maps every large block (a batch of activations: 33 MB for 64 images at
    64 px) fresh from the kernel and unmaps it on free, so each new tensor pays a page fault per
    4 kB page; in the VMs this project runs on that made a 64-caption draw 2.5x slower than its
    arithmetic, and each DF-GAN training step 14 % slower (benchmarks/README.md). Raising the
    mmap and trim thresholds to 256 MB keeps such blocks in the heap for reuse. A process then holds
    on to up to that much freed memory between requests (the price; its peak is the same), so the
    CLI sets it for its own process, and library callers choose. No effect (False) off glibc.
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


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX); emulated bf16 is slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def auto_amp_dtype(device):
    """bfloat16 on CUDA and on CPUs with native bf16 (measured: 1.6x on a Zen 4 core), else None (fp32)."""
    import torch

    if device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16()):
        return torch.bfloat16
    return None


AMP_SETTINGS = ("auto", "off", "bf16")


def check_amp(setting: str) -> None:
    if setting not in AMP_SETTINGS:
        raise T2IError(f"amp must be auto, off or bf16, got {setting!r}", parameter="amp")


def amp_dtype(setting: str, device):
    """The autocast dtype for a run's ``amp`` setting: ``auto`` is :func:`auto_amp_dtype`, ``bf16`` always, ``off`` never (None)."""
    import torch

    check_amp(setting)
    if setting != "auto":
        return torch.bfloat16 if setting == "bf16" else None
    return auto_amp_dtype(device)


def use_channels_last(setting: str, device) -> bool:
    """A run's ``channels_last`` setting. ``auto``: NHWC on CUDA (tensor-core convolutions want it).
    On a 2-core Zen 4 CPU its effect was within run-to-run noise (-7 % to +9 %,
    benchmarks/train_speed.py), so the CPU keeps NCHW."""
    if setting != "auto":
        return setting == "on"
    return device.type == "cuda"
