"""The SRCNN stage: model, metrics, training, the upscaler with its bicubic fallback, the CLI."""

import logging
import shutil
import time

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from conftest import OXFORD_MINI
import srcnn.upscale as upscale_module
from srcnn import SRCNN, SRConfig, SRError, Upscaler, load_model
from srcnn.color import rgb_to_ycbcr, ycbcr_to_rgb
from srcnn.metrics import psnr, ssim
from srcnn.tiling import run_tiled
from srcnn.train import train_network
from t2i_cli.cli import app
from test_cli import assert_one_line_error

runner = CliRunner()
FIXTURE_IMAGES = sorted((OXFORD_MINI / "jpg").glob("*.jpg"))


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def trained_x2(tmp_path_factory):
    out = tmp_path_factory.mktemp("sr") / "srcnn_x2.safetensors"
    report = train_network(
        FIXTURE_IMAGES[:12], FIXTURE_IMAGES[12:], out, config=SRConfig(scale=2, widths=(16, 8)),
        steps=60, batch_size=16, patch=21, lr=1e-3, valid_every=20, seed=0,
    )
    return out, report


@pytest.mark.parametrize("kernels", [(9, 5, 5), (9, 1, 5)])
def test_model_keeps_the_input_size(kernels):
    model = SRCNN(SRConfig(scale=3, kernels=kernels))
    assert model(torch.rand(2, 1, 30, 41)).shape == (2, 1, 30, 41)
    assert SRCNN(SRConfig(mode="rgb"))(torch.rand(1, 3, 20, 20)).shape == (1, 3, 20, 20)


def test_color_round_trip_and_bt601_luminance():
    rgb = torch.rand(2, 3, 8, 8)
    assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-5)
    white = rgb_to_ycbcr(torch.ones(1, 3, 1, 1))
    assert white[0, 0].item() == pytest.approx(235 / 255, abs=1e-4)


def test_psnr_and_ssim():
    a = torch.full((1, 16, 16), 0.5)
    assert psnr(a, a) == float("inf") and ssim(a[0], a[0].clone()) == pytest.approx(1.0)
    assert psnr(a, a + 0.1) == pytest.approx(20.0)
    b = a.clone()
    b[..., 0, :] = 0  # only the border differs: shaving it away makes the images equal
    assert psnr(b, a, border=1) == float("inf") and psnr(b, a) < 30
    noisy = (a[0] + torch.rand(16, 16) * 0.3).clamp(0, 1)
    assert ssim(noisy, a[0]) < 0.9
    with pytest.raises(SRError, match="at least 11x11"):
        ssim(a[0], a[0], border=3)


@pytest.mark.slow
def test_short_training_lowers_the_loss_and_saves_the_best(trained_x2):
    out, report = trained_x2
    assert report.history[-1]["train_mse"] < report.history[0]["train_mse"]
    assert report.best_valid_psnr == max(r["valid_psnr"] for r in report.history)
    model = load_model(out, scale=2)
    assert model.config.widths == (16, 8)


def test_upscaler_output_is_exactly_scale_times_and_keeps_modes(trained_x2):
    upscaler = Upscaler(2, load_model(trained_x2[0]))
    rgb = Image.open(FIXTURE_IMAGES[0]).convert("RGB").crop((0, 0, 63, 50))
    gray, rgba = rgb.convert("L"), rgb.convert("RGBA")
    out = upscaler.upscale_images([rgb, gray, rgba, rgb.resize((20, 20))])
    assert [(o.size, o.mode) for o in out] == [((126, 100), "RGB"), ((126, 100), "L"), ((126, 100), "RGBA"), ((40, 40), "RGB")]
    batch = upscaler.upscale_tensor(torch.rand(3, 3, 16, 24))
    assert batch.shape == (3, 3, 32, 48) and batch.min() >= 0 and batch.max() <= 1


