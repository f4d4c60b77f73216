"""GAN-BERT's two small networks (Croce et al. 2020, section 2).

- :class:`Generator`: noise -> a fake sentence representation of the backbone's width.
- :class:`Discriminator`: a representation -> (its last hidden features, k + 1 logits), the last
  logit meaning "fake". The same head is the classifier of the supervised baseline, which simply
  never uses the fake column.
"""

from __future__ import annotations

import torch
from torch import nn


def _mlp(width_in: int, widths: list[int], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Linear(width_in, width), nn.LeakyReLU(0.2), nn.Dropout(dropout)]
        width_in = width
    return nn.Sequential(*layers)


class Generator(nn.Module):
    def __init__(self, noise_dim: int, hidden_size: int, hidden_layers: int = 1, dropout: float = 0.1):
        super().__init__()
        self.noise_dim = noise_dim
        self.body = _mlp(noise_dim, [hidden_size] * hidden_layers, dropout)
        self.out = nn.Linear(hidden_size if hidden_layers else noise_dim, hidden_size)

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(noise))

    def sample_noise(self, batch: int, *, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Uniform noise in [0, 1), as in the paper."""
        return torch.rand(batch, self.noise_dim, device=device, generator=generator)


class Discriminator(nn.Module):
    def __init__(self, hidden_size: int, num_labels: int, hidden_layers: int = 1, dropout: float = 0.1):
        super().__init__()
        self.num_labels = num_labels
        self.input_dropout = nn.Dropout(dropout)
        self.body = _mlp(hidden_size, [hidden_size] * hidden_layers, dropout)
        self.logits = nn.Linear(hidden_size, num_labels + 1)

    def forward(self, representation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(self.input_dropout(representation))
        return features, self.logits(features)
