"""Typed configs with their defaults in code; the CLI and config files map onto them."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from t2i_cli.devices import check_amp
from t2i_cli.errors import T2IError

GAN_TYPES = ("gan", "wgan", "hinge")  # the loss; whether G and D take captions is the model's (conditional)
# Types of runs and config files from before the loss and the conditioning were apart: the loss,
# with an unconditional model (split_legacy_gan_type).
LEGACY_GAN_TYPES = {"vanilla_gan": "gan", "vanilla_wgan": "wgan"}
ARCHITECTURES = ("dcgan", "dfgan")
DIFFAUG_POLICIES = ("translation", "cutout")
LR_DECAYS = ("none", "linear", "cosine")
# Past these a model no longer fits a machine (a 4096 px DCGAN asks for terabytes): refused up front.
MAX_IMAGE_SIZE = 512
MAX_WIDTH = 4096
# Adam steps of this size already throw any network's weights out of range; larger is a slip (1e308).
MAX_LEARNING_RATE = 1.0


@dataclass
class ModelConfig:
    """The generator/discriminator architecture: ``dcgan`` (GAN-INT-CLS, Reed et al. 2016) or
    ``dfgan`` (DF-GAN, Tao et al. 2022). Checkpoints written before ``arch`` existed are dcgan."""

    arch: str = "dcgan"
    image_size: int = 64  # a power of two >= 16; 128 adds one up/down-sampling stage
    embedding_dim: int = 384  # the caption encoder's output size
    projected_dim: int = 128  # caption embedding -> Linear -> 128 (Reed et al.)
    noise_dim: int = 100
    ngf: int = 64
    ndf: int = 64
    conditional: bool = True  # False: no caption input at all (an unconditional GAN, the "vanilla" types of old)
    conditioning_augmentation: bool = False  # StackGAN: mu, log sigma^2, reparameterised
    minibatch_discrimination: bool = False  # Salimans et al. 2016, in D
    mbd_kernels: int = 32
    mbd_kernel_dim: int = 8
    d_norm: str = "batch"  # batch | layer (no cross-sample coupling; used with a gradient penalty)
    fusion_hidden: int = 256  # dfgan: hidden width of the MLPs that predict each block's gamma and beta
    msg: bool = False  # MSG-GAN: G draws every side 4..S, D takes them all in (models/pyramid.py)

    def validate(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise T2IError(f"architecture must be one of {', '.join(ARCHITECTURES)}, got {self.arch!r}")
        if self.arch == "dfgan" and not self.conditional:
            raise T2IError("the dfgan architecture fuses the caption into every block: it cannot be unconditional",
                           parameter="conditional")
        from t2i_cli.models import ARCH_SETTINGS, foreign_settings

        foreign = foreign_settings(self)
        if foreign:
            owners = sorted({arch for arch, settings in ARCH_SETTINGS.items() for name in foreign if name in settings})
            raise T2IError(f"{', '.join(foreign)} {'is a setting' if len(foreign) == 1 else 'are settings'} of the "
                           f"{' and '.join(owners)} architecture, not of {self.arch}: drop {'it' if len(foreign) == 1 else 'them'}",
                           parameter=tuple(foreign))
        size = self.image_size
        if size < 16 or size > MAX_IMAGE_SIZE or size & (size - 1):
            raise T2IError(f"image size must be a power of two from 16 to {MAX_IMAGE_SIZE}, got {size}", parameter="image_size")
        if self.d_norm not in ("batch", "layer"):
            raise T2IError(f"d_norm must be batch or layer, got {self.d_norm!r}")
        for name in ("embedding_dim", "projected_dim", "noise_dim", "ngf", "ndf", "fusion_hidden"):
            if not 1 <= getattr(self, name) <= MAX_WIDTH:
                raise T2IError(f"{name} must lie in 1..{MAX_WIDTH}, got {getattr(self, name)}")


@dataclass
class TrainConfig:
    """How to train; the names follow the reference port's flags where it had them."""

    gan_type: str = "gan"  # the loss: gan | wgan | hinge (DF-GAN's); conditioning is the model's
    data: str = ""
    split: str = "train"
    epochs: int = 600
    time_limit: float = 0.0  # minutes of training (summed over resumes); > 0 ends the run at the first epoch end past it
    batch_size: int = 64
    lr: float = 2e-4  # Adam with beta1 0.5 (Reed et al.); G's rate, and D's unless lr_d is set
    lr_d: float = 0.0  # D's rate; 0 = lr (DF-GAN: G 1e-4, D 4e-4)
    beta1: float = 0.5
    beta2: float | None = None  # None: 0.9 with WGAN-GP, else 0.999 (DF-GAN: 0.9)
    lr_halve_every: int = 100  # epochs; 0 keeps the rate
    # "none", or "linear" / "cosine": the rates fall to 0 over the run's epochs (per epoch, times the
    # halvings), the usual last stretch of a GAN run (and of fine-tuning a shipped generator).
    lr_decay: str = "none"
    # Steps that train D alone before G takes its first: a pretrained G beside a fresh D would
    # otherwise follow a random D's gradients (and its EMA with it).
    d_warmup_steps: int = 0
    cls: bool = True  # matching-aware D: real image + wrong caption scored as fake
    interpolate: bool = True  # GAN-INT: G also trained on interpolated caption embeddings
    int_beta: float = 0.5
    wrong_weight: float = 0.5  # D loss = real + wrong_weight * wrong + fake_weight * fake
    fake_weight: float = 0.5
    label_smoothing: float = 0.9  # one-sided: the target of real pairs
    l1_coef: float = 0.0  # L1 between G(z, caption) and the caption's own image
    feature_matching_coef: float = 0.0  # G matches D's intermediate features of real images (was l2_coef)
    kl_coef: float = 2.0  # conditioning-augmentation KL weight (StackGAN)
    diter: int = 5  # WGAN critic steps per generator step
    clip: float = 0.01  # WGAN weight clipping
    gradient_penalty: float = 0.0  # > 0: WGAN-GP with this lambda instead of clipping
    ma_gp: float = 2.0  # hinge: weight k of the matching-aware gradient penalty (DF-GAN); 0 = none
    ma_gp_power: float = 6.0  # hinge: the penalty is mean(||grad||^p) over real pairs (DF-GAN: p = 6)
    gp_every: int = 1  # hinge: take the penalty every N D steps, weighted by N (lazy, as StyleGAN2's R1)
    diffaug: str = ""  # DiffAugment on every image D sees: "", "translation", "cutout" or both, comma-separated
    match_coef: float = 0.0  # > 0: G also minimises a caption-matching loss (training/matching.py), this weight
    ema_decay: float = 0.999
    # Evaluation during training (t2i_cli/evaluation): every N epochs (0: never) the EMA generator
    # is measured on eval_split, the figures go to metrics.jsonl and TensorBoard, and the checkpoint
    # with the lowest FID is kept as the run's best (RUN/best.json).
    eval_every: int = 0
    eval_split: str = "valid"
    eval_metrics: str = "fid,colour,second_colour,diversity"
    save_every: int = 10  # epochs
    keep_every: int = 0  # epochs: also keep every checkpoint of a multiple of this (0: the last 3 only)
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
    def wasserstein(self) -> bool:
        return self.gan_type.endswith("wgan")

    @property
    def hinge(self) -> bool:
        return self.gan_type == "hinge"

    @property
    def per_sample_penalty(self) -> bool:
        """Whether D's loss takes a per-sample gradient penalty (WGAN-GP or MA-GP), which needs a D
        without batch coupling (``d_norm = "layer"``)."""
        return (self.wasserstein and self.gradient_penalty > 0) or (self.hinge and self.ma_gp > 0)

    @property
    def discriminator_lr(self) -> float:
        return self.lr_d or self.lr

    def lr_factor(self, epoch: int) -> float:
        """What the base rates are multiplied by in epoch ``epoch + 1`` (``epoch`` completed)."""
        factor = 0.5 ** (epoch // self.lr_halve_every) if self.lr_halve_every else 1.0
        progress = min(epoch / self.epochs, 1.0)
        if self.lr_decay == "linear":
            factor *= 1 - progress
        elif self.lr_decay == "cosine":
            factor *= 0.5 * (1 + math.cos(math.pi * progress))
        return factor

    @property
    def betas(self) -> tuple[float, float]:
        beta2 = self.beta2 if self.beta2 is not None else (0.9 if self.gradient_penalty > 0 else 0.999)
        return self.beta1, beta2

    def diffaug_policy(self) -> tuple[str, ...]:
        names = tuple(name.strip() for name in self.diffaug.split(",") if name.strip())
        unknown = [name for name in names if name not in DIFFAUG_POLICIES]
        if unknown:
            raise T2IError(f"unknown DiffAugment policy {unknown[0]!r}; choose from {', '.join(DIFFAUG_POLICIES)}")
        return names

    def validate(self) -> None:
        if self.gan_type in LEGACY_GAN_TYPES:
            raise T2IError(f"the {self.gan_type} type is now the {LEGACY_GAN_TYPES[self.gan_type]} type with an unconditional model "
                           f"(ModelConfig(conditional=False), --unconditional)", parameter="gan_type")
        if self.gan_type not in GAN_TYPES:
            raise T2IError(f"the GAN type must be one of {', '.join(GAN_TYPES)}, got {self.gan_type!r}", parameter="gan_type")
        if self.hinge:
            # The hinge step has its own D terms (mismatched pairs, MA-GP) and G terms (adversarial,
            # INT, caption matching); these belong to the gan/wgan steps and would be ignored.
            unused = [name for name, on in (("l1_coef", self.l1_coef > 0), ("feature_matching_coef", self.feature_matching_coef > 0),
                                            ("gradient_penalty", self.gradient_penalty > 0)) if on]
            if unused:
                raise T2IError(f"the hinge type does not use {', '.join(unused)}; drop it or use the gan or wgan type", parameter="gan_type")
        if self.epochs < 1 or self.batch_size < 2:
            raise T2IError("epochs must be >= 1 and batch size >= 2")
        non_finite = [f.name for f in fields(self) if isinstance(getattr(self, f.name), float) and not math.isfinite(getattr(self, f.name))]
        if non_finite:
            raise T2IError(f"{non_finite[0]} must be a finite number, got {getattr(self, non_finite[0])}", parameter=non_finite[0])
        if not (0 < self.lr <= MAX_LEARNING_RATE and 0 <= self.lr_d <= MAX_LEARNING_RATE):
            raise T2IError(f"learning rates must lie in (0, {MAX_LEARNING_RATE}], got {self.lr} (G) and {self.discriminator_lr} (D)",
                           parameter=("lr",) if not 0 < self.lr <= MAX_LEARNING_RATE else ("lr_d",))
        if not 0 <= self.beta1 < 1 or (self.beta2 is not None and not 0 <= self.beta2 < 1):
            raise T2IError(f"Adam betas must lie in [0, 1), got {self.beta1} and {self.beta2}")
        if self.match_coef < 0:
            raise T2IError(f"match_coef must be >= 0, got {self.match_coef}")
        if self.lr_decay not in LR_DECAYS:
            raise T2IError(f"lr_decay must be one of {', '.join(LR_DECAYS)}, got {self.lr_decay!r}", parameter="lr_decay")
        if self.d_warmup_steps < 0:
            raise T2IError(f"d_warmup_steps must be >= 0, got {self.d_warmup_steps}", parameter="d_warmup_steps")
        if self.ma_gp < 0 or self.ma_gp_power <= 0 or self.gp_every < 1:
            raise T2IError("ma_gp must be >= 0, ma_gp_power > 0 and gp_every >= 1")
        self.diffaug_policy()  # raises on an unknown name
        if not 0 < self.int_beta < 1:
            raise T2IError(f"int_beta must lie in (0, 1), got {self.int_beta}")
        if not 0 < self.label_smoothing <= 1:
            raise T2IError(f"label smoothing must lie in (0, 1], got {self.label_smoothing}")
        if self.time_limit < 0:
            raise T2IError(f"time limit must be >= 0 minutes, got {self.time_limit}")
        if self.keep_every < 0:
            raise T2IError(f"keep_every must be >= 0, got {self.keep_every}")
        if self.eval_every < 0:
            raise T2IError(f"eval_every must be >= 0, got {self.eval_every}", parameter="eval_every")
        if self.diter < 1 or self.save_every < 1 or self.sample_every < 1 or self.log_every < 1:
            raise T2IError("diter, save_every, sample_every and log_every must be >= 1")
        if self.channels_last not in ("auto", "on", "off"):
            raise T2IError(f"channels_last must be auto, on or off, got {self.channels_last!r}")
        check_amp(self.amp)
        if not 0 <= self.ema_decay < 1:
            raise T2IError(f"ema_decay must lie in [0, 1), got {self.ema_decay}")


# What ``--arch NAME`` changes from the dataclass defaults (which are GAN-INT-CLS's) before a
# config file and flags apply: DF-GAN's recipe (Tao et al. 2022, hinge + MA-GP, Adam (0.0, 0.9),
# lr G 1e-4 / D 4e-4, batch 32, no INT, no decay), at a width a CPU can train, with the penalty
# taken lazily every 4th step (x4), as StyleGAN2 does for R1: 34 instead of 28 images/s at width 32
# with DiffAugment in bf16 on a 2-core Zen 4 (benchmarks/train_speed.py --arch dfgan --diffaug
# translation,cutout --gp-every 4 vs 1); --gp-every 1 is the paper's every step.
ARCH_DEFAULTS: dict[str, dict[str, dict]] = {
    "dcgan": {"model": {}, "train": {}},
    "dfgan": {
        "model": {"ngf": 32, "ndf": 32},
        "train": {
            "gan_type": "hinge", "lr": 1e-4, "lr_d": 4e-4, "beta1": 0.0, "beta2": 0.9, "batch_size": 32,
            "interpolate": False, "lr_halve_every": 0, "gp_every": 4,
        },
    },
}


def arch_defaults(arch: str) -> tuple[dict, dict]:
    """``(model, train)`` overrides of the defaults for ``arch``."""
    if arch not in ARCH_DEFAULTS:
        raise T2IError(f"architecture must be one of {', '.join(ARCHITECTURES)}, got {arch!r}")
    return dict(ARCH_DEFAULTS[arch]["model"]), dict(ARCH_DEFAULTS[arch]["train"])


def to_dict(config) -> dict:
    """A config as JSON-ready values; a ModelConfig with its architecture's own settings only."""
    if isinstance(config, ModelConfig):
        from t2i_cli.models import own_settings

        return own_settings(asdict(config))
    return asdict(config)


# What a JSON value may be for each annotation the configs use (bool is no int here: "ngf": true is a slip).
_JSON_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "float | None": (int, float, type(None))}


