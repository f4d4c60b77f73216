"""Multi-scale gradients (MSG-GAN, Karnewar & Wang, CVPR 2020), shared by both architectures.

With ``ModelConfig.msg`` the generator also draws RGB at every intermediate side (4, 8, ..., S/2)
through a 1x1 convolution and tanh on each block's features, and in training mode returns the whole
pyramid, finest first: ``[(B, 3, S, S), (B, 3, S/2, S/2), ..., (B, 3, 4, 4)]``. In eval mode (the
EMA copy that samples, the pipeline, evaluation) it returns the full-size image alone, as without
MSG. The discriminator takes the pyramid in at matching depths: before each down-sampling stage
that works at side s, the level of side s is concatenated to its input features (MSG-GAN's
"simple" combine), and the 4x4 level joins the last features. So D's verdict, and G's gradient,
reach every scale from the first step.

A real image becomes a pyramid by 2x2 average pooling; a D given a plain image tensor builds that
pyramid itself.
"""

from __future__ import annotations

from typing import Sequence, Union

import torch
import torch.nn.functional as F

Images = Union[torch.Tensor, Sequence[torch.Tensor]]  # one batch of images, or a pyramid of them (finest first)


def image_pyramid(images: torch.Tensor) -> list[torch.Tensor]:
    """``(B, C, S, S)`` -> ``[images, pooled to S/2, ..., to 4]`` by 2x2 average pooling."""
    levels = [images]
    while levels[-1].shape[-1] > 4:
        levels.append(F.avg_pool2d(levels[-1], 2))
    return levels


def as_pyramid(images: Images) -> list[torch.Tensor]:
    """A pyramid as given, or the average-pooled pyramid of a plain batch of images."""
    return list(images) if isinstance(images, (list, tuple)) else image_pyramid(images)


def finest(images: Images) -> torch.Tensor:
    """The full-size images of a batch or a pyramid."""
    return images[0] if isinstance(images, (list, tuple)) else images


def detached(images: Images) -> Images:
    return [level.detach() for level in images] if isinstance(images, (list, tuple)) else images.detach()


def side_output(features: torch.Tensor, conv: torch.nn.Module) -> torch.Tensor:
    """A side output: (B, C, s, s) features -> (B, 3, s, s) in [-1, 1]."""
    return torch.tanh(conv(features))
