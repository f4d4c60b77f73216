"""A plain BERT made here: masked-language-model pretraining of a small BERT from scratch.

GAN-BERT's gain shows where its backbone is a plain masked-language model, not one already tuned on
sentence pairs (all-MiniLM-L6-v2 is), and no such model can be downloaded here. So one is trained:
a ``BertForMaskedLM`` built from a config (``transformers``, no download) learns to fill in masked
tokens of sentences, one a line: BERT's objective without next-sentence prediction (as RoBERTa),
15 % of the tokens chosen, of those 80 % replaced by [MASK], 10 % by a random token, 10 % kept.

The tokenizer is the installed MiniLM's (BERT's uncased WordPiece, 30,522 tokens), copied into the
output, so token ids are MiniLM's. The output is an ordinary ``transformers`` BERT folder
(``config.json``, ``model.safetensors``, the tokenizer files) that :func:`ganbert.backbone.load_backbone`,
``--backbone`` and t2i's ``hf:PATH`` caption encoder load; ``pretraining.json`` beside them records
how it was made and its held-out masked-token accuracy. A run saves every ``save_every`` steps with
its optimizer state in ``training/``, so ``resume`` goes on from the last save (bit for bit, on one
device) after an interrupted session.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import torch

from ganbert.backbone import default_backbone_dir
from ganbert.errors import GanBertError
from ganbert.model import atomic_folder

RECORD_FILE = "pretraining.json"
STATE_DIR = "training"
KIND = "ganbert-pretrained-bert"
HELD_OUT_SHARE = 0.01  # of the sentences, for the masked-token accuracy reported at the end (at most 2,000)


@dataclass(frozen=True)
class PretrainConfig:
    layers: int = 4
    hidden: int = 256
    heads: int = 4
    intermediate: int = 1024
    max_length: int = 32  # tokens a sentence, [CLS] and [SEP] included (the flower captions: 8-30)
    steps: int = 3000
    batch_size: int = 128
    learning_rate: float = 5e-4
    warmup_steps: int = 300  # linear warm-up, then linear decay to 0 at ``steps``
    weight_decay: float = 0.01
    mask_probability: float = 0.15
    seed: int = 0
    bf16: bool = False  # autocast to bfloat16 (about twice as fast on CPUs with AVX-512 BF16)

    def validate(self) -> None:
        for name in ("layers", "hidden", "heads", "intermediate", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise GanBertError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.hidden % self.heads:
            raise GanBertError(f"the width ({self.hidden}) must be a multiple of the heads ({self.heads})")
        if not 4 <= self.max_length <= 512:
            raise GanBertError(f"max_length must lie in 4..512 tokens, got {self.max_length}")
        if not (0 < self.learning_rate <= 1 and math.isfinite(self.learning_rate)):
            raise GanBertError(f"the learning rate must lie in (0, 1], got {self.learning_rate}")
        if not 0 < self.mask_probability < 1:
            raise GanBertError(f"the mask probability must lie in (0, 1), got {self.mask_probability}")
        if self.warmup_steps < 0 or self.weight_decay < 0:
            raise GanBertError("warmup_steps and weight_decay must be >= 0")


@dataclass
class PretrainResult:
    folder: Path
    steps: int
    seconds: float  # training time, summed over resumes
    loss: float  # mean masked-LM loss of the last 100 steps
    held_out_accuracy: float  # share of masked held-out tokens predicted exactly
    held_out_sentences: int
    parameters: int
    history: list[dict] = field(default_factory=list)


def sentences_fingerprint(sentences: Sequence[str]) -> str:
    """A short sha256 of the sentences in order: a resume must read the very same ones."""
    import hashlib

    digest = hashlib.sha256()
    for sentence in sentences:
        digest.update(sentence.encode("utf-8") + b"\n")
    return digest.hexdigest()[:20]


def read_sentences(path: str | Path) -> list[str]:
    """A UTF-8 text file, one sentence a line (blank lines skipped)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise GanBertError(f"text file {path} does not exist") from None
    except UnicodeDecodeError:
        raise GanBertError(f"text file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise GanBertError(f"text file {path} is unreadable: {exc.strerror or exc}") from None
    return [line.strip() for line in lines if line.strip()]


def _tokenizer():
    import transformers
    from transformers import AutoTokenizer

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return AutoTokenizer.from_pretrained(default_backbone_dir(), local_files_only=True)


def _bert(config: PretrainConfig, tokenizer):
    from transformers import BertConfig, BertForMaskedLM

    bert = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=config.hidden, num_hidden_layers=config.layers,
        num_attention_heads=config.heads, intermediate_size=config.intermediate,
        max_position_embeddings=max(512, config.max_length), pad_token_id=tokenizer.pad_token_id,
    )
    return BertForMaskedLM(bert)