# Keys that files written before a rename still hold: old name -> new name.
RENAMED_KEYS = {"l2_coef": "feature_matching_coef"}


def from_dict(cls, data: dict, *, source: str = "config"):
    """Build ``cls`` from ``data``, refusing unknown keys (a typo must not pass silently) and values
    of the wrong type (``"ngf": "sixty"``); ranges are each config's ``validate``."""
    known = {f.name: f for f in fields(cls)}
    data = {RENAMED_KEYS.get(key, key) if RENAMED_KEYS.get(key) in known else key: value for key, value in data.items()}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise T2IError(f"{source}: unknown {cls.__name__} keys: {', '.join(unknown)}")
    for key, value in data.items():
        allowed = _JSON_TYPES[str(known[key].type)]
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            wanted = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
            raise T2IError(f"{source}: {key} must be {wanted}, got {json.dumps(value)}")
        if isinstance(value, float) and not math.isfinite(value):  # JSON's NaN and Infinity, or a flag's nan
            raise T2IError(f"{source}: {key} must be a finite number, got {value}", parameter=key)
    return cls(**data)


def load_config_file(path: Path) -> dict:
    """A JSON file with optional "model" and "train" sections (or flat train keys)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise T2IError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise T2IError(f"cannot read config file {path}: {exc}") from None
    except RecursionError:
        raise T2IError(f"config file {path} nests its JSON too deeply") from None
    if not isinstance(data, dict):
        raise T2IError(f"config file {path} must hold a JSON object")
    for section in ("model", "train"):
        if section in data and not isinstance(data[section], dict):
            raise T2IError(f"config file {path}: \"{section}\" must be a JSON object of settings, got {json.dumps(data[section])}")
    return data


def layered_configs(file_config: dict, train_flags: dict, model_flags: dict, *, source: str = "config") -> tuple[ModelConfig, TrainConfig]:
    """A new run's configs, layered: the architecture's recipe (:data:`ARCH_DEFAULTS`), then a
    config file's ``model`` and ``train`` sections (or its flat train keys), then the flags."""
    train_section = file_config.get("train", {k: v for k, v in file_config.items() if k != "model"})
    # Flags over the file, section by section; an old vanilla_* type (from either) sets the model unconditional.
    train_section, model_section = split_legacy_gan_type({**train_section, **train_flags}, {**file_config.get("model", {}), **model_flags},
                                                         source=source)
    model_preset, train_preset = arch_defaults(model_section.get("arch", "dcgan"))
    train = from_dict(TrainConfig, {**train_preset, **train_section}, source=source)
    model = from_dict(ModelConfig, {**model_preset, **model_section}, source=source)
    return model, train


