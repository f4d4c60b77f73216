"""The style encoder S and `t2i restyle`: shapes, loss, learning, the generator pairing, the CLI."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from conftest import OXFORD_MINI
from t2i_cli.checkpoint import write_checkpoint
from t2i_cli.cli import app
from t2i_cli.config import ModelConfig
from t2i_cli.data.split import InMemorySplit
from t2i_cli.errors import T2IError
from t2i_cli.models import build_generator
from t2i_cli.models.style import StyleConfig, StyleEncoder
from t2i_cli.pipeline import T2IPipeline
from t2i_cli.sampling import load_generator
from t2i_cli.style import STYLE_DIR, load_style_encoder, read_style_encoder, write_style_encoder
from t2i_cli.training.style import (
    StyleTrainConfig, evaluate_style_encoder, recolour_partners, style_losses, train_style_encoder,
)
from test_cli import assert_one_line_error

runner = CliRunner()
PHOTO = OXFORD_MINI / "jpg" / "image_06734.jpg"


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def tiny_dfgan(folder, minilm, seed: int):
    """A random width-4 DF-GAN generator saved as a checkpoint folder. Every weight is moved off
    its initial value: the caption-affine heads start at exactly the identity, deaf to captions."""
    torch.manual_seed(seed)
    config = ModelConfig(arch="dfgan", ngf=4, ndf=4, fusion_hidden=16)
    weights = {k: v + 0.1 * torch.randn_like(v) for k, v in build_generator(config).state_dict().items()}
    return write_checkpoint(folder, generator_weights=weights, model=config, train=None, encoder=minilm.identity, epoch=1, step=1)


@pytest.fixture(scope="module")
def generators(tmp_path_factory, minilm):
    root = tmp_path_factory.mktemp("generators")
    return tiny_dfgan(root / "a", minilm, seed=0), tiny_dfgan(root / "b", minilm, seed=1)


@pytest.fixture(scope="module")
def train_split(flowers_h5):
    return InMemorySplit.load(flowers_h5, "train", image_size=64)


@pytest.mark.parametrize("size", [16, 64, 128])
def test_style_encoder_maps_images_to_noise(size):
    encoder = StyleEncoder(StyleConfig(image_size=size, noise_dim=37, width=4))
    assert encoder(torch.rand(3, 3, size, size) * 2 - 1).shape == (3, 37)
    with pytest.raises(T2IError, match="power of two"):
        StyleEncoder(StyleConfig(image_size=48))


def test_style_losses_on_hand_made_parts():
    class Echo(torch.nn.Module):  # a "generator" that draws its noise as a 1x1 image's channels
        config = None

        def forward(self, noise, captions):
            return noise[:, :3, None, None] + captions[:, :3, None, None], None

    class Fixed(torch.nn.Module):  # an "encoder" that always answers the same noise
        def __init__(self, answer):
            super().__init__()
            self.answer = answer

        def forward(self, images):
            return self.answer.expand(len(images), -1)

    noise = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    captions = torch.zeros(2, 3)
    photos = torch.full((2, 3, 1, 1), 0.5)
    loss, stats = style_losses(Fixed(torch.tensor([[1.0, 0.0, 0.0]])), Echo(), noise=noise, captions=captions, photos=photos, real_weight=2.0)
    # noise: errors (0, 2, 3) and (1, 0, 0) -> (0 + 4 + 9 + 1) / 6; photo: |(1, 0, 0) - 0.5| -> 0.5 everywhere
    assert stats["noise_mse"] == pytest.approx(14 / 6) and stats["photo_l1"] == pytest.approx(0.5)
    assert loss.item() == pytest.approx(14 / 6 + 2 * 0.5)
    _, stats = style_losses(Fixed(torch.zeros(1, 3)), Echo(), noise=noise, captions=captions, photos=photos, real_weight=0.0)
    assert set(stats) == {"noise_mse"}


def test_training_learns_to_invert_the_generator(train_split):
    torch.manual_seed(0)  # an 8-d noise: few enough directions for 200 steps to find
    generator = build_generator(ModelConfig(arch="dfgan", ngf=4, ndf=4, fusion_hidden=16, noise_dim=8)).eval()
    config = StyleTrainConfig(steps=200, batch_size=16, lr=1e-3, width=8, real_weight=0.0, amp=False)
    trained, record = train_style_encoder(generator, train_split, config=config, device=torch.device("cpu"))
    untrained = StyleEncoder(trained.config).eval()
    noise = torch.randn(64, 8, generator=torch.Generator().manual_seed(9))
    captions = train_split.embeddings[torch.arange(64) % len(train_split), 0]
    with torch.no_grad():
        drawn, _ = generator(noise, captions)
        errors = [torch.nn.functional.mse_loss(s(drawn), noise).item() for s in (untrained, trained)]
    assert errors[1] < 0.3 * errors[0], errors  # held-out noise, not the steps' own draws
    assert record["steps"] == 200 and record["final"]["noise_mse"] < 0.3


def test_saved_encoder_loads_only_for_its_generator(generators, tmp_path):
    encoder = StyleEncoder(StyleConfig(width=4))
    folder = tmp_path / "s"
    from t2i_cli.style import generator_sha256

    write_style_encoder(folder, encoder, generator_sha256=generator_sha256(generators[0]), record={"trained": {"steps": 1}})
    loaded = load_style_encoder(folder, generator_checkpoint=generators[0])
    assert all(torch.equal(a, b) for a, b in zip(encoder.state_dict().values(), loaded.state_dict().values()))
    write_style_encoder(tmp_path / "half", encoder, generator_sha256=generator_sha256(generators[0]), record={}, half=True)
    halved = load_style_encoder(tmp_path / "half", generator_checkpoint=generators[0])
    assert all(b.dtype == torch.float32 and torch.allclose(a, b, atol=1e-3) for a, b in zip(encoder.state_dict().values(), halved.state_dict().values()))
    assert (tmp_path / "half" / "style_encoder.safetensors").stat().st_size < 0.6 * (folder / "style_encoder.safetensors").stat().st_size
    assert read_style_encoder(folder).record == {"trained": {"steps": 1}}
    with pytest.raises(T2IError, match="trained for another generator"):
        load_style_encoder(folder, generator_checkpoint=generators[1])
    with pytest.raises(T2IError, match="no style encoder at"):
        load_style_encoder(tmp_path / "nowhere", generator_checkpoint=generators[0])
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "kind": "t2i-gan"}))
    with pytest.raises(T2IError, match="is not a t2i style encoder"):
        read_style_encoder(folder)
    (folder / "config.json").write_text(json.dumps({**config, "style": {"width": "wide"}}))
    with pytest.raises(T2IError, match="width must be int"):
        read_style_encoder(folder)


def test_a_run_keeps_its_style_encoders_beside_the_checkpoints_it_prunes(tiny_run, generators, flowers_h5, tmp_path):
    from t2i_cli.checkpoint import resolve_checkpoint
    from t2i_cli.style import default_style_path

    epoch = resolve_checkpoint(tiny_run)
    assert default_style_path(tiny_run) == tiny_run / "style-encoders" / epoch.name
    assert default_style_path(generators[0]) == generators[0] / STYLE_DIR
    run_copy = tmp_path / "run"
    shutil.copytree(tiny_run, run_copy)
    result = run("style", "train", "--data", flowers_h5, "-c", run_copy, "--steps", 1, "--width", 4, "--eval-split", "none", "-q", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert (run_copy / "style-encoders" / epoch.name / "style_encoder.safetensors").is_file()
    load_style_encoder(run_copy / "style-encoders" / epoch.name, generator_checkpoint=run_copy)


def test_force_replaces_a_style_encoder_but_never_a_generator(generators, flowers_h5, tmp_path):
    checkpoint = tmp_path / "g"
    shutil.copytree(generators[0], checkpoint)
    result = run("style", "train", "--data", flowers_h5, "-c", checkpoint, "--out", checkpoint, "--force", "--steps", 1, "-q")
    assert_one_line_error(result, "is not a style encoder: it would be replaced")
    assert (checkpoint / "generator.safetensors").is_file()


def test_recolour_partners_pick_another_colour_of_another_image():
    captions = [["this flower has red petals"], ["a flower with yellow petals", "white petals"], ["pink and purple petals"]]
    pairs = recolour_partners(captions, ["red", None, "white"], np.random.default_rng(0))
    assert [p[0] for p in pairs] == [0, 2]  # the photo without a flower colour is left out
    for photo, partner, index, colour in pairs:
        assert partner != photo and colour != ["red", None, "white"][photo]
        assert colour in captions[partner][index]  # a caption naming one colour: never the two-colour one
    # Captions without an embedding (a reference file keeps fewer) are never drawn.
    for seed in range(20):
        pairs = recolour_partners(captions, ["red", None, "white"], np.random.default_rng(seed), counts=[1, 1, 1])
        assert all((partner, index) != (1, 1) for _, partner, index, _ in pairs)


def test_flower_overlap_is_where_the_flowers_are_whatever_their_colour():
    from t2i_cli.training.style import flower_overlap

    def picture(colour, box):  # a coloured square on dark green foliage
        image = torch.zeros(1, 3, 16, 16, dtype=torch.uint8)
        image[:, 1] = 90
        top, left, size = box
        image[:, :, top : top + size, left : left + size] = torch.tensor(colour, dtype=torch.uint8)[:, None, None]
        return image

    pink, yellow = (240, 120, 200), (240, 220, 40)
    assert flower_overlap(picture(pink, (4, 4, 8)), picture(yellow, (4, 4, 8))) == 1.0  # same place, new colour
    assert flower_overlap(picture(pink, (0, 0, 8)), picture(pink, (8, 8, 8))) == 0.0  # same colour, elsewhere
    assert flower_overlap(picture(pink, (0, 0, 8)), picture(pink, (4, 0, 8))) == pytest.approx(1 / 3)


def test_evaluation_reports_every_figure(generators, flowers_h5):
    generator, _ = load_generator(generators[0])
    encoder = StyleEncoder(StyleConfig(width=4)).eval()
    split = InMemorySplit.load(flowers_h5, "train", image_size=64)

    def features(images):  # a stand-in for Inception: mean colour per image
        return images.float().mean(dim=(2, 3)).numpy()

    report = evaluate_style_encoder(generator, encoder, split, device=torch.device("cpu"), features=features, generated=16)
    assert report["generated"]["images"] == 16 and 0 <= report["generated"]["noise_mse"]
    assert report["photos"]["images"] == len(split) and np.isfinite(report["photos"]["psnr"])
    assert set(report["restyle"]) >= {"pairs", "new_colour_match", "flower_overlap_with_photo", "inception_distance_to_photo_random_noise"}
    assert 0 <= report["photos"]["flower_overlap"] <= 1


@pytest.mark.slow
def test_style_train_then_restyle_through_the_cli(generators, flowers_h5, tmp_path):
    checkpoint = tmp_path / "g"
    shutil.copytree(generators[0], checkpoint)
    trained = run("style", "train", "--data", flowers_h5, "-c", checkpoint, "--steps", 3, "--width", 4, "--eval-split", "valid", "-q", "--device", "cpu")
    assert trained.exit_code == 0, trained.output
    assert "valid split" in trained.output and (checkpoint / STYLE_DIR / "style_encoder.safetensors").is_file()
    assert read_style_encoder(checkpoint / STYLE_DIR).record["evaluation"]["split"] == "valid"
    assert_one_line_error(run("style", "train", "--data", flowers_h5, "-c", checkpoint, "--steps", 1, "-q"), "--force")

    out, sheet = tmp_path / "yellow.png", tmp_path / "sheet.png"
    result = run("restyle", PHOTO, "this flower has yellow petals", "-c", checkpoint, "--upscale", 2,
                 "--photo-caption", "a white flower", "--out", out, "--sheet", sheet, "--device", "cpu")
    assert result.exit_code == 0, result.output
    with Image.open(out) as image:
        assert image.size == (128, 128)
    with Image.open(sheet) as image:
        assert image.height >= 2 * 128
    two = run("restyle", PHOTO, "red petals", "white petals", "-c", checkpoint, "--out", tmp_path / "two.jpg")
    assert two.exit_code == 0 and "2 images" in two.output, two.output

    report = tmp_path / "style.json"
    evaluated = run("style", "eval", "--data", flowers_h5, "-c", checkpoint, "--split", "test", "--out", report, "--device", "cpu")
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(report.read_text())["split"] == "test"


def test_restyle_bad_inputs_are_one_line(generators, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where the default --out restyled.png would go
    checkpoint = tmp_path / "g"
    shutil.copytree(generators[0], checkpoint)
    assert_one_line_error(run("restyle", PHOTO, "red petals", "-c", checkpoint), "no style encoder at")
    from t2i_cli.style import generator_sha256

    write_style_encoder(checkpoint / STYLE_DIR, StyleEncoder(StyleConfig(width=4)), generator_sha256=generator_sha256(generators[1]), record={})
    assert_one_line_error(run("restyle", PHOTO, "red petals", "-c", checkpoint), "trained for another generator")
    assert_one_line_error(run("restyle", tmp_path / "missing.jpg", "red petals", "-c", checkpoint), "does not exist")
    (tmp_path / "corrupt.jpg").write_bytes(PHOTO.read_bytes()[:300])
    assert_one_line_error(run("restyle", tmp_path / "corrupt.jpg", "red petals", "-c", checkpoint), "does not decode")
    (tmp_path / "notes.jpg").write_text("not a photo")
    assert_one_line_error(run("restyle", tmp_path / "notes.jpg", "red petals", "-c", checkpoint), "not an image format PIL can read")
    assert_one_line_error(run("restyle", PHOTO, "  ", "-c", checkpoint), "caption 1 is empty")
    assert_one_line_error(run("restyle", PHOTO, "red", "-c", checkpoint, "--out", tmp_path / "x.txt"), "cannot write an image")
    assert not (tmp_path / "restyled.png").exists()


def test_pipeline_restyle_is_deterministic_and_takes_any_photo(generators, tmp_path):
    checkpoint = tmp_path / "g"
    shutil.copytree(generators[0], checkpoint)
    from t2i_cli.style import generator_sha256

    torch.manual_seed(3)
    write_style_encoder(checkpoint / STYLE_DIR, StyleEncoder(StyleConfig(width=4)), generator_sha256=generator_sha256(checkpoint), record={})
    pipeline = T2IPipeline.from_pretrained(checkpoint, device="cpu")
    with Image.open(PHOTO) as photo:
        photo = photo.copy()
    first = pipeline.restyle(photo, ["red petals", "white petals"], photo_caption="a flower")
    again = pipeline.restyle(photo, "red petals")
    assert first.small.restyled[0].tobytes() == again.small.restyled[0].tobytes()
    assert first.small.restyled[0].tobytes() != first.small.restyled[1].tobytes()
    assert first.small.photo.size == (64, 64) and first.small.reconstruction is not None and again.small.reconstruction is None
    grey = pipeline.restyle(photo.convert("L").resize((90, 40)), "red petals", upscale=3)
    assert grey.upscaled.restyled[0].size == (192, 192) and grey.upscaled.photo.size == (192, 192)
    clear = pipeline.restyle(Image.new("RGBA", (30, 30), (0, 0, 0, 0)), "red petals")
    assert min(clear.small.photo.getpixel((15, 15))) > 240  # transparency onto white, as the data files do
    with pytest.raises(T2IError, match="the upscale factor"):
        pipeline.restyle(photo, "red petals", upscale=5)