def _split(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded (train, held-out) row indices."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    held = min(2000, max(1, int(count * HELD_OUT_SHARE))) if count >= 20 else 0
    return order[held:], order[:held]


def mask_tokens(ids: torch.Tensor, tokenizer, probability: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking of a padded batch ``ids`` (B, T): ``(inputs, labels)``, labels -100 where
    no prediction is asked. [CLS], [SEP] and padding are never chosen."""
    special = special_tokens(ids, tokenizer)
    chosen = (torch.rand(ids.shape, generator=generator) < probability) & ~special
    if not chosen.any():  # a batch of short lines may draw none: the loss would be the mean of nothing (NaN)
        candidates = (~special).nonzero()
        if len(candidates):
            row, column = candidates[int(torch.randint(len(candidates), (1,), generator=generator))]
            chosen[row, column] = True
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    draw = torch.rand(ids.shape, generator=generator)
    inputs = ids.clone()
    inputs[chosen & (draw < 0.8)] = tokenizer.mask_token_id
    randomised = chosen & (draw >= 0.8) & (draw < 0.9)
    inputs[randomised] = torch.randint(tokenizer.vocab_size, ids.shape, generator=generator)[randomised]
    return inputs, labels


def _batch(encoded: list[list[int]], rows: torch.Tensor, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids of ``rows``, padded to the longest: ``(ids, attention_mask)``."""
    longest = max(len(encoded[i]) for i in rows.tolist())
    ids = torch.full((len(rows), longest), pad, dtype=torch.long)
    for k, i in enumerate(rows.tolist()):
        ids[k, : len(encoded[i])] = torch.tensor(encoded[i])
    return ids, (ids != pad).long()


def _learning_rate_factor(config: PretrainConfig) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        return max(0.0, (config.steps - step) / max(1, config.steps - config.warmup_steps))

    return factor


def _held_out_accuracy(model, encoded, rows, tokenizer, config, device) -> float:
    """Masked-token accuracy on the held-out sentences, with a fixed masking (seed + 1)."""
    if not len(rows):
        return float("nan")
    generator = torch.Generator().manual_seed(config.seed + 1)
    hits = total = 0
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(rows), 256):
            ids, mask = _batch(encoded, rows[start : start + 256], tokenizer.pad_token_id)
            inputs, labels = mask_tokens(ids, tokenizer, config.mask_probability, generator)
            logits, targets = _masked_logits(model, inputs.to(device), mask.to(device), labels.to(device))
            hits += int((logits.argmax(-1) == targets).sum())
            total += len(targets)
    model.train()
    return hits / max(total, 1)


def _masked_logits(model, inputs: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The MLM head's logits at the masked positions only, and their targets. The head maps to the
    whole vocabulary (30,522): run on every position it costs more than the encoder itself, and
    only the ~15 % masked ones are scored."""
    hidden = model.bert(input_ids=inputs, attention_mask=mask).last_hidden_state
    asked = labels != -100
    return model.cls(hidden[asked]), labels[asked]


def special_tokens(ids: torch.Tensor, tokenizer) -> torch.Tensor:
    """Where ``ids`` holds [CLS], [SEP] or padding: (B, T) bool."""
    return (ids == tokenizer.pad_token_id) | (ids == tokenizer.cls_token_id) | (ids == tokenizer.sep_token_id)


def pretrain_bert(
    sentences: Sequence[str],
    config: PretrainConfig,
    out: str | Path,
    *,
    device: str | torch.device = "cpu",
    save_every: int = 500,
    resume: bool = False,
    source: dict | None = None,
    progress: Callable[[int], None] | None = None,
    time_limit: float = 0.0,
) -> PretrainResult:
    """Pretrain a BERT on ``sentences`` and write it to ``out`` (see the module's docstring).

    ``resume`` goes on from ``out``'s last save, with the config it was started with (``config``
    must be the same); ``time_limit`` > 0 (minutes, summed over resumes) stops at the first save
    past it. ``source`` (where the sentences came from) goes into the record."""
    config.validate()
    out = Path(out)
    sentences = list(sentences)
    if len(sentences) < 2:
        raise GanBertError(f"pretraining needs sentences to learn from; got {len(sentences)}")
    fingerprint = sentences_fingerprint(sentences)
    if resume:
        record = read_record(out)
        try:
            started = PretrainConfig(**record["config"])
        except (KeyError, TypeError) as exc:
            raise GanBertError(f"{out / RECORD_FILE} is damaged ({type(exc).__name__}); start a new pretraining") from None
        # bf16 follows the machine (--amp auto), so a run may go on elsewhere with the same flags.
        if replace(started, bf16=config.bf16) != config:
            raise GanBertError(f"{out} was started with other settings ({started}); resume it with those")
        if record.get("sentences_sha256") != fingerprint:
            raise GanBertError(f"{out} was started on other sentences ({record.get('sentences')} of them); resume it on the same "
                               f"text, or the same data file with the same --holdout and --split-seed")
        if record.get("steps_done", 0) >= config.steps or not (out / STATE_DIR / "state.pt").is_file():
            raise GanBertError(f"{out} finished its {record.get('steps_done')} steps; there is nothing to resume")
    elif out.exists():
        raise GanBertError(f"{out} already exists: resume it, or write to another folder")
    if not out.parent.is_dir():
        raise GanBertError(f"folder {out.parent} does not exist")
    device = torch.device(device)
    torch.manual_seed(config.seed)
    tokenizer = _tokenizer()
    # On the device before the optimizer exists: a resumed optimizer state then loads onto the
    # parameters' device (made on the CPU and moved later, it stayed on the CPU beside CUDA gradients).
    model = _bert(config, tokenizer).to(device)
    encoded = tokenizer(sentences, truncation=True, max_length=config.max_length)["input_ids"]
    train_rows, held_rows = _split(len(sentences), config.seed)
    if len(train_rows) < 1:
        raise GanBertError("no sentences left to train on after the held-out share")
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _learning_rate_factor(config))
    generator = torch.Generator().manual_seed(config.seed)
    step, seconds, history, order, position = 0, 0.0, [], None, 0
    if resume:
        from safetensors.torch import load_model

        try:
            state = torch.load(out / STATE_DIR / "state.pt", map_location="cpu", weights_only=True)
            load_model(model, str(out / STATE_DIR / "model.safetensors"))
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            generator.set_state(state["generator"])
            step, seconds, history = int(state["step"]), float(state["seconds"]), list(record["history"])
            order, position = state["order"], int(state["position"])
            torch.set_rng_state(state["torch_rng"])  # dropout's draws go on where they stopped
            if device.type == "cuda" and state.get("cuda_rng"):
                torch.cuda.set_rng_state_all(state["cuda_rng"])
        except Exception as exc:  # a damaged or foreign file: torch and safetensors raise many types here
            raise GanBertError(f"the training state in {out / STATE_DIR} is unreadable ({type(exc).__name__}); "
                               f"start a new pretraining") from None
    model.train()
    parameters = sum(p.numel() for p in model.parameters())
    recent: deque[float] = deque(maxlen=100)  # the last 100 losses, whose mean each save records
    accuracy = float("nan")
    clock = time.perf_counter()
    while step < config.steps:
        if order is None or position + config.batch_size > len(order):
            order, position = train_rows[torch.randperm(len(train_rows), generator=generator)], 0
        rows = order[position : position + config.batch_size]
        position += config.batch_size
        ids, mask = _batch(encoded, rows, tokenizer.pad_token_id)
        inputs, labels = mask_tokens(ids, tokenizer, config.mask_probability, generator)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
            logits, targets = _masked_logits(model, inputs.to(device), mask.to(device), labels.to(device))
            loss = torch.nn.functional.cross_entropy(logits.float(), targets)
        if not torch.isfinite(loss):
            raise GanBertError(f"pretraining diverged at step {step + 1} (loss {float(loss)}); lower the learning rate")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        step += 1
        recent.append(float(loss.detach()))
        if progress is not None:
            progress(1)
        last = step == config.steps
        if step % save_every == 0 or last:
            seconds += time.perf_counter() - clock
            clock = time.perf_counter()
            history.append({"step": step, "loss": round(sum(recent) / len(recent), 4), "seconds": round(seconds, 1)})
            out_of_time = time_limit > 0 and seconds >= time_limit * 60
            scored = last or out_of_time
            if scored:
                accuracy = _held_out_accuracy(model, encoded, held_rows, tokenizer, config, device)
            state = {"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), "generator": generator.get_state(),
                     "torch_rng": torch.get_rng_state(), "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
                     "step": step, "seconds": seconds, "order": order, "position": position}
            _save(out, model, tokenizer, state, {
                "kind": KIND, "config": asdict(config), "steps_done": step, "seconds": round(seconds, 1),
                "parameters": parameters, "sentences": len(sentences), "sentences_sha256": fingerprint,
                "held_out_sentences": len(held_rows),
                "held_out_masked_accuracy": round(accuracy, 4) if scored else None,
                "source": source or {}, "history": history,
            }, keep_state=not last)
            if out_of_time and not last:
                break
    return PretrainResult(out, step, seconds, history[-1]["loss"] if history else float("nan"), accuracy, len(held_rows),
                          parameters, history)


def _save(out: Path, model, tokenizer, state: dict, record: dict, *, keep_state: bool) -> None:
    """Write the BERT folder whole or not at all: a kill mid-save leaves the last one."""
    from safetensors.torch import save_model

    with atomic_folder(out) as partial:
        model.bert.save_pretrained(partial, safe_serialization=True)  # the encoder alone: what a backbone loads
        tokenizer.save_pretrained(partial)
        if keep_state:  # what a resume needs: the whole model (with its MLM head) and the optimizer
            (partial / STATE_DIR).mkdir()
            save_model(model, str(partial / STATE_DIR / "model.safetensors"))  # the MLM head's decoder is tied to the embeddings
            torch.save(state, partial / STATE_DIR / "state.pt")
        (partial / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")


def read_record(folder: str | Path) -> dict:
    """``pretraining.json`` of a folder :func:`pretrain_bert` wrote, checked."""
    path = Path(folder) / RECORD_FILE
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise GanBertError(f"{folder} is not a BERT pretrained by t2i ganbert pretrain (no {RECORD_FILE})") from None
    except (OSError, ValueError) as exc:
        raise GanBertError(f"{path} is unreadable: {exc}") from None
    if not isinstance(record, dict) or record.get("kind") != KIND:
        raise GanBertError(f"{path} is not a pretraining record")
    return record
