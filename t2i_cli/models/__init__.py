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
# Each architecture's own ModelConfig fields, declared beside its model (``SETTINGS``).
ARCH_SETTINGS: dict[str, tuple[str, ...]] = {name: module.SETTINGS for name, module in _ARCHITECTURES.items()}


def _others_settings(arch: str) -> set[str]:
    """The settings of every architecture but ``arch`` (that ``arch`` does not share)."""
    return {name for other, settings in ARCH_SETTINGS.items() if other != arch for name in settings} - set(ARCH_SETTINGS.get(arch, ()))


def foreign_settings(config: ModelConfig) -> list[str]:
    """The settings ``config`` changes from their defaults that belong to other architectures
    than its own: they would be ignored, so a run refuses them."""
    from dataclasses import fields

    defaults = {f.name: f.default for f in fields(ModelConfig)}
    return [name for name in sorted(_others_settings(config.arch)) if getattr(config, name) != defaults[name]]


def own_settings(model: dict) -> dict:
    """A model section (a checkpoint's or a file's) without other architectures' settings: those
    never shaped the model (checkpoints written before this held every field), and a new one
    stores only its own."""
    others = _others_settings(model.get("arch", "dcgan"))
    return {key: value for key, value in model.items() if key not in others}


def build_models(config: ModelConfig) -> tuple[nn.Module, nn.Module]:
    """A freshly initialised (generator, discriminator) pair of ``config.arch``."""
    config.validate()
    return _ARCHITECTURES[config.arch].build_models(config)


def build_generator(config: ModelConfig) -> nn.Module:
    """An (uninitialised) generator of ``config.arch``, to load weights into."""
    config.validate()
    return _ARCHITECTURES[config.arch].Generator(config)


__all__ = ["ARCH_SETTINGS", "build_generator", "build_models", "foreign_settings", "own_settings"]
