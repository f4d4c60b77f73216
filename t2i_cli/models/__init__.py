"""The caption-conditioned GANs, one architecture a module, chosen by ``ModelConfig.arch``.

``dcgan``: GAN-INT-CLS (Reed et al. 2016), the seed papers' model. ``dfgan``: a DF-GAN-style
one-stage generator that fuses the caption into every block (Tao et al. 2022). Both share one
interface: ``G(noise, embedding) -> (images, extra)`` and ``D(images, embedding) -> (scores,
features)``, which is ``D.score(D.image_features(images), D.caption_input(embedding))``: the
parts let the trainer score an image's features with other captions, and take the gradient
penalty in the caption space D sees. Nothing outside this package branches on the architecture.
"""

from __future__ import annotations

from torch import nn

from t2i_cli.config import ModelConfig
from t2i_cli.models import dcgan, dfgan

_ARCHITECTURES = {"dcgan": dcgan, "dfgan": dfgan}


def build_models(config: ModelConfig) -> tuple[nn.Module, nn.Module]:
    """A freshly initialised (generator, discriminator) pair of ``config.arch``."""
    config.validate()
    return _ARCHITECTURES[config.arch].build_models(config)


def build_generator(config: ModelConfig) -> nn.Module:
    """An (uninitialised) generator of ``config.arch``, to load weights into."""
    config.validate()
    return _ARCHITECTURES[config.arch].Generator(config)


__all__ = ["build_generator", "build_models"]