def test_missing_weights_fall_back_to_bicubic_with_a_notice(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        upscaler = Upscaler.load(4, weights_dir=tmp_path)
    assert upscaler.method == "bicubic" and "no SR weights for x4" in caplog.text
    image = Image.open(FIXTURE_IMAGES[0]).convert("RGB")
    assert upscaler.upscale_images([image])[0].tobytes() == image.resize((256, 256), Image.Resampling.BICUBIC).tobytes()


def test_bad_scales_and_weights(tmp_path, trained_x2):
    for scale in (1, 5):
        with pytest.raises(SRError, match="x2, x3 or x4"):
            Upscaler.load(scale, weights_dir=tmp_path)
    with pytest.raises(SRError, match="are for x2, not x3"):
        Upscaler.load(3, weights=trained_x2[0])
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(SRError, match="unreadable"):
        load_model(tmp_path / "junk.safetensors")
    with pytest.raises(SRError, match="scale must be 2, 3 or 4"):
        SRConfig(scale=8).validate()
    for method in ("auto", "fsrcnn", "srcnn", "bicubic"):  # every method: x2, x3 or x4
        with pytest.raises(SRError, match="upscaling is x2, x3 or x4, not x5"):
            Upscaler.load(5, method=method)


def test_upscale_and_eval_cli(tmp_path, trained_x2):
    weights = trained_x2[0]
    result = run("upscale", FIXTURE_IMAGES[0], FIXTURE_IMAGES[1], "--scale", 2, "--sr-weights", weights, "--out", tmp_path / "big")
    assert result.exit_code == 0, result.output
    files = sorted((tmp_path / "big").iterdir())
    assert [f.name for f in files] == [f"{FIXTURE_IMAGES[0].stem}_x2.png", f"{FIXTURE_IMAGES[1].stem}_x2.png"]
    assert Image.open(files[0]).size == (128, 128)
    # Two inputs of one name from two folders: both kept, neither overwrites the other.
    twin = tmp_path / "other" / FIXTURE_IMAGES[0].name
    twin.parent.mkdir()
    shutil.copy(FIXTURE_IMAGES[1], twin)
    result = run("upscale", FIXTURE_IMAGES[0], twin, "--scale", 2, "--sr-weights", weights, "--out", tmp_path / "twins")
    assert result.exit_code == 0 and "wrote 2 images" in result.output
    stem = FIXTURE_IMAGES[0].stem
    assert sorted(f.name for f in (tmp_path / "twins").iterdir()) == [f"{stem}_x2-2.png", f"{stem}_x2.png"]
    assert Image.open(tmp_path / "twins" / f"{stem}_x2-2.png").tobytes() == Image.open(files[1]).tobytes()
    result = run("upscale", FIXTURE_IMAGES[0], "--scale", 2, "--sr-weights", weights, "--out", tmp_path / "big.jpg")
    assert result.exit_code == 0 and Image.open(tmp_path / "big.jpg").format == "JPEG"
    result = run("sr", "eval", FIXTURE_IMAGES[12], FIXTURE_IMAGES[13], "--scale", 2, "--sr-weights", weights, "--json")
    assert result.exit_code == 0, result.output
    assert '"method": "bicubic"' in result.output and '"images": 2' in result.output
    assert f'"method": "SRCNN x2 ({weights.name})"' in result.output


def test_sr_train_cli(tmp_path):
    out = tmp_path / "x3.safetensors"
    result = run("sr", "train", "--scale", 3, "--data", OXFORD_MINI / "jpg", "--out", out, "--steps", 4,
                 "--valid-every", 2, "--batch-size", 4, "--patch", 21, "--kernels", "9-1-5", "--valid-fraction", 0.2, "-q")
    assert result.exit_code == 0, result.output
    assert load_model(out, scale=3).config.kernels == (9, 1, 5)


def test_sr_cli_bad_inputs(tmp_path, trained_x2):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    assert_one_line_error(run("upscale", broken, "--scale", 2, "--out", tmp_path / "o"), "cannot read image")
    assert_one_line_error(run("upscale", tmp_path / "none.png", "--out", tmp_path / "o"), "does not exist")
    assert_one_line_error(run("upscale", FIXTURE_IMAGES[0], "--scale", 5, "--out", tmp_path / "o"), "x2, x3 or x4")
    assert_one_line_error(run("upscale", FIXTURE_IMAGES[0], "--scale", 3, "--sr-weights", trained_x2[0], "--out", tmp_path / "o"), "not x3")
    assert_one_line_error(run("upscale", FIXTURE_IMAGES[0], "--out", tmp_path / "missing" / "a.png"), "does not exist")
    assert_one_line_error(run("sr", "train", "--scale", 6, "--data", OXFORD_MINI / "jpg", "--out", tmp_path / "x.safetensors"), "2, 3 or 4")
    assert_one_line_error(run("sr", "train", "--scale", 2, "--data", tmp_path / "nothing", "--out", tmp_path / "x.safetensors"), "does not exist")


def test_generate_upscales_through_the_pipeline(tmp_path, tiny_run):
    out = tmp_path / "big.png"
    result = run("generate", "pink petals", "-c", tiny_run, "--upscale", 4, "--sr-method", "bicubic", "--out", out)
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (256, 256)
    from t2i_cli.pipeline import T2IPipeline

    pipe = T2IPipeline.from_pretrained(tiny_run, device="cpu")
    result = pipe(["pink petals"], num_images=2, seed=1, upscale=3, sr_method="bicubic")
    assert [i.size for i in result.images] == [(64, 64)] * 2 and [i.size for i in result.final] == [(192, 192)] * 2
    assert_one_line_error(run("generate", "x", "-c", tiny_run, "--upscale", 5), "the upscale factor must be 1, 2, 3 or 4, got 5 (--upscale)")
    assert_one_line_error(run("generate", "x", "-c", tiny_run, "--sr-method", "magic"), "--sr-method")


# --- bounded memory: tiles and a pixel budget ------------------------------------------------------
def test_tiled_network_equals_the_whole_image_pass():
    torch.manual_seed(0)
    model = SRCNN(SRConfig(scale=2, kernels=(9, 5, 5), widths=(16, 8))).eval()
    with torch.no_grad():
        model.reconstruct.weight.normal_(0, 0.05)  # a network that changes the image, not "bicubic + ~0"
        images = torch.rand(2, 1, 70, 93)
        whole = model(images)
        tiled = run_tiled(model, images, tile=32, halo=model.receptive_radius)
        assert (tiled - whole).abs().max() < 1e-5
        assert (run_tiled(model, images, tile=32, halo=2) - whole).abs().max() > 1e-3  # too little context shows
        # An enlarging network (output = 2 x its input), as an LR-space upscaler is.
        conv = torch.nn.Conv2d(1, 1, 5, padding=2, padding_mode="replicate")
        enlarge = lambda t: torch.nn.functional.interpolate(conv(t), scale_factor=2, mode="nearest")  # noqa: E731
        assert (run_tiled(enlarge, images, tile=16, halo=2, out_scale=2) - enlarge(images)).abs().max() < 1e-5


def test_large_images_go_through_in_tiles_with_the_same_pixels(trained_x2, monkeypatch):
    upscaler = Upscaler(2, load_model(trained_x2[0]))
    image = Image.open(FIXTURE_IMAGES[0]).convert("RGB").resize((90, 70))
    whole = upscaler.upscale_images([image])[0]  # 180 x 140 output: one pass at the default tile size
    monkeypatch.setattr(upscale_module, "TILE", 48)
    tiled = upscaler.upscale_images([image])[0]
    assert tiled.size == (180, 140) and tiled.tobytes() == whole.tobytes()


def test_outputs_past_the_pixel_budget_are_refused_before_any_work(tmp_path, monkeypatch):
    started = time.perf_counter()
    with pytest.raises(SRError, match=r"would be 20000x16000 \(320 MP\) after x4; the limit is 100 MP"):
        Upscaler.load(4, method="bicubic").upscale_images([Image.new("RGB", (5000, 4000))])
    assert time.perf_counter() - started < 5
    big = tmp_path / "big.png"
    Image.new("RGB", (5000, 4000)).save(big)
    assert_one_line_error(run("upscale", big, "--scale", 4, "--sr-method", "bicubic", "--out", tmp_path / "o"), f"{big} would be 20000x16000 (320 MP) after x4; the limit is 100 MP: upscale a smaller image or by less (--upscale)")
    assert_one_line_error(run("upscale", big, "--scale", 7, "--sr-method", "bicubic", "--out", tmp_path / "o"), "x2, x3 or x4, not x7")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # decoding more than 2x this raises, as a photo bomb would
    assert_one_line_error(run("upscale", FIXTURE_IMAGES[0], "--out", tmp_path / "o"), "more pixels than Pillow decodes safely")
