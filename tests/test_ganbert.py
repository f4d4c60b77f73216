"""GAN-BERT: losses, the separated G/D updates, training, checkpoints, the CLI and the encoder spec.

Models are a tiny random BertConfig (tests/conftest.py: tiny_bert_dir); nothing is downloaded.
"""

import json
import shutil

import pytest
import torch
from typer.testing import CliRunner

from ganbert.data import TextExample, choose_labelled, read_tsv
from ganbert.errors import GanBertError
from ganbert.losses import discriminator_unsupervised_loss, generator_loss, supervised_loss
from ganbert.metrics import classification_metrics
from ganbert.model import GanBertConfig, GanBertModel
from ganbert.train import replication_factor, train_ganbert
from t2i_cli.cli import app
from test_cli import assert_one_line_error

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


COLOURS = {"red": "roses", "yellow": "sunflowers", "blue": "irises"}


def toy_examples(labelled_per_class=3, unlabelled_per_class=10):
    """Sentences whose class is given away by a colour word: learnable in a few steps."""
    examples = []
    for colour, label in COLOURS.items():
        for i in range(labelled_per_class):
            examples.append(TextExample(f"the petals are {colour} number {i}", label))
        for i in range(unlabelled_per_class):
            examples.append(TextExample(f"a flower with {colour} petals {i}"))
    return examples


def tiny_config(**overrides):
    settings = dict(steps=30, batch_size=8, learning_rate=3e-3, noise_dim=16, seed=0)
    settings.update(overrides)
    return GanBertConfig(**settings)


# --- losses ------------------------------------------------------------------------------------
def test_supervised_loss_reads_labelled_rows_only():
    logits = torch.randn(4, 4)
    labels = torch.tensor([0, 2, 0, 1])
    labelled = torch.tensor([True, True, False, False])
    expected = torch.nn.functional.cross_entropy(logits[:2, :3], labels[:2])
    assert torch.allclose(supervised_loss(logits, labels, labelled), expected)
    changed = logits.clone()
    changed[2:] = 100.0  # unlabelled rows and the fake column of labelled rows do not count
    changed[:2, 3] = -50.0
    assert torch.allclose(supervised_loss(changed, labels, labelled), expected)
    none = torch.zeros(4, dtype=torch.bool)
    assert supervised_loss(logits.requires_grad_(), labels, none).item() == 0.0


def test_unsupervised_losses_reward_the_right_side():
    sure_real = torch.tensor([[5.0, 5.0, -10.0]])  # mass on real classes
    sure_fake = torch.tensor([[-10.0, -10.0, 5.0]])
    assert discriminator_unsupervised_loss(sure_real, sure_fake) < 0.01
    assert discriminator_unsupervised_loss(sure_fake, sure_real) > 10
    features = torch.randn(6, 8)
    adversarial_fooled, matching_same = generator_loss(sure_real.expand(6, 3), features, features.clone())
    adversarial_caught, matching_far = generator_loss(sure_fake.expand(6, 3), features, features + 1)
    assert adversarial_fooled < 0.01 < adversarial_caught
    assert matching_same == 0 and torch.isclose(matching_far, torch.tensor(1.0))


def test_metrics_and_replication():
    assert classification_metrics([0, 0, 1, 1], [0, 0, 1, 1]) == {"accuracy": 1.0, "macro_f1": 1.0, "count": 4}
    metrics = classification_metrics([0, 0, 1, 1], [0, 0, 0, 2])
    assert metrics["accuracy"] == 0.5
    assert metrics["macro_f1"] == pytest.approx((0.8 + 0 + 0) / 3)  # class 2 predicted, never true
    assert replication_factor(10, 1000) == 6 and replication_factor(500, 1000) == 1