def run_model(model: ModelConfig, train: TrainConfig, *, embedding_dim: int | None = None) -> ModelConfig:
    """The model as a new run builds it: the data's embedding size, and a D without batch coupling
    (``d_norm`` "layer") where the loss takes a per-sample gradient penalty (WGAN-GP, MA-GP), which
    batch statistics would mix across samples."""
    from t2i_cli.models import ARCH_SETTINGS

    changes: dict = {}
    if embedding_dim is not None:
        changes["embedding_dim"] = embedding_dim
    if train.per_sample_penalty and "d_norm" in ARCH_SETTINGS[model.arch]:
        changes["d_norm"] = "layer"
    return replace(model, **changes)


def validate_run(model: ModelConfig, train: TrainConfig) -> None:
    """Every rule a run's two configs must keep: each one's own ranges, then those across them."""
    train.validate()
    run_model(model, train).validate()
    if train.match_coef > 0 and not model.conditional:
        raise T2IError("the caption-matching loss needs captions: an unconditional model has none", parameter=("match_coef", "conditional"))
    if train.hinge and not model.conditional:
        raise T2IError("the hinge type scores mismatched caption pairs: it needs a conditional model", parameter=("gan_type", "conditional"))
    if train.hinge and model.conditioning_augmentation:
        raise T2IError("the hinge type has no KL term for conditioning augmentation; train without it or with the gan type",
                       parameter=("conditioning_augmentation", "gan_type"))
    if model.msg and train.wasserstein and train.gradient_penalty > 0:
        raise T2IError("MSG-GAN works with the gan and hinge types: the WGAN-GP penalty mixes single images, not pyramids",
                       parameter=("msg", "gradient_penalty"))


def split_legacy_gan_type(train: dict, model: dict, *, source: str = "config") -> tuple[dict, dict]:
    """A train section of the old ``vanilla_gan``/``vanilla_wgan`` type read as the loss plus an
    unconditional model (``conditional`` false in the model section), as runs, checkpoints and
    config files of before the split hold them; other sections come back as they are."""
    gan_type = train.get("gan_type")
    if not isinstance(gan_type, str) or gan_type not in LEGACY_GAN_TYPES:
        return train, model
    if model.get("conditional") is True:
        raise T2IError(f"{source}: the {gan_type} type is unconditional, but the model is set conditional", parameter="gan_type")
    return {**train, "gan_type": LEGACY_GAN_TYPES[gan_type]}, {**model, "conditional": False}

