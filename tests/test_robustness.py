"""Hostile-but-realistic inputs: each defect of the robustness issue reproduced as written, then
property-based tests (Hypothesis) of the places where outside input enters."""

import json
import math
import shutil
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from conftest import OXFORD_MINI
from t2i_cli.cli import app
from t2i_cli.config import TrainConfig, from_dict
from t2i_cli.errors import T2IError
from test_cli import assert_one_line_error

PHOTO = sorted((OXFORD_MINI / "jpg").glob("*.jpg"))[0]
runner = CliRunner()
FEW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


# --- 1. interpolate is bounded ---------------------------------------------------------------------
def test_interpolate_refuses_more_steps_than_generate_draws_images(tiny_run, tmp_path):
    result = run("interpolate", "red", "white", "--steps", 100000, "-c", tiny_run, "--out", tmp_path / "i.png")
    assert_one_line_error(result, "an interpolation has at most 1024 steps, got 100000 (--steps)")
    assert not (tmp_path / "i.png").exists()


def test_interpolate_draws_in_batches(tiny_run):
    from t2i_cli.pipeline import T2IPipeline

    pipeline = T2IPipeline.from_pretrained(tiny_run, device="cpu")
    sizes = []
    forward = pipeline.generator.forward
    pipeline.generator.forward = lambda noise, embedding: (sizes.append(len(noise)), forward(noise, embedding))[1]
    result = pipeline.interpolate("red petals", "white petals", steps=150)
    assert len(result.images) == 150 and sizes == [64, 64, 22]


# --- 2. an output never destroys an input ----------------------------------------------------------
def test_an_output_that_is_an_input_is_refused_and_the_input_kept(tiny_run, tmp_path):
    photo = tmp_path / "good.jpg"
    shutil.copy(PHOTO, photo)
    before = photo.read_bytes()
    assert_one_line_error(run("restyle", photo, "yellow petals", "-c", tiny_run, "--out", photo), "is also an input")
    assert_one_line_error(run("restyle", photo, "yellow petals", "-c", tiny_run, "--sheet", photo, "--out", tmp_path / "r.png"),
                          "is also an input")
    assert_one_line_error(run("upscale", photo, "--out", photo), "is also an input")
    (tmp_path / "link.jpg").symlink_to(photo)
    assert_one_line_error(run("upscale", tmp_path / "link.jpg", "--out", photo), "is also an input")
    assert photo.read_bytes() == before


def test_an_existing_output_is_replaced_only_with_force(tiny_run, tmp_path):
    out = tmp_path / "existing.png"
    Image.new("RGB", (8, 8), "red").save(out)
    before = out.read_bytes()
    assert_one_line_error(run("generate", "pink petals", "-c", tiny_run, "--out", out), "already exists, and replacing it was not asked for (--force)")
    assert_one_line_error(run("interpolate", "a", "b", "-c", tiny_run, "--out", out), "(--force)")
    assert out.read_bytes() == before
    assert run("generate", "pink petals", "-c", tiny_run, "--out", out, "--force").exit_code == 0
    assert out.read_bytes() != before

    folder = tmp_path / "up"
    folder.mkdir()
    small = tmp_path / "x.png"
    Image.new("RGB", (16, 16), "blue").save(small)
    Image.new("RGB", (8, 8), "red").save(folder / "x_x2.png")
    assert_one_line_error(run("upscale", small, "--out", folder, "--sr-method", "bicubic"), "x_x2.png already exists")
    assert run("upscale", small, "--out", folder, "--sr-method", "bicubic", "--force").exit_code == 0
    with Image.open(folder / "x_x2.png") as image:
        assert image.size == (32, 32)
    nested = tmp_path / "a" / "b"  # --out a/b/ is made with its parent, as --out a/ is
    assert run("upscale", small, "--out", nested, "--sr-method", "bicubic").exit_code == 0
    assert (nested / "x_x2.png").is_file()
    (tmp_path / "file").write_text("x")
    assert_one_line_error(run("upscale", small, "--out", tmp_path / "file" / "sub", "--sr-method", "bicubic"), "is not a folder")