def test_choose_labelled_spreads_over_classes():
    groups = {c: [f"{c}{i}" for i in range(20)] for c in "abcde"}
    chosen = choose_labelled(groups, 0.05, seed=1)  # 5 of 100 items: one per class
    assert len(chosen) == 5 and {name[0] for name in chosen} == set("abcde")
    assert chosen == choose_labelled(groups, 0.05, seed=1) != choose_labelled(groups, 0.05, seed=2)


# --- the two updates -----------------------------------------------------------------------------
def test_generator_step_leaves_the_discriminator_and_backbone_untouched(tiny_bert_dir):
    model = train_ganbert(toy_examples(), tiny_config(steps=1), backbone_dir=tiny_bert_dir)
    model.backbone.train(), model.discriminator.train()
    batch = model.collate(model.tokenize(["red petals", "blue petals", "yellow"]))
    labels = torch.tensor([0, -1, 2])
    g_optimizer = torch.optim.AdamW(model.generator.parameters(), lr=1e-2)
    d_optimizer = torch.optim.AdamW(list(model.backbone.parameters()) + list(model.discriminator.parameters()), lr=1e-2)
    real_features, fake, _ = model.discriminator_step(batch, labels, d_optimizer, model.generator.sample_noise(3))

    shared = list(model.backbone.parameters()) + list(model.discriminator.parameters())
    values_before = [p.detach().clone() for p in shared]
    grads_before = [None if p.grad is None else p.grad.clone() for p in shared]
    generator_before = [p.detach().clone() for p in model.generator.parameters()]
    model.generator_step(real_features, fake, g_optimizer)

    assert all(torch.equal(a, p) for a, p in zip(values_before, shared))
    assert all((g is None and p.grad is None) or torch.equal(g, p.grad) for g, p in zip(grads_before, shared))
    assert any(not torch.equal(a, p) for a, p in zip(generator_before, model.generator.parameters()))


@pytest.mark.slow
def test_training_lowers_the_supervised_loss_and_is_deterministic(tiny_bert_dir):
    history = []
    model = train_ganbert(
        toy_examples(), tiny_config(steps=60), backbone_dir=tiny_bert_dir,
        on_step=lambda step, stats: history.append(stats), log_every=10,
    )
    supervised = [stats["supervised"] for stats in history]
    assert len(history) == 6 and supervised[-1] < 0.5 * supervised[0]
    assert {"d_unsupervised", "g_loss", "feature_matching"} <= set(history[-1])
    # The same run with a learning curve: evaluating draws no random numbers, so the model is identical.
    curve = []
    again = train_ganbert(
        toy_examples(), tiny_config(steps=60), backbone_dir=tiny_bert_dir, evaluation=toy_examples(3, 0),
        evaluate_every=25, on_evaluate=lambda step, metrics: curve.append((step, metrics)),
    )
    for a, b in zip(model.discriminator.parameters(), again.discriminator.parameters()):
        assert torch.equal(a, b)
    assert model.evaluate(toy_examples(3, 0))["accuracy"] == 1.0
    assert [step for step, _ in curve] == [25, 50, 60] and curve[-1][1] == model.evaluate(toy_examples(3, 0))


def test_baseline_trains_without_a_generator(tiny_bert_dir):
    model = train_ganbert(toy_examples(), tiny_config(mode="baseline"), backbone_dir=tiny_bert_dir)
    assert model.generator is None and model.labels == sorted(COLOURS.values())


# --- bad input -----------------------------------------------------------------------------------
def test_tsv_reading_and_its_errors(tmp_path):
    good = tmp_path / "good.tsv"
    good.write_text("text\tlabel\nred petals\troses\n\nyellow petals\t\n")
    assert read_tsv(good) == [TextExample("red petals", "roses"), TextExample("yellow petals", None)]
    bad = tmp_path / "bad.tsv"
    bad.write_text("red petals\troses\nyellow petals\tsun\tflowers\n")
    with pytest.raises(GanBertError, match="line 2"):
        read_tsv(bad)


