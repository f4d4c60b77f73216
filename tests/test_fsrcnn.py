"""The LR-space network (FSRCNN) beside SRCNN: sizes, augmentation, fine-tuning across scales,
old SRCNN files, method choice, tiling, bad weights files and the CLI."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from conftest import OXFORD_MINI
import srcnn.upscale as upscale_module
from srcnn import SRError, Upscaler, load_model
from srcnn.color import rgb_to_ycbcr, ycbcr_to_rgb
from srcnn.data import AUGMENT_SIZES, PatchSampler, resized_copies
from srcnn.fsrcnn import FSRCNN, PRESETS, FSRCNNConfig, bicubic_enlarge
from srcnn.images import bicubic
from srcnn.model import SRCNN, SRConfig
from srcnn.tiling import run_tiled
from srcnn.train import start_from, train_network
from srcnn.upscale import save_weights
from t2i_cli.cli import app
from test_cli import assert_one_line_error

runner = CliRunner()
FIXTURE_IMAGES = sorted((OXFORD_MINI / "jpg").glob("*.jpg"))
SHIPPED = Path(__file__).resolve().parent.parent / "weights"


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def busy(model: torch.nn.Module) -> torch.nn.Module:
    """A network whose output layer changes the image (fresh ones start as "bicubic + ~0")."""
    with torch.no_grad():
        model.output_layer().weight.normal_(0, 0.05)
    return model.eval()


@pytest.fixture(scope="module")
def trained_fsrcnn_x2(tmp_path_factory):
    out = tmp_path_factory.mktemp("fsrcnn") / "fsrcnn_x2.safetensors"
    report = train_network(
        FIXTURE_IMAGES[:12], FIXTURE_IMAGES[12:], out, config=FSRCNNConfig(scale=2, d=12, s=4, m=1),
        steps=40, batch_size=8, patch=24, lr=1e-3, schedule="cosine", sizes=AUGMENT_SIZES, valid_every=20, seed=0,
    )
    return out, report


@pytest.mark.parametrize("output", ["subpixel", "deconv"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_output_is_exactly_scale_times_the_input(scale, output):
    for mode, channels in (("y", 1), ("rgb", 3)):
        model = FSRCNN(FSRCNNConfig(scale=scale, d=8, s=4, m=2, mode=mode, output=output))
        assert model(torch.rand(2, channels, 17, 30)).shape == (2, channels, 17 * scale, 30 * scale)


def test_a_fresh_residual_network_starts_as_bicubic():
    """The output layer starts at std 1e-3 (the paper's): a fresh network is bicubic plus a small
    fraction of what a trained-size output layer adds."""
    torch.manual_seed(0)
    low = torch.rand(4, 1, 20, 20)
    bicubic_up = torch.nn.functional.interpolate(low, scale_factor=3, mode="bicubic", align_corners=False)
    with torch.no_grad():
        fresh = (FSRCNN(FSRCNNConfig(scale=3)).eval()(low) - bicubic_up).abs().mean()
        changed = (busy(FSRCNN(FSRCNNConfig(scale=3)))(low) - bicubic_up).abs().mean()
    assert fresh < 0.03 and changed > 10 * fresh


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_enlargement_by_convolution_equals_pytorchs_interpolate(scale):
    images = torch.rand(2, 3, 13, 22)
    reference = torch.nn.functional.interpolate(images, scale_factor=scale, mode="bicubic", align_corners=False)
    assert (bicubic_enlarge(images, scale) - reference).abs().max() < 1e-5


def test_presets_are_the_papers_sizes():
    assert PRESETS == {"fsrcnn": (56, 12, 4), "fsrcnn-s": (32, 5, 1)}
    result = run("sr", "train", "--help")
    assert result.exit_code == 0 and "56-12-4" in result.output and "32-5-1" in result.output
    model = FSRCNN(FSRCNNConfig(d=32, s=5, m=1, output="deconv"))
    assert [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)] == [32, 5, 5, 32]


# --- training data -----------------------------------------------------------------------------------
def test_scale_augmentation_adds_each_image_at_smaller_sizes():
    image = Image.open(FIXTURE_IMAGES[0]).convert("RGB").resize((100, 80))
    assert [c.size for c in resized_copies(image, AUGMENT_SIZES)] == [(100, 80), (90, 72), (80, 64), (70, 56), (60, 48)]
    plain = PatchSampler(FIXTURE_IMAGES[:3], scale=2, patch=16, mode="y")
    augmented = PatchSampler(FIXTURE_IMAGES[:3], scale=2, patch=16, mode="y", sizes=AUGMENT_SIZES)
    assert len(plain.pairs) == 3 and len(augmented.pairs) == 15
    with pytest.raises(SRError, match="sizes must lie in"):
        PatchSampler(FIXTURE_IMAGES[:1], scale=2, patch=16, mode="y", sizes=(1.0, 1.5))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_low_resolution_patches_line_up_with_their_targets(scale, tmp_path):
    """Each input patch is the bicubic reduction of its target patch (up to the patch's edge),
    through flips and turns: a target cut one high-resolution pixel off would differ by more."""
    path = tmp_path / "smooth.png"
    bicubic(Image.open(FIXTURE_IMAGES[0]).convert("RGB").resize((24, 24)), (192, 192)).save(path)
    sampler = PatchSampler([path], scale=scale, patch=48, mode="rgb", low_resolution_input=True)
    inputs, targets = sampler.batch(16)
    side = 48 // scale
    assert inputs.shape == (16, 3, side, side) and targets.shape == (16, 3, side * scale, side * scale)
    reduced = torch.nn.functional.interpolate(targets, scale_factor=1 / scale, mode="bicubic", antialias=True, align_corners=False)
    inner = slice(2, side - 2)
    aligned = (reduced - inputs)[..., inner, inner].abs().mean()
    assert aligned < 0.01
    off_by_one = torch.nn.functional.interpolate(torch.roll(targets, 1, dims=-1), scale_factor=1 / scale, mode="bicubic",
                                                 antialias=True, align_corners=False)
    assert (off_by_one - inputs)[..., inner, inner].abs().mean() > 1.5 * aligned


# --- training: fine-tuning across scales ----------------------------------------------------------------
@pytest.mark.slow
def test_short_training_saves_the_best_and_x3_starts_from_x2(trained_fsrcnn_x2, tmp_path):
    out, report = trained_fsrcnn_x2
    assert report.best_valid_psnr == max(r["valid_psnr"] for r in report.history)
    assert report.best_valid_psnr > report.bicubic_valid_psnr - 0.5
    x2 = load_model(out, scale=2)
    assert isinstance(x2, FSRCNN) and x2.config == FSRCNNConfig(scale=2, d=12, s=4, m=1)
    x3 = FSRCNN(FSRCNNConfig(scale=3, d=12, s=4, m=1))
    fresh_output = x3.output_layer().weight.clone()
    start_from(x3, out)
    for (name, a), b in zip(x3.body.state_dict().items(), x2.body.state_dict().values()):
        assert torch.equal(a, b), name
    assert torch.equal(x3.output_layer().weight, fresh_output)  # another shape at x3: not copied
    with pytest.raises(SRError, match="in more than the scale"):
        start_from(FSRCNN(FSRCNNConfig(scale=3, d=12, s=4, m=2)), out)


@pytest.mark.parametrize("network", [
    lambda scale: FSRCNN(FSRCNNConfig(scale=scale, d=8, s=4, m=1, output="deconv")),
    lambda scale: SRCNN(SRConfig(scale=scale, widths=(8, 4))),
])
def test_start_from_copies_every_layer_but_the_output_one_even_where_shapes_agree(network, tmp_path):
    """The transposed convolution and SRCNN's last layer have the same shape at every scale: only
    the names keep them from being copied."""
    torch.manual_seed(0)
    source = network(2)
    with torch.no_grad():
        for parameter in source.parameters():
            parameter.add_(0.5)  # every value differs from a fresh network's
    save_weights(source, tmp_path / "x2.safetensors")
    target = network(4)
    start_from(target, tmp_path / "x2.safetensors")
    not_copied = {name for name, value in target.state_dict().items() if not torch.equal(value, source.state_dict()[name])}
    output_layer = target.output_layer()
    output_names = {f"{name}.{p}" for name, m in target.named_modules() if m is output_layer for p, _ in m.named_parameters()}
    assert not_copied == output_names and len(output_names) == 2


# --- weights files -------------------------------------------------------------------------------------
def test_shipped_srcnn_files_written_before_fsrcnn_still_load():
    for scale in (2, 3, 4):
        model = load_model(SHIPPED / f"srcnn_x{scale}.safetensors", scale=scale)
        assert isinstance(model, SRCNN) and model.config.arch == "srcnn"


def test_auto_prefers_fsrcnn_then_srcnn(tmp_path, caplog):
    save_weights(SRCNN(SRConfig(scale=2, widths=(8, 4))), tmp_path / "srcnn_x2.safetensors")
    assert Upscaler.load(2, weights_dir=tmp_path).method == "srcnn"
    save_weights(FSRCNN(FSRCNNConfig(scale=2, d=8, s=4, m=1)), tmp_path / "fsrcnn_x2.safetensors")
    auto = Upscaler.load(2, weights_dir=tmp_path)
    assert auto.method == "fsrcnn" and auto.describe() == "FSRCNN x2 (fsrcnn_x2.safetensors)"
    assert Upscaler.load(2, weights_dir=tmp_path, method="srcnn").method == "srcnn"
    with caplog.at_level(logging.WARNING):
        assert Upscaler.load(3, weights_dir=tmp_path, method="fsrcnn").method == "bicubic"
    assert "no FSRCNN weights for x3" in caplog.text
    with pytest.raises(SRError, match="holds FSRCNN weights, not srcnn"):
        Upscaler.load(2, weights=tmp_path / "fsrcnn_x2.safetensors", method="srcnn")


def test_bad_weights_files_are_one_line_errors(tmp_path):
    image = tmp_path / "in.png"
    Image.open(FIXTURE_IMAGES[0]).save(image)
    truncated = tmp_path / "truncated.safetensors"
    save_weights(FSRCNN(FSRCNNConfig(scale=2, d=8, s=4, m=1)), truncated)
    truncated.write_bytes(truncated.read_bytes()[:-100])
    unknown = tmp_path / "unknown.safetensors"
    save_weights(FSRCNN(FSRCNNConfig(scale=2, d=8, s=4, m=1)), unknown)
    from safetensors.torch import load_file, save_file

    save_file(load_file(str(unknown)), str(unknown), metadata={"kind": "srcnn", "config": json.dumps({"arch": "edsr", "scale": 2})})
    mismatched = tmp_path / "mismatched.safetensors"
    save_file(load_file(str(unknown)), str(mismatched),
              metadata={"kind": "srcnn", "config": FSRCNNConfig(scale=2, d=9, s=4, m=1).to_json()})
    for path, message in ((truncated, "are unreadable"), (unknown, "is not one this version reads"),
                          (mismatched, "do not match their own config"), (tmp_path / "none.safetensors", "do not exist")):
        assert_one_line_error(run("upscale", image, "--scale", 2, "--sr-weights", path, "--out", tmp_path / "o.png"), message)
        assert not (tmp_path / "o.png").exists()


# --- upscaling: tiles and the whole chain ------------------------------------------------------------
@pytest.mark.parametrize("output", ["subpixel", "deconv"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_tiled_fsrcnn_equals_the_whole_image_pass(scale, output):
    torch.manual_seed(scale)
    model = busy(FSRCNN(FSRCNNConfig(scale=scale, d=8, s=4, m=2, output=output)))
    images = torch.rand(1, 1, 45, 61)
    with torch.no_grad():
        whole = model(images)
        tiled = run_tiled(model, images, tile=16, halo=model.receptive_radius, out_scale=scale)
        assert tiled.shape == whole.shape and (tiled - whole).abs().max() < 1e-5
        assert (run_tiled(model, images, tile=16, halo=1, out_scale=scale) - whole).abs().max() > 1e-3


def test_the_upscalers_rgb_shortcut_equals_converting_to_ycbcr_and_back():
    """The upscaler adds FSRCNN's detail to the RGB bicubic enlargement instead of enlarging Y, Cb
    and Cr and converting back: the same image, as colour conversion is affine."""
    torch.manual_seed(1)
    upscaler = Upscaler(4, busy(FSRCNN(FSRCNNConfig(scale=4, d=8, s=4, m=1))))
    images = torch.rand(2, 3, 19, 26)
    ycbcr = rgb_to_ycbcr(images)
    with torch.no_grad():
        luma = upscaler.model(ycbcr[:, :1])
    chroma = torch.nn.functional.interpolate(ycbcr[:, 1:], scale_factor=4, mode="bicubic", align_corners=False)
    reference = ycbcr_to_rgb(torch.cat([luma, chroma], dim=1)).clamp(0, 1)
    assert (upscaler._restore(images) - reference).abs().max() < 1e-5
    assert (luma - torch.nn.functional.interpolate(ycbcr[:, :1], scale_factor=4, mode="bicubic")).abs().max() > 0.05


def test_upscaler_with_fsrcnn_tiles_large_images_with_the_same_pixels(monkeypatch):
    """Tiles change only the float summation order (within 1e-5), which can move a value that lies
    on a rounding boundary by one grey level: a seam would move whole rows."""
    torch.manual_seed(0)
    upscaler = Upscaler(3, busy(FSRCNN(FSRCNNConfig(scale=3, d=8, s=4, m=2))))
    image = Image.open(FIXTURE_IMAGES[0]).convert("RGB").resize((90, 70))
    pixels = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)[None]
    whole_float = upscaler._restore(pixels.float() / 255)
    tiled_float = run_tiled(lambda tile: upscaler._restore(tile.float() / 255), pixels, tile=32,
                            halo=upscaler.model.receptive_radius, out_scale=3)
    assert (tiled_float - whole_float).abs().max() < 1e-5
    rgba = image.convert("RGBA")
    whole, whole_rgba = upscaler.upscale_images([image, rgba])
    monkeypatch.setattr(upscale_module, "TILE", 32)
    tiled, tiled_rgba = upscaler.upscale_images([image, rgba])
    assert tiled.size == (270, 210) and tiled_rgba.mode == "RGBA"
    for a, b in ((tiled, whole), (tiled_rgba, whole_rgba)):
        difference = np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int))
        assert difference.max() <= 1 and (difference > 0).mean() < 1e-4
    assert upscaler.upscale_images([image.convert("L")])[0].mode == "L"


def test_sr_train_and_eval_cli_side_by_side(tmp_path, trained_fsrcnn_x2):
    out = tmp_path / "fsrcnn_s_x3.safetensors"
    args = ("--data", OXFORD_MINI / "jpg", "--steps", 4, "--valid-every", 2, "--batch-size", 4, "--valid-fraction", 0.2, "-q")
    result = run("sr", "train", "--scale", 3, "--arch", "fsrcnn-s", "--patch", 24, "--scale-augment", "--schedule", "cosine", "--out", out, *args)
    assert result.exit_code == 0, result.output
    assert load_model(out, scale=3).config == FSRCNNConfig(scale=3, d=32, s=5, m=1)
    tuned = tmp_path / "tuned_x3.safetensors"
    result = run("sr", "train", "--scale", 3, "--arch", "fsrcnn", "--fsrcnn-size", "12-4-1", "--init", trained_fsrcnn_x2[0], "--out", tuned, *args)
    assert result.exit_code == 0, result.output
    srcnn_x2 = tmp_path / "srcnn_x2.safetensors"
    save_weights(SRCNN(SRConfig(scale=2, widths=(8, 4))), srcnn_x2)
    result = run("sr", "eval", FIXTURE_IMAGES[12], FIXTURE_IMAGES[13], "--scale", 2, "--sr-weights", srcnn_x2, "--sr-weights", trained_fsrcnn_x2[0], "--json")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)["scores"]
    assert [s["method"] for s in scores] == ["bicubic", "SRCNN x2 (srcnn_x2.safetensors)", "FSRCNN x2 (fsrcnn_x2.safetensors)"]
    assert scores[0]["gain_db"] == 0 and abs(scores[1]["gain_db"]) < 0.1  # an untrained residual SRCNN is bicubic + ~0
    fresh = tmp_path / "never-written.safetensors"
    assert_one_line_error(run("sr", "train", "--scale", 3, "--arch", "fsrcnn-s", "--out", out, *args), "already exists, and replacing it was not asked for (--force)")
    assert_one_line_error(run("sr", "train", "--scale", 2, "--arch", "edsr", "--out", fresh, *args), "the architecture must be srcnn, fsrcnn or fsrcnn-s, got 'edsr' (--arch)")
    assert_one_line_error(run("sr", "train", "--scale", 2, "--arch", "fsrcnn", "--fsrcnn-size", "56-12", "--out", fresh, *args), "--fsrcnn-size must look like 56-12-4")
    assert_one_line_error(run("sr", "train", "--scale", 2, "--arch", "fsrcnn", "--output", "bilinear", "--out", fresh, *args), "subpixel or deconv")
    assert_one_line_error(run("sr", "train", "--scale", 2, "--arch", "fsrcnn", "--schedule", "step", "--out", fresh, *args), "constant or cosine")
    assert_one_line_error(run("sr", "train", "--scale", 3, "--arch", "fsrcnn", "--init", srcnn_x2, "--out", fresh, *args), "in more than the scale")
    assert_one_line_error(run("sr", "train", "--scale", 2, "--arch", "fsrcnn", "--kernels", "9-1-5", "--out", fresh, *args), "kernel sizes and widths are SRCNN's, not fsrcnn's (--arch / --kernels / --widths)")
    assert_one_line_error(run("sr", "train", "--scale", 2, "--output", "deconv", "--out", fresh, *args), "an FSRCNN size and output layer are for fsrcnn or fsrcnn-s, not srcnn (--arch / --fsrcnn-size / --output)")
    assert_one_line_error(run("sr", "eval", FIXTURE_IMAGES[12], "--scale", 2, "--sr-weights", tmp_path / "none.safetensors"), "do not exist")


def test_a_network_config_takes_the_other_architectures_defaults_spelled_out():
    """Scripts that spell out defaults keep working: only a real conflict is refused."""
    from srcnn.errors import SRError
    from srcnn.networks import network_config

    assert network_config("fsrcnn", scale=2, kernels=(9, 5, 5), widths=(64, 32)).arch == "fsrcnn"
    assert network_config("srcnn", scale=2, output="subpixel").kernels == (9, 5, 5)
    assert (network_config("fsrcnn-s", scale=3).d, network_config("fsrcnn-s", scale=3).s) == (32, 5)
    with pytest.raises(SRError, match="kernel sizes and widths are SRCNN's"):
        network_config("fsrcnn", scale=2, kernels=(9, 1, 5))
