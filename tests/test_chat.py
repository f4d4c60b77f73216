"""The chat that remembers: noise recipes, the conversation's actions, and the commands that draw
each picture again bit for bit."""

import io
import json
import math
import re
import shlex
import zipfile

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from t2i_cli.chat import Artist, Conversation, Settings
from t2i_cli.pipeline import T2IPipeline
from t2i_cli.cli import app
from t2i_cli.errors import RequestError, T2IError
from t2i_cli.sampling import MAX_RERANK, NoiseRecipe, seeded_noise
from test_cli import assert_one_line_error, run, runner


# --- noise recipes ------------------------------------------------------------------------------
draws = st.tuples(st.integers(0, 2**63 - 1), st.integers(0, MAX_RERANK - 1)).map(lambda d: f"{d[0]}c{d[1]}" if d[1] else str(d[0]))
strengths = st.floats(0, 1, allow_nan=False).map(repr)


@settings(max_examples=200, deadline=None)
@given(draws, st.lists(st.tuples(strengths, draws), max_size=4))
def test_a_recipe_reads_back_as_written(start, steps):
    text = start + "".join(f"~{s}:{d}" for s, d in steps)
    assert str(NoiseRecipe.of(text)) == text
    assert NoiseRecipe.of(str(NoiseRecipe.of(text))) == NoiseRecipe.of(text)


@pytest.mark.parametrize("text, fragment", [
    ("", "is not a noise recipe"), ("pink", "is not a noise recipe"), ("-3", "is not a noise recipe"),
    ("12~", "is not a noise recipe"), ("12~0.3", "is not a noise recipe"), ("12~0.3:x", "is not a noise recipe"),
    ("12 ~0.3:4", "is not a noise recipe"), ("12~1.5:3", "a variation's strength must lie in [0, 1], got 1.5"),
    ("12~0.3.1:3", "is not a noise recipe"), (f"12c{MAX_RERANK}", "so c32 is none of them"),
    (str(2**63), "a seed is at most 2^63 - 1"),
])
def test_text_that_is_no_recipe_is_refused(text, fragment):
    with pytest.raises(RequestError, match=re.escape(fragment)):
        NoiseRecipe.of(text)


def test_recipes_draw_what_seeds_candidates_and_variations_drew():
    plain = seeded_noise(100, [5, 9])
    from t2i_cli.sampling import _draw, truncation_threshold

    stream = torch.Generator().manual_seed(5)  # reranking's candidates: the seed's stream, drawn on
    candidates = [_draw(stream, 100, truncation_threshold(0.7)) for _ in range(4)]
    assert torch.equal(NoiseRecipe.of(5).vector(100), plain[0])
    assert torch.equal(NoiseRecipe.of("5c3").vector(100, truncation=0.7), candidates[3])
    varied = NoiseRecipe.of("5~0.3:9").vector(100)
    assert torch.equal(varied, math.sqrt(1 - 0.3**2) * plain[0] + 0.3 * plain[1])
    twice = NoiseRecipe.of("5~0.3:9~0.5:2").vector(100)
    assert torch.equal(twice, math.sqrt(1 - 0.5**2) * varied + 0.5 * seeded_noise(100, [2])[0])
    assert NoiseRecipe.of("5~0.3:9").with_candidate(2) == NoiseRecipe.of("5~0.3:9c2")


def test_the_pipeline_draws_a_recipes_noise(pipeline):
    caption = "this flower has white petals"
    by_seed = pipeline(caption, seed=6).images[0].tobytes()
    assert pipeline(caption, noise_from=6).images[0].tobytes() == by_seed
    assert pipeline(caption, noise_from="6").noise == [NoiseRecipe.of(6)]
    varied = pipeline(caption, seed=3, variation_of="9", strength=0.25)
    assert varied.images[0].tobytes() == pipeline(caption, seed=3, variation_of=9, strength=0.25).images[0].tobytes()
    assert str(varied.noise[0]) == "9~0.25:3"
    assert pipeline(caption, noise_from="9~0.25:3").images[0].tobytes() == varied.images[0].tobytes()
    kept = pipeline(["red petals", "yellow petals"], noise_from="9~0.25:3")  # one noise, two captions
    assert [str(n) for n in kept.noise] == ["9~0.25:3"] * 2