def test_empty_labelled_set_unseen_labels_and_non_bert_backbones(tmp_path, tiny_bert_dir):
    with pytest.raises(GanBertError, match="labelled set is empty"):
        train_ganbert(toy_examples(0, 3), tiny_config(), backbone_dir=tiny_bert_dir)
    model = train_ganbert(toy_examples(), tiny_config(steps=1), backbone_dir=tiny_bert_dir)
    # A label the classifier has no unit for is scored as the paper scores it: an error.
    metrics = model.evaluate([TextExample("white petals", "tulips"), TextExample("red petals", "tulips")])
    assert metrics["accuracy"] == 0 and metrics["macro_f1"] == 0 and metrics["outside_labels"] == 2
    with pytest.raises(GanBertError, match=r"3 label\(s\) of the labelled sentences are not in the label table: 'irises', 'roses'"):
        train_ganbert(toy_examples(), tiny_config(steps=1), backbone_dir=tiny_bert_dir, labels=["lilies"])
    gpt = tmp_path / "gpt"
    gpt.mkdir()
    (gpt / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(GanBertError, match="not a BERT-family encoder"):
        train_ganbert(toy_examples(), tiny_config(), backbone_dir=gpt)
    with pytest.raises(GanBertError, match="no config.json"):
        train_ganbert(toy_examples(), tiny_config(), backbone_dir=tmp_path)


# --- checkpoints, CLI and the encoder spec ---------------------------------------------------------
def test_checkpoint_round_trip_and_encoder_spec(tmp_path, tiny_bert_dir):
    from t2i_cli.text.encoder import load_text_encoder

    model = train_ganbert(toy_examples(), tiny_config(steps=5), backbone_dir=tiny_bert_dir)
    folder = model.save(tmp_path / "ckpt")
    loaded = GanBertModel.load(folder)
    texts = ["red petals", "a blue iris", "yellow"]
    assert loaded.predict(texts) == model.predict(texts) and loaded.labels == model.labels
    with pytest.raises(GanBertError, match="already exists"):
        model.save(folder)

    encoder = load_text_encoder(f"ganbert:{folder}", device="cpu")
    embeddings = encoder.encode(texts)
    assert embeddings.shape == (3, 32) and encoder.dim == 32
    assert torch.allclose(embeddings.norm(dim=1), torch.ones(3), atol=1e-5)
    assert encoder.identity != load_text_encoder(f"hf:{tiny_bert_dir}", device="cpu").identity
    assert encoder.identity == load_text_encoder(f"ganbert:{folder}", device="cpu").identity


@pytest.mark.slow
def test_ganbert_cli_train_eval_and_errors(tmp_path, tiny_bert_dir, flowers_h5):
    out = tmp_path / "gb"
    common = ("--backbone", tiny_bert_dir, "--steps", 4, "--batch-size", 8, "--device", "cpu", "--quiet")
    result = run("ganbert", "train", out, "--data", flowers_h5, "--labelled-fraction", 0.5, "--holdout", 0.3, *common)
    assert result.exit_code == 0, result.output
    assert "held-out sentences" in result.output and (out / "ganbert.json").is_file()
    recorded = json.loads((out / "ganbert.json").read_text())
    assert recorded["metadata"]["source"]["labelled_fraction"] == 0.5
    result = run("ganbert", "eval", out, "--data", flowers_h5, "--json", "--device", "cpu")
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["accuracy"] == recorded["metadata"]["evaluation"]["accuracy"]
    curved = tmp_path / "gb-curve"
    result = run("ganbert", "train", curved, "--data", flowers_h5, "--labelled-fraction", 0.5, "--holdout", 0.3, "--eval-every", 3, *common)
    assert result.exit_code == 0, result.output
    curve = json.loads((curved / "ganbert.json").read_text())["metadata"]["curve"]
    assert [point["step"] for point in curve] == [3, 4] and curve[-1]["accuracy"] == figures["accuracy"]

    # The valid split holds other classes: scored, every sentence an error, and said so.
    result = run("ganbert", "eval", out, "--data", flowers_h5, "--split", "valid", "--device", "cpu")
    assert result.exit_code == 0 and "accuracy 0.0000" in result.output and "outside the model's" in result.output
    # An evaluation set of classes no labelled sentence shows trains with them in the label set,
    # saves the model before it scores, and records the score beside it.
    train_tsv, eval_tsv = tmp_path / "train.tsv", tmp_path / "eval.tsv"
    train_tsv.write_text("red petals\troses\nwhite petals\tlilies\nyellow petals\t\n")
    eval_tsv.write_text("a red rose\troses\na blue iris\tirises\n")
    result = run("ganbert", "train", tmp_path / "few", "--tsv", train_tsv, "--eval-tsv", eval_tsv, *common)
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "few" / "ganbert.json").read_text())
    assert saved["labels"] == ["irises", "lilies", "roses"] and saved["metadata"]["evaluation"]["count"] == 2
    (tmp_path / "labels.txt").write_text("lilies\n")
    assert_one_line_error(run("ganbert", "train", tmp_path / "fixed", "--tsv", train_tsv, "--labels", tmp_path / "labels.txt", *common),
                          "not in the label table: 'roses' (--labels)")
    eval_tsv.write_text("a red rose\t\n")
    assert_one_line_error(run("ganbert", "train", tmp_path / "none", "--tsv", train_tsv, "--eval-tsv", eval_tsv, *common),
                          "the evaluation set has no labelled sentences")
    assert not (tmp_path / "fixed").exists() and not (tmp_path / "none").exists()
    tsv = tmp_path / "bad.tsv"
    tsv.write_text("red petals\troses\nno label column here\n")
    assert_one_line_error(run("ganbert", "train", tmp_path / "x", "--tsv", tsv, *common), "line 2")
    tsv.write_text("red petals\t\nblue petals\t\n")
    assert_one_line_error(run("ganbert", "train", tmp_path / "x", "--tsv", tsv, *common), "labelled set is empty")
    tsv.write_text("red petals\troses\nblue petals\t\n")
    assert_one_line_error(run("ganbert", "train", tmp_path / "x", "--tsv", tsv, "--backbone", tmp_path), "not a BERT model folder")
    assert_one_line_error(run("ganbert", "train", tmp_path / "x", "--tsv", tsv, "--eval-every", 2, *common), "--eval-every needs")
    assert_one_line_error(run("ganbert", "train", out, "--data", flowers_h5, *common), "already exists")
    assert_one_line_error(run("ganbert", "eval", tmp_path, "--data", flowers_h5), "not a GAN-BERT checkpoint")
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_a_ganbert_encoder_conditions_the_gan_and_is_recorded(tmp_path, tiny_bert_dir, flowers_h5):
    """Re-embed the data with a GAN-BERT backbone, train on it, generate with it; MiniLM is refused."""
    ckpt = train_ganbert(toy_examples(), tiny_config(steps=2), backbone_dir=tiny_bert_dir).save(tmp_path / "gb")
    data = tmp_path / "flowers.h5"
    shutil.copy(flowers_h5, data)
    assert run("data", "embed", data, "--encoder", f"ganbert:{ckpt}", "--quiet").exit_code == 0
    run_dir = tmp_path / "run"
    result = run("train", "--data", data, "--out", run_dir, "--epochs", 1, "--batch-size", 4, "--ngf", 8, "--ndf", 8, "--device", "cpu", "--quiet")
    assert result.exit_code == 0, result.output
    image = tmp_path / "out.png"
    result = run("generate", "red petals", "-c", run_dir, "--encoder", f"ganbert:{ckpt}", "--out", image)
    assert result.exit_code == 0 and image.is_file(), result.output
    assert_one_line_error(run("generate", "red petals", "-c", run_dir, "--encoder", "minilm", "--out", tmp_path / "other.png"), "encoder mismatch")


