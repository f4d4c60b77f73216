"""Choosing the torch device: CUDA, then Apple MPS, then CPU, unless the user names one."""

from __future__ import annotations

from t2i_cli.errors import T2IError


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
