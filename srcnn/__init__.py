"""srcnn: a self-contained SRCNN super-resolution library (Dong et al.); never imports t2i_cli.

- :class:`Upscaler` -- enlarge PIL images or tensors x2/x3/x4 (bicubic where no weights exist)
- :func:`train_srcnn`, :func:`evaluate` -- train on image folders, compare with bicubic
"""

from srcnn.errors import SRError
from srcnn.model import SCALES, SRCNN, SRConfig
from srcnn.upscale import Upscaler, load_model, save_weights, weights_file

__all__ = ["SCALES", "SRCNN", "SRConfig", "SRError", "Upscaler", "load_model", "save_weights", "weights_file"]