def test_convert_force_replaces_only_a_data_file(tmp_path):
    source = tmp_path / "coco"
    (source / "images").mkdir(parents=True)
    shutil.copy(PHOTO, source / "images" / "a.jpg")
    annotations = source / "captions.json"
    annotations.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}],
                                       "annotations": [{"id": 1, "image_id": 1, "caption": "a red flower"}]}))
    before = annotations.read_bytes()
    result = run("data", "convert", source, annotations, "--layout", "coco", "--force", "--quiet")
    assert_one_line_error(result, "is not an HDF5 data file; --force replaces only data files")
    assert annotations.read_bytes() == before


# --- 3. text that is not valid Unicode, or has no word ---------------------------------------------
@pytest.mark.parametrize("caption, fragment", [
    ("pink \udcff petals", "caption 1 is not valid Unicode text (byte 0xff)"),
    ("\x01\x02\x03", "caption 1 has no word in it"),
    ("?!  …", "caption 1 has no word in it"),
])
def test_captions_that_are_no_text_are_one_line(tiny_run, tmp_path, caption, fragment):
    assert_one_line_error(run("generate", caption, "-c", tiny_run, "--out", tmp_path / "x.png"), fragment)
    assert_one_line_error(run("restyle", PHOTO, caption, "-c", tiny_run, "--out", tmp_path / "y.png"), fragment)


def test_control_characters_inside_a_caption_become_spaces():
    from t2i_cli.pipeline import validate_captions

    assert validate_captions(["pink\x00petals\u200b and\ta\u2028stem"]) == ["pink petals and a stem"]


def test_a_coco_caption_that_is_no_text_is_skipped_and_counted(tmp_path, minilm):
    from t2i_cli.data.sources import open_coco

    source = tmp_path / "coco"
    (source / "images").mkdir(parents=True)
    for name in ("a.jpg", "b.jpg"):
        shutil.copy(PHOTO, source / "images" / name)
    (source / "captions.json").write_text(
        '{"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}], "annotations": ['
        '{"id": 1, "image_id": 1, "caption": "a red \\udcff flower"}, {"id": 2, "image_id": 1, "caption": "a red flower"},'
        '{"id": 3, "image_id": 2, "caption": "\\u0001\\u0002"}]}'
    )
    skipped = []
    items = open_coco(source, on_skip=lambda reason, detail: skipped.append(reason))
    assert [item.captions for item in items] == [("a red flower",)]
    assert skipped == ["caption that is no usable text", "caption that is no usable text", "image without captions"]