def test_the_comparison_runs_on_a_tiny_tsv_goes_on_from_its_results_and_tables_them(tmp_path, tiny_bert_dir):
    """t2i ganbert compare: baseline and GAN-BERT at each fraction and seed, figures kept after
    each run, a second call with the same settings trains nothing again."""
    train = tmp_path / "train.tsv"
    train.write_text("".join(f"{e.text}\t{e.label or ''}\n" for e in toy_examples(labelled_per_class=4, unlabelled_per_class=3)))
    held = tmp_path / "held.tsv"
    held.write_text("".join(f"one more {colour} flower\t{label}\n" for colour, label in COLOURS.items()))
    out = tmp_path / "compare.json"
    args = ("ganbert", "compare", out, "--tsv", train, "--eval-tsv", held, "--backbone", tiny_bert_dir, "--fractions", "0.5,1",
            "--seeds", "0,1", "--steps", 2, "--batch-size", 4, "-q")
    result = run(*args)
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert record["kind"] == "t2i-ganbert-comparison" and len(record["runs"]) == 2 * 2 * 2
    half = [r for r in record["runs"] if r["fraction"] == 0.5]
    assert {r["labelled"] for r in half} == {6} and {r["labelled"] for r in record["runs"] if r["fraction"] == 1} == {12}
    assert all(r["count"] == 3 and 0 <= r["accuracy"] <= 1 for r in record["runs"])
    assert "50%" in result.output and "100%" in result.output and "gain (points)" in result.output
    again = run(*args)  # every run is in the file: nothing is trained, the same table comes back
    table = again.output[again.output.index("accuracy on the held-out"):]
    assert again.exit_code == 0 and json.loads(out.read_text())["runs"] == record["runs"] and result.output.endswith(table)
    assert "baseline on" not in again.output  # no run trained
    assert_one_line_error(run(*args[:-5], "--steps", 3, "-q"), "holds a comparison with other settings")
    assert_one_line_error(run("ganbert", "compare", tmp_path / "x.json", "--tsv", train), "give --eval-tsv FILE with --tsv")
    assert_one_line_error(run("ganbert", "compare", tmp_path / "x.json", "--tsv", train, "--eval-tsv", held, "--fractions", "0.5,two"),
                          "--fractions takes comma-separated numbers")
    assert_one_line_error(run("ganbert", "compare", tmp_path / "x.json", "--tsv", train, "--eval-tsv", held, "--fractions", "1.5"),
                          "labelled fractions must lie in (0, 1]")


