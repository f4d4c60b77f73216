"""DCGAN generator and discriminator conditioned on caption embeddings (Reed et al. 2016).

G: the caption embedding is projected (Linear -> 128, BatchNorm, LeakyReLU 0.2), or passed
through StackGAN's conditioning augmentation, and concatenated with the noise z; transposed
convolutions grow a 4x4 map to the image size.
D: strided convolutions shrink the image to a 4x4 map; the projected embedding is replicated over
that map and depth-concatenated before the last convolutions (GAN-CLS).
The number of stages follows ``image_size``, so 128x128 is a config change.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from t2i_cli.config import ModelConfig
from t2i_cli.models.pyramid import Images, as_pyramid, finest, side_output

# The ModelConfig fields only this architecture reads (the rest are every architecture's): the
# caption's projection, StackGAN's conditioning augmentation, minibatch discrimination, D's norm.
SETTINGS = ("projected_dim", "conditioning_augmentation", "minibatch_discrimination", "mbd_kernels", "mbd_kernel_dim", "d_norm")


def _stages(image_size: int) -> int:
    """Up-/down-sampling stages between 4x4 and the image: 4 for 64 px, 5 for 128 px."""
    return int(math.log2(image_size)) - 2


class CaptionProjection(nn.Module):
    """Embedding -> Linear -> 128 -> BatchNorm -> LeakyReLU(0.2)."""

    def __init__(self, embedding_dim: int, projected_dim: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(embedding_dim, projected_dim),
            nn.BatchNorm1d(projected_dim),
            nn.LeakyReLU(0.2, inplace=True),
        )

    def forward(self, embedding: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.net(embedding), None


class ConditioningAugmentation(nn.Module):
    """StackGAN: FC -> (mu, log sigma^2); c = mu + sigma * eps while training, c = mu in eval."""

    def __init__(self, embedding_dim: int, projected_dim: int):
        super().__init__()
        self.fc = nn.Linear(embedding_dim, projected_dim * 2)
        self.act = nn.LeakyReLU(0.2, inplace=True)
        self.projected_dim = projected_dim

    def forward(self, embedding: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        stats = self.act(self.fc(embedding))
        mu, logvar = stats[:, : self.projected_dim], stats[:, self.projected_dim :]
        if self.training:
            code = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        else:
            code = mu  # deterministic generation: the same caption and seed give the same image
        return code, (mu, logvar)


class Generator(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        config.validate()
        self.config = config
        stages = _stages(config.image_size)
        if config.conditional:
            block = ConditioningAugmentation if config.conditioning_augmentation else CaptionProjection
            self.condition = block(config.embedding_dim, config.projected_dim)
            in_dim = config.noise_dim + config.projected_dim
        else:
            self.condition = None
            in_dim = config.noise_dim
        width = config.ngf * 2 ** (stages - 1)  # 512 at 64 px with ngf 64
        # MSG-GAN: RGB from each stage's features, sides 4 .. S/2 (widths halve as the side doubles).
        self.side_rgb = nn.ModuleList(nn.Conv2d(width >> i, 3, 1) for i in range(stages)) if config.msg else None
        layers = [  # (B, in_dim, 1, 1) -> (B, width, 4, 4)
            nn.ConvTranspose2d(in_dim, width, 4, 1, 0, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        ]
        for _ in range(stages - 1):  # each stage doubles the side and halves the width
            layers += [
                nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width // 2),
                nn.ReLU(inplace=True),
            ]
            width //= 2
        layers += [nn.ConvTranspose2d(width, 3, 4, 2, 1, bias=False), nn.Tanh()]  # (B, 3, S, S)
        self.net = nn.Sequential(*layers)

    def forward(self, noise: torch.Tensor, embedding: torch.Tensor | None = None):
        """Returns ``(images in [-1, 1], ca_stats)``; ``ca_stats`` is (mu, logvar) or None. With
        MSG in training mode, ``images`` is the pyramid, finest first (models/pyramid.py)."""
        ca_stats = None
        inputs = noise
        if self.condition is not None:
            if embedding is None:
                raise ValueError("this generator is conditional: pass caption embeddings")
            code, ca_stats = self.condition(embedding)
            inputs = torch.cat([noise, code], dim=1)
        features = inputs[:, :, None, None]
        if self.side_rgb is None or not self.training:
            return self.net(features), ca_stats
        coarse = []
        for layer in self.net:
            features = layer(features)
            if isinstance(layer, nn.ReLU):  # the end of a stage at sides 4, 8, ..., S/2
                coarse.append(side_output(features, self.side_rgb[len(coarse)]))
        return [features, *reversed(coarse)], ca_stats


class MinibatchDiscrimination(nn.Module):
    """Salimans et al. 2016: how close each sample is to the others, as extra features."""

    def __init__(self, in_features: int, kernels: int, kernel_dim: int):
        super().__init__()
        self.T = nn.Parameter(torch.randn(in_features, kernels * kernel_dim) * 0.02)
        self.kernels, self.kernel_dim = kernels, kernel_dim

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        m = (features @ self.T).view(-1, self.kernels, self.kernel_dim)  # (B, K, d)
        distances = (m[:, None] - m[None]).abs().sum(-1)  # (B, B, K)
        return torch.exp(-distances).sum(1) - 1  # (B, K); minus the sample's own exp(0)


def _norm(kind: str, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.GroupNorm(1, channels)


class Discriminator(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        config.validate()
        self.config = config
        stages = _stages(config.image_size)
        side = 3 if config.msg else 0  # MSG-GAN: each smaller side's RGB joins the features at that side
        layers = [nn.Conv2d(3, config.ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        width = config.ndf
        for _ in range(stages - 1):  # (B, ndf, S/2, S/2) -> ... -> (B, width, 4, 4)
            layers += [
                nn.Conv2d(width + side, width * 2, 4, 2, 1, bias=False),
                _norm(config.d_norm, width * 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            width *= 2
        self.features = nn.Sequential(*layers)
        self.feature_width = width = width + side
        extra = 0
        if config.conditional:
            self.projection = nn.Sequential(
                nn.Linear(config.embedding_dim, config.projected_dim),
                nn.BatchNorm1d(config.projected_dim) if config.d_norm == "batch" else nn.LayerNorm(config.projected_dim),
                nn.LeakyReLU(0.2, inplace=True),
            )
            extra += config.projected_dim
        else:
            self.projection = None
        if config.minibatch_discrimination:
            self.mbd = MinibatchDiscrimination(width * 16, config.mbd_kernels, config.mbd_kernel_dim)
            extra += config.mbd_kernels
        else:
            self.mbd = None
        self.head = nn.Sequential(
            nn.Conv2d(width + extra, width - side, 1, 1, 0, bias=False),
            _norm(config.d_norm, width - side),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width - side, 1, 4, 1, 0),  # (B, 1, 1, 1): one logit / critic score
        )

    def image_features(self, images: Images) -> torch.Tensor:
        """(B, 3, S, S) -> (B, width, 4, 4), before the caption joins. With MSG, ``images`` may be
        a pyramid (else it is pooled into one): each later convolution takes its side's RGB too,
        and the 4x4 RGB joins the last features."""
        if not self.config.msg:
            return self.features(finest(images))
        levels = as_pyramid(images)
        features, level = levels[0], 0
        for index, layer in enumerate(self.features):
            if isinstance(layer, nn.Conv2d) and index > 0:
                level += 1
                features = torch.cat([features, levels[level].to(features.dtype)], dim=1)
            features = layer(features)
        return torch.cat([features, levels[-1].to(features.dtype)], dim=1)

    def caption_input(self, embedding: torch.Tensor | None) -> torch.Tensor | None:
        """What :meth:`score` takes for a caption: the embedding itself (projected inside)."""
        return embedding

    def score(self, features: torch.Tensor, embedding: torch.Tensor | None) -> torch.Tensor:
        """(B, width, 4, 4) features (+ (B, E) captions) -> (B,) logits / critic scores."""
        maps = [features]
        if self.projection is not None:
            if embedding is None:
                raise ValueError("this discriminator is conditional: pass caption embeddings")
            code = self.projection(embedding)  # (B, 128)
            maps.append(code[:, :, None, None].expand(-1, -1, 4, 4))
        if self.mbd is not None:
            closeness = self.mbd(features.flatten(1))  # (B, K)
            maps.append(closeness[:, :, None, None].expand(-1, -1, 4, 4))
        return self.head(torch.cat(maps, dim=1) if len(maps) > 1 else features).view(-1)

    def forward(self, images: Images, embedding: torch.Tensor | None = None):
        """Returns ``(scores (B,), features (B, width, 4, 4))``; scores are logits."""
        features = self.image_features(images)
        return self.score(features, self.caption_input(embedding)), features


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation: N(0, 0.02) convolutions, N(1, 0.02) norm scales."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm, nn.LayerNorm)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def build_models(config: ModelConfig) -> tuple[Generator, Discriminator]:
    generator, discriminator = Generator(config), Discriminator(config)
    generator.apply(init_weights)
    discriminator.apply(init_weights)
    return generator, discriminator