@pytest.mark.parametrize("args, message", [
    (["-n", 2, "--noise-from", 5], "--noise-from draws every image with one noise: ask for 1 image per caption, not 2 (--noise-from)"),
    (["--noise-from", 5, "--variation-of", 3], "--noise-from draws one flower's noise and --variation-of varies it: give one of them (--noise-from)"),
    (["--noise-from", "5~2:3"], "in noise '5~2:3', a variation's strength must lie in [0, 1], got 2.0 (--noise-from)"),
    (["--variation-of", "pink"], "'pink' is not a noise recipe: a seed (12), a candidate (12c3), then any variations (~0.3:40) (--variation-of)"),
    (["--noise-from", "5c2", "--rerank", 3], "noise 5c2 names its reranking candidate already: draw it without --rerank (--rerank)"),
])
def test_noise_flags_refuse_bad_requests_in_one_line(tmp_path, tiny_run, args, message):
    assert_one_line_error(run("generate", "red petals", *args, "-c", tiny_run, "--out", tmp_path / "x.png"), message)
    assert not (tmp_path / "x.png").exists()


def test_interpolate_writes_a_folder_of_steps_and_holds_a_recipes_noise(tmp_path, tiny_run):
    strip = run("interpolate", "red petals", "white petals", "--steps", 3, "--noise-from", "4~0.5:1", "-c", tiny_run,
                "--out", tmp_path / "strip", "--upscale", 2, "--sr-method", "bicubic")
    assert strip.exit_code == 0, strip.output
    assert sorted(p.name for p in (tmp_path / "strip").iterdir()) == ["000.png", "001.png", "002.png"]
    assert Image.open(tmp_path / "strip" / "000.png").size == (128, 128)
    by_seed = run("interpolate", "red petals", "white petals", "--steps", 3, "--seed", 4, "-c", tiny_run, "--out", tmp_path / "a.png")
    by_recipe = run("interpolate", "red petals", "white petals", "--steps", 3, "--noise-from", 4, "-c", tiny_run, "--out", tmp_path / "b.png")
    assert by_seed.exit_code == by_recipe.exit_code == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


# --- the conversation ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def matched_run(tiny_run, flowers_h5, tmp_path_factory):
    """A copy of the tiny run's checkpoint with a (barely trained) caption-matching model, so --rerank works."""
    import shutil

    from t2i_cli.checkpoint import read_checkpoint

    checkpoint = tmp_path_factory.mktemp("matched") / "tiny"
    shutil.copytree(read_checkpoint(tiny_run).path, checkpoint)
    trained = run("eval-encoder", "train", "--matcher", "--data", flowers_h5, "--steps", 2, "--out", checkpoint / "matcher", "-q")
    assert trained.exit_code == 0, trained.output
    return checkpoint


def walk(checkpoint) -> Conversation:
    """caption (reranked, truncated) -> pick the second -> keep it with a new colour -> variations ->
    blend -> enlarge a step of the blend -> enlarge the kept flower."""
    artist, conversation = Artist(T2IPipeline.from_pretrained(checkpoint, device="cpu"), checkpoint=str(checkpoint)), Conversation()
    artist.draw(conversation, "this flower has pink petals", 2, 7, Settings(upscale=2, truncation=0.7, rerank=2))
    conversation.pick(2)
    artist.keep(conversation, "this flower has yellow petals", Settings(upscale=2, sr_method="bicubic"))
    artist.vary(conversation, 2, 0.3, 100, Settings(truncation=0.5, rerank=2))  # the kept flower's truncation is its own: 0.7
    artist.blend(conversation, "-this flower has white petals", 3, Settings(upscale=3))
    conversation.pick(7)
    artist.upscale(conversation, Settings(upscale=4, sr_method="bicubic"))
    conversation.pick(3)
    artist.upscale(conversation, Settings(upscale=3))
    return conversation


@pytest.fixture(scope="module")
def conversation(matched_run):
    return walk(matched_run)


def test_a_conversation_remembers_its_pictures_and_current_flower(conversation, pipeline):
    kinds = [(p.number, p.kind) for p in conversation.pictures]
    assert kinds == [(1, "drawn"), (2, "drawn"), (3, "kept"), (4, "variation"), (5, "variation"),
                     (6, "blend"), (7, "blend"), (8, "blend"), (9, "upscaled"), (10, "upscaled")]
    second, kept, first_variation = conversation.picture(2), conversation.picture(3), conversation.picture(4)
    assert re.fullmatch(r"8(c1)?", second.noise) and second.rerank == 2 and second.truncation == 0.7
    assert kept.noise == second.noise and kept.caption == "this flower has yellow petals" and kept.truncation == 0.7
    assert re.fullmatch(rf"{second.noise}~0.3:100(c1)?", first_variation.noise) and first_variation.big is None
    assert first_variation.truncation == 0.7 and first_variation.rerank == 2
    assert conversation.picture(9).blend.step == 1 and Image.open(io.BytesIO(conversation.picture(9).big)).size == (256, 256)
    assert conversation.picture(10).small == kept.small and conversation.current == 10  # an enlargement becomes current
    with pytest.raises(T2IError, match=r"there is no picture #12 in this conversation \(it has #1 to #10\)"):
        conversation.pick(12)
    with pytest.raises(T2IError, match="pick a flower first"):
        Artist(pipeline).keep(Conversation(), "red petals", Settings())


