"""`t2i train` through the CLI: a config file, flags over it, resume, bad input."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from t2i_cli.checkpoint import read_checkpoint
from t2i_cli.cli import app
from test_cli import assert_one_line_error

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.slow
def test_train_with_config_file_then_resume(tmp_path, flowers_h5):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"model": {"ngf": 8, "ndf": 8}, "train": {"batch_size": 4, "epochs": 5, "lr": 1e-3}}))
    out = tmp_path / "run"
    result = run("train", "--data", flowers_h5, "--out", out, "--config", config, "--epochs", 1, "--no-int", "-q", "--device", "cpu")
    assert result.exit_code == 0, result.output
    info = read_checkpoint(out)
    assert info.model.ngf == 8 and info.train.lr == 1e-3 and info.train.epochs == 1 and not info.train.interpolate
    result = run("train", "--resume", out, "--epochs", 2, "-q")
    assert result.exit_code == 0, result.output
    assert read_checkpoint(out).epoch == 2 and "trained 2 epochs" in result.output


def test_train_bad_inputs_are_one_line(tmp_path, flowers_h5):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"train": {"learning_rate": 1}}))
    assert_one_line_error(run("train", "--data", flowers_h5, "--out", tmp_path / "r", "--config", bad), "unknown TrainConfig keys: learning_rate")
    bad.write_text("[1, 2")
    assert_one_line_error(run("train", "--data", flowers_h5, "--out", tmp_path / "r", "--config", bad), "cannot read config file")
    assert_one_line_error(run("train", "--out", tmp_path / "r"), "no data file")
    assert_one_line_error(run("train", "--data", flowers_h5), "pass --out")
    assert_one_line_error(run("train", "--data", flowers_h5, "--out", tmp_path / "r", "--type", "dcgan"), "the GAN type must be one of gan, wgan, hinge, got 'dcgan' (--type)")
    assert_one_line_error(run("train", "--data", flowers_h5, "--out", tmp_path / "r", "--batch-size", 64), "fewer than one batch")
    assert_one_line_error(run("train", "--data", tmp_path / "none.h5", "--out", tmp_path / "r"), "does not exist")
    assert_one_line_error(run("train", "--resume", tmp_path / "nothing"), "does not exist")
    assert_one_line_error(run("train", "--data", flowers_h5, "--out", tmp_path / "r", "--split", "valid", "--batch-size", 2), "one class only")
    # Types and sizes are checked when the config is read, before anything is built.
    for section, value, message in (
        ("model", {"ngf": "sixty"}, 'ngf must be int, got "sixty"'),
        ("model", {"ngf": True}, "ngf must be int, got true"),
        ("train", {"lr": [1]}, "lr must be int or float, got [1]"),
        ("model", {"image_size": 65536}, "image size must be a power of two from 16 to 512, got 65536"),
        ("model", [1], '"model" must be a JSON object of settings, got [1]'),
    ):
        bad.write_text(json.dumps({section: value}))
        assert_one_line_error(run("train", "--data", flowers_h5, "--out", tmp_path / "r", "--config", bad), message)
    assert_one_line_error(run("train", "--data", flowers_h5, "--out", tmp_path / "r", "--image-size", 4096),
                          "image size must be a power of two from 16 to 512, got 4096 (--image-size)")


@pytest.mark.slow
def test_train_dfgan_takes_its_recipe_and_flags_override_it(tmp_path, flowers_h5):
    out = tmp_path / "run"
    result = run(
        "train", "--data", flowers_h5, "--out", out, "--arch", "dfgan", "--diffaug", "translation,cutout", "--ngf", 4, "--ndf", 4,
        "--batch-size", 4, "--epochs", 1, "--lr-d", 3e-4, "--gp-every", 2, "-q", "--device", "cpu",
    )
    assert result.exit_code == 0, result.output
    info = read_checkpoint(out)
    assert info.model.arch == "dfgan" and info.model.ngf == 4
    assert (info.train.gan_type, info.train.lr, info.train.lr_d, info.train.beta1, info.train.beta2) == ("hinge", 1e-4, 3e-4, 0.0, 0.9)
    assert info.train.diffaug == "translation,cutout" and info.train.gp_every == 2 and not info.train.interpolate
    result = run("train", "--resume", out, "--epochs", 2, "-q")
    assert result.exit_code == 0, result.output
    assert read_checkpoint(out).epoch == 2
    exported = tmp_path / "exported"
    assert run("export", out, exported).exit_code == 0
    generated = run("generate", "pink petals", "-c", exported, "-n", 2, "--out", tmp_path / "pink.png")
    assert generated.exit_code == 0, generated.output


def test_a_corrupt_image_in_the_data_file_is_named(tmp_path, flowers_h5):
    import h5py

    data = tmp_path / "corrupt.h5"
    data.write_bytes(flowers_h5.read_bytes())
    with h5py.File(data, "r+") as f:
        name = sorted(f["train"])[2]
        del f["train"][name]["img"]
        f["train"][name].create_dataset("img", data=np.frombuffer(b"not a jpeg at all", dtype=np.uint8))
    assert_one_line_error(run("train", "--data", data, "--out", tmp_path / "r", "--epochs", 1, "-q"),
                          f"{data}: train/{name} does not decode: not an image format PIL can read")


def test_train_dfgan_bad_inputs_are_one_line(tmp_path, flowers_h5):
    common = ("train", "--data", flowers_h5, "--out", tmp_path / "r")
    assert_one_line_error(run(*common, "--arch", "stylegan"), "architecture must be one of dcgan, dfgan")
    assert_one_line_error(run(*common, "--diffaug", "color"), "unknown DiffAugment policy 'color'")
    assert_one_line_error(run(*common, "--arch", "dfgan", "--type", "vanilla_gan"), "it cannot be unconditional")
    assert_one_line_error(run(*common, "--arch", "dfgan", "--unconditional"), "it cannot be unconditional (--unconditional)")
    assert_one_line_error(run(*common, "--type", "hinge", "--ma-gp", -1), "ma_gp must be >= 0")
    assert_one_line_error(run(*common, "--match-coef", -1), "match_coef must be >= 0")


def test_hinge_refuses_the_terms_it_would_ignore(tmp_path, flowers_h5):
    common = ("train", "--data", flowers_h5, "--out", tmp_path / "r", "--type", "hinge")
    assert_one_line_error(run(*common, "--l1-coef", 1), "the hinge type does not use l1_coef")
    assert_one_line_error(run(*common, "--gp", 10), "does not use gradient_penalty")
    assert_one_line_error(run(*common, "--ca"), "no KL term for conditioning augmentation")
    assert_one_line_error(run("train", "--data", flowers_h5, "--out", tmp_path / "r", "--arch", "dfgan", "--mbd"),
                          "minibatch_discrimination is a setting of the dcgan architecture, not of dfgan: drop it (--mbd)")


def test_configs_layer_recipe_then_file_then_flags_and_one_function_checks_a_run():
    from t2i_cli.config import layered_configs, run_model, validate_run
    from t2i_cli.errors import T2IError

    file_config = {"model": {"arch": "dfgan", "ngf": 8}, "train": {"lr": 3e-4, "batch_size": 16}}
    model, train = layered_configs(file_config, {"lr": 5e-5}, {"ndf": 12})
    assert (model.arch, model.ngf, model.ndf) == ("dfgan", 8, 12)  # recipe's 32 replaced by the file, then by a flag
    assert (train.gan_type, train.lr, train.lr_d, train.batch_size) == ("hinge", 5e-5, 4e-4, 16)
    built = run_model(model, train, embedding_dim=32)
    assert (built.d_norm, built.embedding_dim, built.conditional) == ("batch", 32, True)  # DF-GAN's D has no norm to change
    validate_run(model, train)
    model, train = layered_configs({"train": {"gan_type": "wgan", "gradient_penalty": 10.0}}, {}, {})
    assert run_model(model, train).d_norm == "layer"  # dcgan's D: a per-sample penalty needs per-sample norms
    model, train = layered_configs({"train": {"gan_type": "hinge"}, "model": {"conditioning_augmentation": True}}, {}, {})
    with pytest.raises(T2IError, match="the hinge type has no KL term"):
        validate_run(model, train)
    model, train = layered_configs({"gan_type": "vanilla_gan"}, {}, {})  # flat train keys
    assert run_model(model, train).conditional is False


def test_the_old_vanilla_types_are_a_loss_with_an_unconditional_model(tmp_path, flowers_h5, tiny_run):
    """--type vanilla_gan (scripts, config files and run folders of before the split) reads as
    --type gan --unconditional; conditioning is the model's alone."""
    import json
    import shutil

    from t2i_cli.checkpoint import read_checkpoint
    from t2i_cli.config import TrainConfig
    from t2i_cli.errors import T2IError

    common = ("train", "--data", flowers_h5, "--epochs", 1, "--batch-size", 4, "--ngf", 8, "--ndf", 8, "-q")
    assert run(*common, "--out", tmp_path / "old", "--type", "vanilla_wgan").exit_code == 0
    assert run(*common, "--out", tmp_path / "new", "--type", "wgan", "--unconditional").exit_code == 0
    old, new = read_checkpoint(tmp_path / "old"), read_checkpoint(tmp_path / "new")
    assert old.train.gan_type == new.train.gan_type == "wgan" and old.model.conditional is new.model.conditional is False
    assert old.model == new.model
    # A checkpoint written before the split: its train section says vanilla_gan.
    folder = tmp_path / "before"
    shutil.copytree(read_checkpoint(tiny_run).path, folder)
    config = json.loads((folder / "config.json").read_text())
    config["train"]["gan_type"], config["model"]["conditional"] = "vanilla_gan", False
    (folder / "config.json").write_text(json.dumps(config))
    info = read_checkpoint(folder)
    assert info.train.gan_type == "gan" and info.model.conditional is False
    with pytest.raises(T2IError, match="now the gan type with an unconditional model"):
        TrainConfig(data="x.h5", gan_type="vanilla_gan").validate()
