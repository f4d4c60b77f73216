"""A DF-GAN-style one-stage generator and discriminator (Tao et al., CVPR 2022).

G: the noise z goes through a Linear layer to a (8 * ngf, 4, 4) map; up-blocks double the side
to the image size. Every block fuses the caption into the image features twice (a "deep fusion"
block: per-channel affine gamma * h + beta, with gamma and beta predicted from the condition by
small MLPs, then LeakyReLU), around a 3x3 convolution each, with a residual shortcut. The
condition is the caption embedding concatenated with z, as in the paper's released code: the
noise then also modulates every block, which keeps samples of one caption apart.

D: a 3x3 stem, then residual down-blocks (their residual branch on from the start, see
:class:`DownBlock`) to a (8 * ndf, 4, 4) map; the "one-way output" head
replicates the caption embedding over that map, concatenates it with the features and scores
the pair with two convolutions (one score, no separate unconditional output).

Widths per block follow the paper's 64 px layout, 8/8/4/2/1 x ngf in G and 1/2/4/8/8 x ndf in D;
a 128 px config adds a block at the wide end. Nothing here normalises across the batch, so the
matching-aware gradient penalty is a per-sample quantity, as it must be.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from t2i_cli.config import ModelConfig
from t2i_cli.models.pyramid import Images, as_pyramid, finest, side_output

# The ModelConfig fields only this architecture reads: the width of the MLPs predicting each
# block's affine parameters. (Its D has no normalisation layers, so d_norm is none of its business.)
SETTINGS = ("fusion_hidden",)


def _multipliers(image_size: int) -> list[int]:
    """Width multipliers from 4x4 up to the image: [8, 8, 4, 2, 1] at 64 px, [8, 8, 8, 4, 2, 1] at 128."""
    stages = int(math.log2(image_size)) - 2
    tail = [4, 2, 1]
    return [8] * (stages + 1 - len(tail)) + tail if stages >= len(tail) else [8] + tail[-stages:]


def caption_condition(embedding: torch.Tensor) -> torch.Tensor:
    """Caption embeddings rescaled to unit-size components: sentence encoders give unit vectors
    (components ~0.05 at 384-d), which would be drowned by unit-variance noise and features."""
    return F.normalize(embedding.float(), dim=1) * math.sqrt(embedding.shape[1])


class Affine(nn.Module):
    """gamma(c) * h + beta(c), per channel; gamma and beta each from Linear -> ReLU -> Linear.

    The last layers start at zero weight with gamma's bias 1 and beta's 0, so every block starts
    as the identity on its features and learns how much the caption should move them.
    """

    def __init__(self, condition_dim: int, channels: int, hidden: int):
        super().__init__()
        self.gamma = nn.Sequential(nn.Linear(condition_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))
        self.beta = nn.Sequential(nn.Linear(condition_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))
        for head, bias in ((self.gamma[-1], 1.0), (self.beta[-1], 0.0)):
            nn.init.zeros_(head.weight)
            nn.init.constant_(head.bias, bias)

    def forward(self, features: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        gamma = self.gamma(condition)[:, :, None, None]  # (B, C, 1, 1)
        beta = self.beta(condition)[:, :, None, None]
        return gamma * features + beta


class FusionBlock(nn.Module):
    """DF-GAN's deep fusion: affine -> LeakyReLU -> affine -> LeakyReLU."""

    def __init__(self, condition_dim: int, channels: int, hidden: int):
        super().__init__()
        self.first = Affine(condition_dim, channels, hidden)
        self.second = Affine(condition_dim, channels, hidden)

    def forward(self, features: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        # In place: each affine's output is a new tensor used only here (one allocation fewer).
        features = F.leaky_relu_(self.first(features, condition), 0.2)
        return F.leaky_relu_(self.second(features, condition), 0.2)


def upsample_nearest(features: torch.Tensor) -> torch.Tensor:
    """x2 nearest-neighbour upsampling. Drawing (no gradient) on a contiguous NCHW batch, each
    pixel is repeated along both axes: the same values as ``F.interpolate``, whose NCHW kernel on
    this CPU took 116 ms for a 64-image batch at 32 px against 32 ms (benchmarks/README.md).
    Training keeps ``F.interpolate``: it runs channels-last, where that kernel is the fast one,
    and its backward is the one runs have always used."""
    if torch.is_inference_mode_enabled() and features.is_contiguous():
        return features.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    return F.interpolate(features, scale_factor=2, mode="nearest")


class UpBlock(nn.Module):
    """x2 nearest upsampling, then shortcut(x) + conv(fuse(conv(fuse(x)))); (B, in, S, S) -> (B, out, 2S, 2S)."""

    def __init__(self, condition_dim: int, in_channels: int, out_channels: int, hidden: int):
        super().__init__()
        self.fuse1 = FusionBlock(condition_dim, in_channels, hidden)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.fuse2 = FusionBlock(condition_dim, out_channels, hidden)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, features: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        features = upsample_nearest(features)
        residual = self.conv1(self.fuse1(features, condition))
        residual = self.conv2(self.fuse2(residual, condition))
        return self.shortcut(features) + residual


class Generator(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        config.validate()  # refuses an unconditional dfgan
        self.config = config
        widths = [m * config.ngf for m in _multipliers(config.image_size)]
        condition_dim = config.noise_dim + config.embedding_dim
        self.stem = nn.Linear(config.noise_dim, widths[0] * 16)  # z -> (B, 8 * ngf, 4, 4)
        self.blocks = nn.ModuleList(
            UpBlock(condition_dim, w_in, w_out, config.fusion_hidden) for w_in, w_out in zip(widths, widths[1:])
        )
        self.to_rgb = nn.Conv2d(widths[-1], 3, 3, 1, 1)
        # MSG-GAN: RGB from the features entering each block, sides 4 .. S/2.
        self.side_rgb = nn.ModuleList(nn.Conv2d(w, 3, 1) for w in widths[:-1]) if config.msg else None

    def forward(self, noise: torch.Tensor, embedding: torch.Tensor | None = None):
        """Returns ``(images in [-1, 1], None)``: the same interface as the DCGAN generator; with
        MSG in training mode, ``images`` is the pyramid, finest first (models/pyramid.py)."""
        if embedding is None:
            raise ValueError("this generator is conditional: pass caption embeddings")
        condition = torch.cat([noise, caption_condition(embedding).to(noise.dtype)], dim=1)  # (B, Z + E)
        features = self.stem(noise).view(noise.shape[0], -1, 4, 4)
        pyramid = self.side_rgb is not None and self.training
        coarse = []
        for index, block in enumerate(self.blocks):
            if pyramid:
                coarse.append(side_output(F.leaky_relu(features, 0.2), self.side_rgb[index]))
            features = block(features, condition)
        images = torch.tanh(self.to_rgb(F.leaky_relu(features, 0.2)))
        return ([images, *reversed(coarse)] if pyramid else images), None


class DownBlock(nn.Module):
    """shortcut(x) + gamma * residual(x), halving the side.

    gamma starts at 1, not at the paper code's 0. At 0 every block starts as its shortcut (a 1x1
    convolution and an average pool), so D starts as a linear function of 16x16 averages of the
    image; in CPU-length runs gamma had only grown to 0.03-0.08 after 25 epochs, and G learnt to
    paint 8-16 px blocks of the right colours. Started at 1, D sees detail from the first step:
    valid FID 265 instead of 377 after 10 epochs at width 16 with DiffAugment (weights/README.md).
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.residual = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()
        self.gamma = nn.Parameter(torch.ones(()))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.shortcut(features), 2) + self.gamma * self.residual(features)


class Discriminator(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        config.validate()  # refuses an unconditional dfgan
        self.config = config
        widths = [m * config.ndf for m in reversed(_multipliers(config.image_size))]  # [1, 2, 4, 8, 8] x ndf
        side = 3 if config.msg else 0  # MSG-GAN: each smaller side's RGB joins the features at that side
        self.stem = nn.Conv2d(3, widths[0], 3, 1, 1)
        self.blocks = nn.ModuleList(
            DownBlock(w_in + (side if index > 0 else 0), w_out) for index, (w_in, w_out) in enumerate(zip(widths, widths[1:]))
        )
        self.feature_width = widths[-1] + side
        self.head = nn.Sequential(  # one-way output: (features ++ caption) -> one score
            nn.Conv2d(self.feature_width + config.embedding_dim, widths[0] * 2, 3, 1, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(widths[0] * 2, 1, 4, 1, 0, bias=False),
        )

    def image_features(self, images: Images) -> torch.Tensor:
        """(B, 3, S, S) -> (B, 8 * ndf, 4, 4), caption-free: the trainer scores mismatched pairs by
        reusing these with other captions instead of running the image through D again. With MSG,
        ``images`` may be a pyramid (else it is pooled into one) and 3 more channels come out."""
        levels = as_pyramid(images) if self.config.msg else [finest(images)]
        features = self.stem(levels[0])
        for index, block in enumerate(self.blocks):
            if self.config.msg and index > 0:
                features = torch.cat([features, levels[index].to(features.dtype)], dim=1)
            features = block(features)
        if self.config.msg:
            features = torch.cat([features, levels[-1].to(features.dtype)], dim=1)
        return features

    def caption_input(self, embedding: torch.Tensor) -> torch.Tensor:
        """(B, E) caption embeddings -> the (B, E) caption vectors :meth:`score` takes, rescaled
        here so that the matching-aware penalty measures D's slope in the space D sees."""
        return caption_condition(embedding)

    def score(self, features: torch.Tensor, caption: torch.Tensor) -> torch.Tensor:
        """(B, 8 * ndf, 4, 4) features + (B, E) caption vectors (:meth:`caption_input`) -> (B,) scores."""
        caption = caption.to(features.dtype)[:, :, None, None].expand(-1, -1, 4, 4)
        return self.head(torch.cat([features, caption], dim=1)).view(-1)

    def forward(self, images: Images, embedding: torch.Tensor | None = None):
        """Returns ``(scores (B,), features (B, 8 * ndf, 4, 4))``, like the DCGAN discriminator."""
        if embedding is None:
            raise ValueError("this discriminator is conditional: pass caption embeddings")
        features = self.image_features(images)
        return self.score(features, self.caption_input(embedding)), features


def build_models(config: ModelConfig) -> tuple[Generator, Discriminator]:
    """PyTorch's default initialisation, as the paper's code keeps it (plus the affine heads' identity start)."""
    return Generator(config), Discriminator(config)