def test_a_blends_step_is_kept_but_not_varied_or_blended_again(pipeline):
    artist, conversation = Artist(pipeline), Conversation()
    artist.draw(conversation, "red petals", 1, 0, Settings())
    artist.blend(conversation, "white petals", 3, Settings())
    conversation.pick(3)
    for action in (lambda: artist.vary(conversation, 1, 0.3, 0, Settings()), lambda: artist.blend(conversation, "pink", 2, Settings())):
        with pytest.raises(T2IError, match="#3 is a step of a blend, between two captions"):
            action()
    assert artist.keep(conversation, "pink petals", Settings())[0].noise == "0"


def test_the_oldest_pictures_go_past_the_limit(pipeline, monkeypatch):
    import t2i_cli.chat

    monkeypatch.setattr(t2i_cli.chat, "MAX_PICTURES", 3)
    artist, conversation = Artist(pipeline), Conversation()
    artist.draw(conversation, "red petals", 2, 0, Settings())
    artist.draw(conversation, "white petals", 2, 0, Settings())
    assert [p.number for p in conversation.pictures] == [2, 3, 4] and conversation.current == 3
    with pytest.raises(T2IError, match="there is no picture #1"):
        conversation.pick(1)


def test_every_pictures_command_draws_it_again_bit_for_bit(conversation, tmp_path, monkeypatch):
    """The command shown for each picture, run as the CLI, writes the very bytes the chat holds: at
    64 px and enlarged, for reranked, truncated, kept, varied, blended and enlarged pictures (a
    caption starting with '-' included)."""
    monkeypatch.chdir(tmp_path)
    for picture in conversation.pictures:
        for enlarged in (False, True) if picture.big is not None else (False,):
            command = picture.command(enlarged=enlarged)
            args = shlex.split(command)
            assert args[0] == "t2i" and "--checkpoint" in args and "#" not in command
            result = runner.invoke(app, args[1:])
            assert result.exit_code == 0, (command, result.output)
            assert (tmp_path / picture.output(enlarged=enlarged)).read_bytes() == (picture.big if enlarged else picture.small), command


def test_variations_move_further_as_the_strength_rises(pipeline):
    artist, conversation = Artist(pipeline), Conversation()
    artist.draw(conversation, "this flower has pink petals", 1, 3, Settings())
    original = np.asarray(Image.open(io.BytesIO(conversation.picture(1).small)), dtype=float)
    distances = []
    for strength in (0.05, 0.2, 0.5, 1.0):
        varied = artist.vary(conversation, 4, strength, 50, Settings())
        distances.append(np.mean([np.abs(np.asarray(Image.open(io.BytesIO(p.small)), dtype=float) - original).mean() for p in varied]))
    assert distances == sorted(distances) and distances[0] > 0, distances


def test_the_download_holds_every_picture_and_how_to_draw_it(conversation, matched_run):
    with zipfile.ZipFile(io.BytesIO(conversation.zip_bytes())) as archive:
        names = archive.namelist()
        record = json.loads(archive.read("conversation.json"))
        assert archive.read("003-x2.png") == conversation.picture(3).big
    assert "001-64px.png" in names and "001-x2.png" in names and "004-64px.png" in names and "004-x2.png" not in names
    assert record["current"] == 10 and len(record["pictures"]) == 10
    kept = record["pictures"][2]
    assert kept["caption"] == "this flower has yellow petals" and kept["upscale"] == 2 and kept["truncation"] == 0.7
    assert kept["command"] == (f"t2i generate 'this flower has yellow petals' --noise-from {kept['noise']} --truncation 0.7 "
                               f"--checkpoint {matched_run} --upscale 2 --sr-method bicubic --out flower-3-x2.png")
    assert kept["writes"] == "flower-3-x2.png" and kept["writes_64px"] == "flower-3.png"
    assert kept["files"] == ["003-64px.png", "003-x2.png"] and kept["rerank"] == 1
    blended = record["pictures"][5]
    assert blended["blend"] == {"first": "this flower has yellow petals", "second": "-this flower has white petals", "steps": 3, "step": 0}
    assert " -- 'this flower has yellow petals' '-this flower has white petals'" in blended["command"] and blended["writes"] == "blend-6-x3/000.png"
