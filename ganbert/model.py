"""GAN-BERT's networks (Croce et al. 2020, section 2) and the classifier they make.

- :class:`Generator`: noise -> a fake sentence representation of the backbone's width.
- :class:`Discriminator`: a representation -> (its last hidden features, k + 1 logits), the last
  logit meaning "fake". The same head is the classifier of the supervised baseline, which simply
  never uses the fake column.
- :class:`GanBertModel`: backbone + discriminator + label table: its two updates, ``predict``,
  ``evaluate``, and the checkpoint folder (``save``, ``load``, :func:`read_description`). Loading
  a trained classifier needs this module, not the trainer.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterator, Sequence

import torch
from torch import nn

from ganbert.backbone import DEFAULT_BACKBONE, load_backbone, sentence_features
from ganbert.data import TextExample, outside_labels, scorable_examples
from ganbert.errors import GanBertError
from ganbert.losses import discriminator_unsupervised_loss, generator_loss, supervised_loss
from ganbert.metrics import classification_metrics


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


MODES = ("ganbert", "baseline")
BATCHING = ("paired", "mixed")
CHECKPOINT_KIND = "ganbert-checkpoint"
CHECKPOINT_FORMAT = 1


@dataclass
class GanBertConfig:
    mode: str = "ganbert"
    steps: int = 1000
    batch_size: int = 32
    learning_rate: float = 5e-5  # backbone, discriminator and generator, as in the paper
    warmup_fraction: float = 0.1  # linear warm-up over this share of the steps, then constant
    noise_dim: int = 100
    generator_layers: int = 1
    discriminator_layers: int = 1
    dropout: float = 0.1
    max_length: int = 64  # tokens per sentence
    # How GAN-BERT fills a step. "paired": batch_size labelled rows (the baseline's very batch) plus
    # batch_size unlabelled rows, so the two modes differ only by the unlabelled data and the GAN.
    # "mixed": the authors' code -- one shuffled stream of unlabelled rows and labelled rows
    # repeated log2(all / labelled) times, batch_size rows a step (few labelled rows per batch).
    batching: str = "paired"
    seed: int = 0

    def validate(self) -> None:
        if self.mode not in MODES:
            raise GanBertError(f"unknown mode {self.mode!r}; use one of: {', '.join(MODES)}")
        for name in ("steps", "batch_size", "noise_dim", "max_length"):
            if getattr(self, name) < 1:
                raise GanBertError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise GanBertError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.batching not in BATCHING:
            raise GanBertError(f"unknown batching {self.batching!r}; use one of: {', '.join(BATCHING)}")
        if not 0 <= self.warmup_fraction < 1 or not 0 <= self.dropout < 1:
            raise GanBertError("warmup_fraction and dropout must lie in [0, 1)")

    @classmethod
    def from_dict(cls, data: dict) -> "GanBertConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class GanBertModel:
    """A backbone + discriminator head (+ the generator while training) with its label table."""

    def __init__(self, tokenizer, backbone, discriminator: Discriminator, labels: Sequence[str],
                 config: GanBertConfig, generator: Generator | None = None, backbone_name: str = DEFAULT_BACKBONE):
        self.tokenizer = tokenizer
        self.backbone = backbone
        self.discriminator = discriminator
        self.generator = generator
        self.labels = list(labels)
        self.config = config
        self.backbone_name = backbone_name

    @property
    def device(self) -> torch.device:
        return next(self.discriminator.parameters()).device

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer(list(texts), truncation=True, max_length=self.config.max_length)["input_ids"]

    def collate(self, token_ids: Sequence[list[int]]) -> dict[str, torch.Tensor]:
        width = max(len(ids) for ids in token_ids)
        pad = self.tokenizer.pad_token_id or 0
        input_ids = torch.full((len(token_ids), width), pad, dtype=torch.long)
        mask = torch.zeros((len(token_ids), width), dtype=torch.long)
        for row, ids in enumerate(token_ids):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            mask[row, : len(ids)] = 1
        return {"input_ids": input_ids.to(self.device), "attention_mask": mask.to(self.device)}

    # --- the two updates ------------------------------------------------------------------------
    def discriminator_step(self, batch, labels: torch.Tensor, optimizer, noise: torch.Tensor | None):
        """Update backbone + D; returns (real features detached, fake sample or None, stats)."""
        real = sentence_features(self.backbone, batch)
        real_features, real_logits = self.discriminator(real)
        labelled = labels >= 0
        loss_sup = supervised_loss(real_logits, labels.clamp(min=0), labelled)
        stats = {"supervised": loss_sup.detach()}
        loss = loss_sup
        fake = None
        if noise is not None:
            fake = self.generator(noise)
            _, fake_logits = self.discriminator(fake.detach())
            loss_unsup = discriminator_unsupervised_loss(real_logits, fake_logits)
            stats["d_unsupervised"] = loss_unsup.detach()
            loss = loss + loss_unsup
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        stats["d_loss"] = loss.detach()
        return real_features.detach(), fake, stats

    def generator_step(self, real_features: torch.Tensor, fake: torch.Tensor, optimizer) -> dict[str, torch.Tensor]:
        """Update G only: gradients are taken for G's parameters, D's are never written."""
        fake_features, fake_logits = self.discriminator(fake)
        adversarial, matching = generator_loss(fake_logits, real_features, fake_features)
        loss = adversarial + matching
        parameters = list(self.generator.parameters())
        for parameter, grad in zip(parameters, torch.autograd.grad(loss, parameters)):
            parameter.grad = grad
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return {"g_loss": loss.detach(), "feature_matching": matching.detach()}

    # --- inference ------------------------------------------------------------------------------
    def predict(self, texts: Sequence[str], *, batch_size: int = 256) -> list[int]:
        """Label index per text (the fake column is never a prediction)."""
        token_ids = self.tokenize(texts)
        order = sorted(range(len(texts)), key=lambda i: len(token_ids[i]))
        predictions = [0] * len(texts)
        self.backbone.eval()
        self.discriminator.eval()
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                batch = self.collate([token_ids[i] for i in rows])
                _, logits = self.discriminator(sentence_features(self.backbone, batch))
                for row, label in zip(rows, logits[:, :-1].argmax(-1).tolist()):
                    predictions[row] = label
        return predictions

    def evaluate(self, examples: Sequence[TextExample]) -> dict[str, float]:
        """Accuracy and macro-F1 on the labelled ``examples``. A sentence whose label is not in the
        model's table is scored as the paper scores it, an error: each such label is a class of its
        own that is never predicted (F1 0 in the macro mean); ``outside_labels`` counts them."""
        scored = scorable_examples(examples)
        index = {label: i for i, label in enumerate(self.labels)}
        for example in outside_labels(scored, self.labels):
            index.setdefault(example.label, len(index))
        metrics = classification_metrics([index[e.label] for e in scored], self.predict([e.text for e in scored]))
        return {**metrics, "outside_labels": len(outside_labels(scored, self.labels))}

    # --- checkpoints ----------------------------------------------------------------------------
    def save(self, folder: str | Path, *, metadata: dict | None = None, overwrite: bool = False) -> Path:
        """Write a self-describing checkpoint folder atomically: ``ganbert.json`` (labels, config,
        backbone, caller's metadata), ``backbone/`` (transformers, safetensors) and ``heads.safetensors``."""
        from safetensors.torch import save_file

        folder = Path(folder)
        if folder.exists() and not overwrite:
            raise GanBertError(f"{folder} already exists, and replacing it was not asked for", parameter="overwrite")
        if not folder.parent.is_dir():
            raise GanBertError(f"folder {folder.parent} does not exist")
        with atomic_folder(folder) as partial:
            self.backbone.save_pretrained(partial / "backbone", safe_serialization=True)
            self.tokenizer.save_pretrained(partial / "backbone")
            heads = {f"discriminator.{k}": v.detach().cpu().contiguous() for k, v in self.discriminator.state_dict().items()}
            save_file(heads, partial / "heads.safetensors")
            description = {
                "kind": CHECKPOINT_KIND,
                "format": CHECKPOINT_FORMAT,
                "labels": self.labels,
                "hidden_size": int(self.backbone.config.hidden_size),
                "backbone": self.backbone_name,
                "config": asdict(self.config),
                "metadata": metadata or {},
            }
            (partial / "ganbert.json").write_text(json.dumps(description, indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path, *, device: str | torch.device = "cpu") -> "GanBertModel":
        description = read_description(folder)
        from safetensors.torch import load_file

        folder = Path(folder)
        config = GanBertConfig.from_dict(description["config"])
        tokenizer, backbone = load_backbone(folder / "backbone")
        discriminator = Discriminator(
            int(description["hidden_size"]), len(description["labels"]), config.discriminator_layers, config.dropout
        )
        try:
            heads = load_file(folder / "heads.safetensors")
            discriminator.load_state_dict({k.removeprefix("discriminator."): v for k, v in heads.items() if k.startswith("discriminator.")})
        except (OSError, RuntimeError, ValueError) as exc:
            raise GanBertError(f"{folder}/heads.safetensors is unreadable: {str(exc).splitlines()[0]}") from None
        model = cls(tokenizer, backbone, discriminator, description["labels"], config, backbone_name=description.get("backbone", "?"))
        model.backbone.to(device)
        model.discriminator.to(device)
        return model


def update_metadata(folder: str | Path, metadata: dict) -> None:
    """Merge ``metadata`` into a saved checkpoint's ``ganbert.json`` (replaced in one rename): how
    a model saved before its evaluation gets the evaluation's figures."""
    folder = Path(folder)
    description = read_description(folder)
    description["metadata"] = {**description.get("metadata", {}), **metadata}
    partial = folder / f".ganbert.json.partial-{os.getpid()}"
    try:
        partial.write_text(json.dumps(description, indent=2) + "\n")
        os.replace(partial, folder / "ganbert.json")
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def read_description(folder: str | Path) -> dict:
    """The checkpoint's ``ganbert.json``, checked; a folder that is not a GAN-BERT checkpoint fails."""
    folder = Path(folder)
    path = folder / "ganbert.json"
    if not folder.is_dir():
        raise GanBertError(f"GAN-BERT checkpoint {folder} does not exist")
    try:
        description = json.loads(path.read_text())
    except FileNotFoundError:
        raise GanBertError(f"{folder} is not a GAN-BERT checkpoint (no ganbert.json)") from None
    except (ValueError, OSError):
        raise GanBertError(f"{path} is unreadable") from None
    if not isinstance(description, dict) or description.get("kind") != CHECKPOINT_KIND:
        raise GanBertError(f"{folder} is not a GAN-BERT checkpoint ({path.name} has another kind)")
    if int(description.get("format", 0)) > CHECKPOINT_FORMAT:
        raise GanBertError(f"{folder} has GAN-BERT checkpoint format {description['format']}; upgrade to read it")
    return description


@contextlib.contextmanager
def atomic_folder(folder: Path) -> Iterator[Path]:
    """A hidden partial folder beside ``folder`` to write (not yet made: ``save_pretrained`` makes
    it); on a clean exit it takes ``folder``'s place (an old one is moved aside first and deleted
    only after), on an error it is deleted, so a kill mid-save leaves the last whole folder."""
    folder = Path(folder)
    partial = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        yield partial
        old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
        if folder.exists():
            folder.rename(old)
        partial.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
