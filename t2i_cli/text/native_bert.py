"""A BERT encoder for inference built on torch's own ``nn.TransformerEncoder``.

BERT's layer is exactly torch's post-norm ``TransformerEncoderLayer`` with GELU (attention, add &
LayerNorm, feed-forward, add & LayerNorm), so a plain BERT checkpoint maps onto it weight for
weight. Captions are tokenised with the ``tokenizers`` library from the folder's tokenizer.json.
Importing neither ``transformers`` nor its model registry saves ~2.5 s of every cold
``t2i generate``; the outputs equal transformers' BertModel to float rounding (tested).
Anything but a plain BERT (other positions, activations, no tokenizer.json) uses transformers.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from t2i_cli.building import no_initialisation


def supports(model_dir: Path) -> bool:
    """Whether ``model_dir`` holds a plain BERT this module can run."""
    try:
        config = json.loads((Path(model_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return (
        config.get("model_type") == "bert"
        and config.get("hidden_act", "gelu") == "gelu"
        and config.get("position_embedding_type", "absolute") == "absolute"
        and (Path(model_dir) / "tokenizer.json").is_file()
        and (Path(model_dir) / "model.safetensors").is_file()
    )


class NativeBert(nn.Module):
    """Embeddings + post-norm transformer layers; returns the last hidden states ``(B, T, H)``."""

    def __init__(self, config: dict):
        super().__init__()
        hidden, eps = config["hidden_size"], config.get("layer_norm_eps", 1e-12)
        self.word = nn.Embedding(config["vocab_size"], hidden)
        self.position = nn.Embedding(config["max_position_embeddings"], hidden)
        self.token_type = nn.Embedding(config.get("type_vocab_size", 2), hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        layer = nn.TransformerEncoderLayer(
            hidden, config["num_attention_heads"], config["intermediate_size"], dropout=0.0,
            activation="gelu", layer_norm_eps=eps, batch_first=True, norm_first=False,
        )
        self.encoder = nn.TransformerEncoder(layer, config["num_hidden_layers"], enable_nested_tensor=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.word(input_ids) + self.position(positions) + self.token_type(torch.zeros_like(input_ids))
        return self.encoder(self.norm(x), src_key_padding_mask=attention_mask == 0)

    @classmethod
    def from_folder(cls, model_dir: Path) -> "NativeBert":
        from safetensors.torch import load_file

        model_dir = Path(model_dir)
        config = json.loads((model_dir / "config.json").read_text())
        with no_initialisation():  # every parameter is loaded below: a random start would be thrown away
            model = cls(config)
        weights = load_file(model_dir / "model.safetensors")
        weights = {k.removeprefix("bert."): v for k, v in weights.items()}
        # assign: the file's tensors become the parameters; strict, so none is left uninitialised
        model.load_state_dict(_renamed(weights, config["num_hidden_layers"]), assign=True)
        return model.eval()


def _renamed(weights: dict[str, torch.Tensor], layers: int) -> dict[str, torch.Tensor]:
    """transformers' BertModel names -> this module's names (q, k, v stacked into in_proj)."""
    out = {
        "word.weight": weights["embeddings.word_embeddings.weight"],
        "position.weight": weights["embeddings.position_embeddings.weight"],
        "token_type.weight": weights["embeddings.token_type_embeddings.weight"],
        "norm.weight": weights["embeddings.LayerNorm.weight"],
        "norm.bias": weights["embeddings.LayerNorm.bias"],
    }
    for i in range(layers):
        src, dst = f"encoder.layer.{i}.", f"encoder.layers.{i}."
        for kind in ("weight", "bias"):
            out[dst + f"self_attn.in_proj_{kind}"] = torch.cat(
                [weights[src + f"attention.self.{part}.{kind}"] for part in ("query", "key", "value")]
            )
            out[dst + f"self_attn.out_proj.{kind}"] = weights[src + f"attention.output.dense.{kind}"]
            out[dst + f"norm1.{kind}"] = weights[src + f"attention.output.LayerNorm.{kind}"]
            out[dst + f"linear1.{kind}"] = weights[src + f"intermediate.dense.{kind}"]
            out[dst + f"linear2.{kind}"] = weights[src + f"output.dense.{kind}"]
            out[dst + f"norm2.{kind}"] = weights[src + f"output.LayerNorm.{kind}"]
    return {k: v.float() for k, v in out.items()}


class NativeTokenizer:
    """tokenizer.json through the ``tokenizers`` library: ids and masks as padded tensors."""

    def __init__(self, model_dir: Path, max_length: int):
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        self.max_length = max_length
        self.pad_id = self._tokenizer.padding["pad_id"] if self._tokenizer.padding else 0

    def lengths(self, texts: list[str]) -> list[int]:
        return [len(e.ids) for e in self._tokenizer.encode_batch(texts)]

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        encodings = self._tokenizer.encode_batch(texts)
        ids = [e.ids[: self.max_length - 1] + [e.ids[-1]] if len(e.ids) > self.max_length else e.ids for e in encodings]
        width = max(len(row) for row in ids)
        input_ids = torch.full((len(ids), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for row, values in enumerate(ids):
            input_ids[row, : len(values)] = torch.tensor(values)
            mask[row, : len(values)] = 1
        return {"input_ids": input_ids, "attention_mask": mask}