# --- 5. --resume names a run, not one of its checkpoints -------------------------------------------
def test_resume_of_a_checkpoint_folder_is_refused_and_writes_nothing(tiny_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    checkpoint = run_dir / "checkpoints" / "epoch-0001"
    listing = sorted(p.name for p in checkpoint.iterdir())
    result = run("train", "--resume", checkpoint, "--epochs", 5)
    assert_one_line_error(result, f"is one checkpoint of the run {run_dir}: resume the run folder")
    assert sorted(p.name for p in checkpoint.iterdir()) == listing


# --- 6. outputs are checked before the work, in the user's words -----------------------------------
def test_unwritable_outputs_fail_before_any_work_naming_the_users_path(tiny_run, tmp_path, flowers_h5):
    assert_one_line_error(run("restyle", PHOTO, "red", "-c", tiny_run, "--out", "/proc/x.png"), "cannot write /proc/x.png")
    result = run("restyle", PHOTO, "red", "-c", tiny_run, "--out", tmp_path / "a.png", "--sheet", tmp_path)
    assert_one_line_error(result, "(--sheet)")
    assert ".partial-" not in result.output
    trained = run("style", "train", "--data", flowers_h5, "-c", tiny_run, "--out", "/proc/s-c", "--steps", 1)
    assert_one_line_error(trained, "cannot write /proc/s-c")
    (tmp_path / "report").mkdir()
    assert_one_line_error(run("style", "eval", "--data", flowers_h5, "-c", tiny_run, "--out", tmp_path / "report"), "is a folder")


# --- 8. numbers ------------------------------------------------------------------------------------
@pytest.mark.parametrize("flags, fragment", [
    (["--lr", "nan"], "lr must be a finite number, got nan (--lr)"),
    (["--lr-d", "nan"], "lr_d must be a finite number, got nan (--lr-d)"),
    (["--lr", "inf"], "lr must be a finite number, got inf (--lr)"),
    (["--lr", "1e308"], "learning rates must lie in (0, 1.0]"),
])
def test_non_finite_or_absurd_learning_rates_are_refused_before_training(flowers_h5, tmp_path, flags, fragment):
    assert_one_line_error(run("train", "--data", flowers_h5, "--out", tmp_path / "r", *flags), fragment)
    assert not (tmp_path / "r").exists()


def test_a_config_file_with_nan_is_refused(flowers_h5, tmp_path):
    config = tmp_path / "c.json"
    config.write_text('{"train": {"lr": NaN}}')
    assert_one_line_error(run("train", "--data", flowers_h5, "--out", tmp_path / "r", "--config", config), "lr must be a finite number")


# --- 9. files --------------------------------------------------------------------------------------
def test_deeply_nested_json_is_one_line(tmp_path):
    source = tmp_path / "coco"
    source.mkdir()
    (source / "captions.json").write_text("[" * 100000 + "]" * 100000)
    assert_one_line_error(run("data", "convert", source, tmp_path / "o.h5", "--layout", "coco", "--quiet"), "nests its JSON too deeply")
    config = tmp_path / "c.json"
    config.write_text("[" * 100000 + "]" * 100000)
    assert_one_line_error(run("train", "--data", "x.h5", "--out", tmp_path / "r", "--config", config), "nests its JSON too deeply")


def test_a_checkpoint_whose_format_is_not_a_number_is_one_line(tiny_run, tmp_path):
    from t2i_cli.checkpoint import read_checkpoint

    copy = tmp_path / "ckpt"
    shutil.copytree(read_checkpoint(tiny_run).path, copy)
    config = json.loads((copy / "config.json").read_text())
    config["format"] = "1"
    (copy / "config.json").write_text(json.dumps(config))
    assert_one_line_error(run("generate", "red", "-c", copy, "--out", tmp_path / "x.png"), 'gives format "1", not a whole number')


def test_weights_holding_nan_are_refused(tiny_run, tmp_path):
    from safetensors.torch import load_file, save_file

    from t2i_cli.checkpoint import read_checkpoint

    copy = tmp_path / "ckpt"
    shutil.copytree(read_checkpoint(tiny_run).path, copy)
    weights = load_file(str(copy / "generator.safetensors"))
    name = next(k for k, v in weights.items() if v.is_floating_point())
    weights[name][...] = float("nan")
    save_file(weights, str(copy / "generator.safetensors"))
    assert_one_line_error(run("generate", "red", "-c", copy, "--out", tmp_path / "x.png"), "hold NaN or infinite values")
    assert not (tmp_path / "x.png").exists()


# --- 10. leftovers ---------------------------------------------------------------------------------
def test_any_atomic_write_clears_what_a_killed_writer_left_in_its_folder(tmp_path):
    from t2i_cli.atomic import write_text

    dead = 2**22 + 12345  # no such process (pid_max is 2^22 at most)
    leftovers = [tmp_path / f".flowers.h5.partial-{dead}", tmp_path / f".other.png.partial-{dead}"]
    for path in leftovers:
        path.write_bytes(b"half")
    (tmp_path / f".run.partial-{dead}").mkdir()
    write_text(tmp_path / "notes.txt", "hello")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


# --- property-based: where outside input enters ----------------------------------------------------
@FEW
@given(st.text(max_size=60))
def test_any_text_is_a_clean_caption_or_one_request_error(text):
    from t2i_cli.errors import RequestError
    from t2i_cli.pipeline import validate_captions

    try:
        [cleaned] = validate_captions([text])
    except RequestError as exc:
        assert str(exc).startswith("caption 1 ")
        return
    assert cleaned == cleaned.strip() and "  " not in cleaned and any(ch.isalnum() for ch in cleaned)
    cleaned.encode("utf-8")  # no lone surrogates: a tokenizer takes it
    assert not any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") for ch in cleaned)


@FEW
@given(st.binary(max_size=200))
def test_any_caption_file_gives_captions_or_a_caption_file_error(tmp_path, data):
    from t2i_cli.data.sources import CaptionFileError, read_captions

    path = tmp_path / "c.txt"
    path.write_bytes(data)
    try:
        captions = read_captions(path)
    except CaptionFileError:
        return
    assert captions and all(c and any(ch.isalnum() for ch in c) for c in captions)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
TRAIN_KEYS = st.sampled_from(["lr", "epochs", "batch_size", "beta2", "diffaug", "gan_type", "ma_gp", "eval_every", "lr_decay", "amp"])


@FEW
@given(st.dictionaries(TRAIN_KEYS, JSON, max_size=4))
def test_any_train_config_json_is_a_config_or_one_t2i_error(values):
    try:
        config = from_dict(TrainConfig, values, source="c.json")
        config.validate()
    except T2IError:
        return
    for key, value in values.items():
        if isinstance(value, float):
            assert math.isfinite(value)


@FEW
@given(st.dictionaries(st.sampled_from(["images", "annotations", "info"]), JSON, max_size=3))
def test_any_coco_json_is_read_or_refused_in_one_t2i_error(tmp_path, document):
    from t2i_cli.data.sources import open_coco

    source = tmp_path / "coco"
    source.mkdir(exist_ok=True)
    (source / "captions.json").write_text(json.dumps(document))
    try:
        open_coco(source)
    except T2IError:
        pass


# --- 7. images of every mode keep their range and alpha --------------------------------------------
def _sixteen_bit_grey(value: int) -> Image.Image:
    import numpy as np

    return Image.fromarray(np.full((16, 16), value, dtype=np.uint16))  # mode I;16


def test_upscale_keeps_the_range_of_16_bit_grey_and_the_alpha_of_a_palette(tmp_path):
    import numpy as np

    grey = tmp_path / "grey16.png"
    _sixteen_bit_grey(32768).save(grey)
    with Image.open(grey) as opened:
        assert opened.mode in ("I;16", "I")
    assert run("upscale", grey, "--out", tmp_path / "g2.png", "--sr-method", "bicubic").exit_code == 0
    with Image.open(tmp_path / "g2.png") as image:
        assert image.mode == "L" and abs(int(np.asarray(image).mean()) - 128) <= 1  # mid-grey, not clipped to white

    palette = Image.new("P", (16, 16), 1)
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.paste(0, (0, 0, 8, 16))
    palette.info["transparency"] = 0
    path = tmp_path / "palette.png"
    palette.save(path, transparency=0)
    assert run("upscale", path, "--out", tmp_path / "p2.png", "--sr-method", "bicubic").exit_code == 0
    with Image.open(tmp_path / "p2.png") as image:
        alpha = np.asarray(image.getchannel("A"))
        assert image.mode == "RGBA" and alpha[:, :12].max() == 0 and alpha[:, 20:].min() == 255


@FEW
@given(st.sampled_from(["I;16", "I", "F", "P", "PA", "LA", "L", "RGB", "RGBA", "CMYK", "1", "YCbCr"]), st.integers(0, 2**16 - 1))
def test_every_mode_becomes_an_8_bit_mode_with_its_level(mode, level):
    import numpy as np

    from t2i_cli.data.images import to_8bit, to_rgb

    if mode == "I;16":
        image = _sixteen_bit_grey(level)
        expected = round(level * 255 / 65535) if level > 255 else level
    elif mode == "F":
        image = Image.fromarray(np.full((4, 4), level / 65535, dtype=np.float32), mode="F")
        expected = round(level / 65535 * 255)
    else:
        image = Image.new(mode, (4, 4))
        expected = None
    converted = to_8bit(image)
    assert converted.mode in ("L", "LA", "RGB", "RGBA")
    if expected is not None:
        assert abs(int(np.asarray(converted)[0, 0]) - expected) <= 1
    assert to_rgb(image).mode == "RGB"


def test_the_demo_on_a_busy_port_says_so_in_one_line_and_never_that_it_serves(tiny_run):
    import socket

    pytest.importorskip("gradio")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("demo", "-c", tiny_run, "--port", port, "--host", "127.0.0.1")
    assert_one_line_error(result, f"cannot serve on 127.0.0.1:{port}")
    assert "serving on" not in result.output
