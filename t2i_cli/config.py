"""Typed configs with their defaults in code; the CLI and config files map onto them."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from t2i_cli.errors import T2IError

GAN_TYPES = ("gan", "wgan", "vanilla_gan", "vanilla_wgan")


@dataclass
class ModelConfig:
    """The generator/discriminator architecture (DCGAN, conditioned as in Reed et al. 2016)."""

    image_size: int = 64  # a power of two >= 16; 128 adds one up/down-sampling stage
    embedding_dim: int = 384  # the caption encoder's output size
    projected_dim: int = 128  # caption embedding -> Linear -> 128 (Reed et al.)
    noise_dim: int = 100
    ngf: int = 64
    ndf: int = 64
    conditional: bool = True  # False for the vanilla_* types: no caption input at all
    conditioning_augmentation: bool = False  # StackGAN: mu, log sigma^2, reparameterised
    minibatch_discrimination: bool = False  # Salimans et al. 2016, in D
    mbd_kernels: int = 32
    mbd_kernel_dim: int = 8
    d_norm: str = "batch"  # batch | layer (no cross-sample coupling; used with a gradient penalty)

    def validate(self) -> None:
        size = self.image_size
        if size < 16 or size & (size - 1):
            raise T2IError(f"image size must be a power of two >= 16, got {size}")
        if self.d_norm not in ("batch", "layer"):
            raise T2IError(f"d_norm must be batch or layer, got {self.d_norm!r}")
        for name in ("embedding_dim", "projected_dim", "noise_dim", "ngf", "ndf"):
            if getattr(self, name) < 1:
                raise T2IError(f"{name} must be positive")


@dataclass
class TrainConfig:
    """How to train; the names follow the reference port's flags where it had them."""

    gan_type: str = "gan"  # gan | wgan | vanilla_gan | vanilla_wgan
    data: str = ""
    split: str = "train"
    epochs: int = 600
    batch_size: int = 64
    lr: float = 2e-4  # Adam with beta1 0.5 (Reed et al.), for every type
    beta1: float = 0.5
    lr_halve_every: int = 100  # epochs; 0 keeps the rate
    cls: bool = True  # matching-aware D: real image + wrong caption scored as fake
    interpolate: bool = True  # GAN-INT: G also trained on interpolated caption embeddings
    int_beta: float = 0.5
    wrong_weight: float = 0.5  # D loss = real + wrong_weight * wrong + fake_weight * fake
    fake_weight: float = 0.5
    label_smoothing: float = 0.9  # one-sided: the target of real pairs
    l1_coef: float = 0.0  # L1 between G(z, caption) and the caption's own image
    l2_coef: float = 0.0  # feature matching on D's intermediate features
    kl_coef: float = 2.0  # conditioning-augmentation KL weight (StackGAN)
    diter: int = 5  # WGAN critic steps per generator step
    clip: float = 0.01  # WGAN weight clipping
    gradient_penalty: float = 0.0  # > 0: WGAN-GP with this lambda instead of clipping
    ema_decay: float = 0.999
    save_every: int = 10  # epochs
    sample_every: int = 1  # epochs
    log_every: int = 20  # steps
    seed: int = 0
    workers: int = 0
    augment: bool = True
    preload: bool = True  # decode the split into memory once; batches are then drawn on the device
    amp: str = "auto"  # auto (bf16 on CUDA and on CPUs with native bf16) | off | bf16
    channels_last: str = "auto"  # NHWC activations: auto (on CUDA only), on, off
    compile: bool = False  # torch.compile G and D (minutes of compiling first; pays off on long runs)
    device: str = "auto"
    pretrained_generator: str = ""
    pretrained_discriminator: str = ""

    @property
    def conditional(self) -> bool:
        return not self.gan_type.startswith("vanilla")

    @property
    def wasserstein(self) -> bool:
        return self.gan_type.endswith("wgan")

    def validate(self) -> None:
        if self.gan_type not in GAN_TYPES:
            raise T2IError(f"--type must be one of {', '.join(GAN_TYPES)}, got {self.gan_type!r}")
        if self.epochs < 1 or self.batch_size < 2:
            raise T2IError("epochs must be >= 1 and batch size >= 2")
        if self.lr <= 0:
            raise T2IError(f"learning rate must be positive, got {self.lr}")
        if not 0 < self.int_beta < 1:
            raise T2IError(f"int_beta must lie in (0, 1), got {self.int_beta}")
        if not 0 < self.label_smoothing <= 1:
            raise T2IError(f"label smoothing must lie in (0, 1], got {self.label_smoothing}")
        if self.diter < 1 or self.save_every < 1 or self.sample_every < 1 or self.log_every < 1:
            raise T2IError("diter, save_every, sample_every and log_every must be >= 1")
        if self.channels_last not in ("auto", "on", "off"):
            raise T2IError(f"channels_last must be auto, on or off, got {self.channels_last!r}")
        if self.amp not in ("auto", "off", "bf16"):
            raise T2IError(f"amp must be auto, off or bf16, got {self.amp!r}")
        if not 0 <= self.ema_decay < 1:
            raise T2IError(f"ema_decay must lie in [0, 1), got {self.ema_decay}")


def to_dict(config) -> dict:
    return asdict(config)


def from_dict(cls, data: dict, *, source: str = "config"):
    """Build ``cls`` from ``data``, refusing unknown keys (a typo must not pass silently)."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise T2IError(f"{source}: unknown {cls.__name__} keys: {', '.join(unknown)}")
    return cls(**data)


def load_config_file(path: Path) -> dict:
    """A JSON file with optional "model" and "train" sections (or flat train keys)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise T2IError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise T2IError(f"cannot read config file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise T2IError(f"config file {path} must hold a JSON object")
    return data
