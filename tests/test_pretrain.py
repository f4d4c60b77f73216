"""t2i ganbert pretrain: a small BERT pretrained here (masked-language modelling) is a backbone."""

import json

import pytest
import torch
from typer.testing import CliRunner

from ganbert.errors import GanBertError
from ganbert.pretrain import PretrainConfig, mask_tokens, pretrain_bert
from t2i_cli.cli import app
from test_cli import assert_one_line_error

runner = CliRunner()
TINY = ("--steps", 4, "--layers", 2, "--hidden", 32, "--heads", 2, "--intermediate", 64, "--batch-size", 8, "--warmup", 2, "--amp", "off", "-q")
SENTENCES = [f"this flower has {colour} petals and a {centre} center" for colour in ("pink", "white", "purple", "yellow", "red")
             for centre in ("yellow", "dark", "green", "white")] * 2


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_a_pretrained_bert_is_a_backbone_and_a_caption_encoder_with_minilms_tokens(tmp_path, flowers_h5):
    out = tmp_path / "bert"
    result = run("ganbert", "pretrain", out, "--data", flowers_h5, *TINY, "--steps", 6, "--save-every", 3)
    assert result.exit_code == 0, result.output
    record = json.loads((out / "pretraining.json").read_text())
    assert record["steps_done"] == 6 and record["config"]["layers"] == 2 and 0 <= record["held_out_masked_accuracy"] <= 1
    # The train split's captions, but for the images ganbert train holds out by default.
    assert record["source"] == {"data": "flowers.h5", "split": "train", "images": record["source"]["images"], "holdout": 0.2, "split_seed": 0}
    assert 0 < record["source"]["images"] < 9 and not (out / "training").exists()  # a finished run keeps no resume state
    from ganbert.backbone import load_backbone
    from t2i_cli.text.encoder import load_text_encoder

    tokenizer, backbone = load_backbone(out)
    minilm, _ = load_backbone(None)
    texts = ["this flower has pink petals and a yellow center", "Crème-brûlée petals, 3 of them!"]
    assert tokenizer(texts)["input_ids"] == minilm(texts)["input_ids"] and backbone.config.num_hidden_layers == 2
    assert load_text_encoder(f"hf:{out}", device="cpu").encode(texts).shape == (2, 32)
    trained = run("ganbert", "train", tmp_path / "gb", "--data", flowers_h5, "--backbone", out, "--steps", 2, "--batch-size", 4,
                  "--labelled-fraction", 0.5, "-q")
    assert trained.exit_code == 0, trained.output


def test_an_interrupted_pretraining_resumes_to_the_same_weights(tmp_path):
    from safetensors.torch import load_file

    config = PretrainConfig(layers=1, hidden=16, heads=2, intermediate=32, steps=6, batch_size=4, warmup_steps=1)
    straight = pretrain_bert(SENTENCES, config, tmp_path / "straight", save_every=3)
    stopped = pretrain_bert(SENTENCES, config, tmp_path / "resumed", save_every=3, time_limit=1e-9)
    assert stopped.steps == 3 and (tmp_path / "resumed" / "training" / "state.pt").is_file()
    resumed = pretrain_bert(SENTENCES, config, tmp_path / "resumed", save_every=3, resume=True)
    assert resumed.steps == straight.steps == 6 and resumed.held_out_accuracy == straight.held_out_accuracy
    a, b = (load_file(str(tmp_path / name / "model.safetensors")) for name in ("straight", "resumed"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(GanBertError, match="was started with other settings"):
        pretrain_bert(SENTENCES, PretrainConfig(layers=1, hidden=16, heads=2, intermediate=32, steps=9, batch_size=4), tmp_path / "resumed",
                      resume=True)
    with pytest.raises(GanBertError, match="already exists"):
        pretrain_bert(SENTENCES, config, tmp_path / "straight")
    with pytest.raises(GanBertError, match="finished its 6 steps; there is nothing to resume"):
        pretrain_bert(SENTENCES, config, tmp_path / "straight", resume=True)
    # A resume reads the very sentences it started on, whatever the machine's bf16 says.
    pretrain_bert(SENTENCES, config, tmp_path / "again", save_every=3, time_limit=1e-9)
    with pytest.raises(GanBertError, match="was started on other sentences"):
        pretrain_bert(SENTENCES[:-1], config, tmp_path / "again", save_every=3, resume=True)
    from dataclasses import replace

    assert pretrain_bert(SENTENCES, replace(config, bf16=True), tmp_path / "again", save_every=3, resume=True).steps == 6
    (tmp_path / "again2").mkdir()
    (tmp_path / "again2" / "pretraining.json").write_text('{"kind": "ganbert-pretrained-bert", "config": {"layers": "x", "nope": 1}}')
    with pytest.raises(GanBertError, match="is damaged"):
        pretrain_bert(SENTENCES, config, tmp_path / "again2", resume=True)


def test_masking_follows_bert_and_never_touches_special_tokens():
    from ganbert.pretrain import _tokenizer, special_tokens

    tokenizer = _tokenizer()
    ids = torch.tensor(tokenizer(["this flower has pink petals and a yellow center"] * 400, padding=True)["input_ids"])
    special = special_tokens(ids, tokenizer)
    inputs, labels = mask_tokens(ids, tokenizer, 0.15, torch.Generator().manual_seed(0))
    asked = labels != -100
    assert not (asked & special).any() and torch.equal(labels[asked], ids[asked])
    share = asked.sum() / (~special).sum()
    masked = (inputs[asked] == tokenizer.mask_token_id).float().mean()
    kept = (inputs[asked] == ids[asked]).float().mean()
    assert abs(share - 0.15) < 0.02 and abs(masked - 0.8) < 0.04 and 0.07 < kept < 0.16  # 10 % kept, plus random hits of itself
    assert torch.equal(inputs[~asked], ids[~asked])
    # A batch of short lines that draws no token still has one to predict (else the loss is NaN).
    short = torch.tensor(tokenizer(["rose"] * 4, padding=True)["input_ids"])
    _, labels = mask_tokens(short, tokenizer, 1e-9, torch.Generator().manual_seed(0))
    assert int((labels != -100).sum()) == 1


def test_pretrain_refuses_bad_input_in_one_line(tmp_path, flowers_h5):
    assert_one_line_error(run("ganbert", "pretrain", tmp_path / "b", *TINY), "give exactly one of --data FILE.h5 or --text FILE")
    assert_one_line_error(run("ganbert", "pretrain", tmp_path / "b", "--text", tmp_path / "none.txt", *TINY), "does not exist")
    (tmp_path / "one.txt").write_text("just one line\n")
    assert_one_line_error(run("ganbert", "pretrain", tmp_path / "b", "--text", tmp_path / "one.txt", *TINY), "got 1")
    odd = tuple(31 if previous == "--hidden" else value for previous, value in zip(("",) + TINY, TINY))
    assert_one_line_error(run("ganbert", "pretrain", tmp_path / "b", "--data", flowers_h5, *odd), "must be a multiple of the heads")
    (tmp_path / "taken").mkdir()
    assert_one_line_error(run("ganbert", "pretrain", tmp_path / "taken", "--data", flowers_h5, *TINY), "already exists")
    assert_one_line_error(run("ganbert", "pretrain", tmp_path / "taken", "--data", flowers_h5, "--resume", *TINY), "not a BERT pretrained")