def test_a_comparison_or_training_refuses_a_backbone_pretrained_on_the_sentences_it_would_score(tmp_path, flowers_h5):
    """A backbone from ganbert pretrain --data left out one held-out choice; scoring on another
    would score it on captions it read."""
    from t2i_cli.data.ganbert_split import check_pretraining_unseen

    backbone = tmp_path / "bert"
    backbone.mkdir()
    (backbone / "pretraining.json").write_text(json.dumps({"kind": "ganbert-pretrained-bert",
                                                           "source": {"data": "flowers.h5", "holdout": 0.2, "split_seed": 0}}))
    check_pretraining_unseen(backbone, flowers_h5, 0.2)  # the same held-out images: fine
    assert_one_line_error(run("ganbert", "compare", tmp_path / "c.json", "--data", flowers_h5, "--backbone", backbone, "--holdout", 0.3),
                          "less another held-out set (0.2, split seed 0) than the one scored here (0.3, split seed 0): it read sentences it "
                          "would be scored on; score it on the held-out set it left out (--holdout)")
    # ganbert train scores on its own held-out set, which --split-seed chooses as well
    assert_one_line_error(run("ganbert", "train", tmp_path / "t", "--data", flowers_h5, "--backbone", backbone, "--split-seed", 1),
                          "than the one scored here (0.2, split seed 1): it read sentences it would be scored on")
    check_pretraining_unseen(backbone, tmp_path / "other.h5", 0.3)  # other data: nothing to check
