"""Model parts on disk, one way (t2i_cli/component.py), and the layouts written before it, still read."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from t2i_cli.component import CONFIG_FILE, component_kind, read_component, write_component
from t2i_cli.errors import T2IError
from t2i_cli.evaluation.image_encoder import (
    EVAL_KIND,
    ImageEncoderConfig,
    cache_key,
    load_image_encoder,
    save_image_encoder,
)

SHIPPED_MATCHER = Path(__file__).resolve().parents[1] / "weights" / "flowers-gan" / "matcher"


def test_a_component_round_trips_and_its_reader_checks_kind_and_format(tmp_path):
    weights = {"w": torch.arange(6.0).reshape(2, 3), "steps": torch.tensor([3])}
    folder = write_component(tmp_path / "part", kind="t2i-test", format=2, config={"size": 3}, weights={"part.safetensors": weights},
                             half=True)
    config = read_component(folder, kind="t2i-test", newest_format=2, what="test part")
    assert config["kind"] == "t2i-test" and config["format"] == 2 and config["size"] == 3 and "t2i_version" in config
    from safetensors.torch import load_file

    stored = load_file(str(folder / "part.safetensors"))
    assert stored["w"].dtype == torch.float16 and stored["steps"].dtype == torch.int64  # half: floating tensors only
    assert component_kind(folder) == "t2i-test" and component_kind(tmp_path) is None
    with pytest.raises(T2IError, match=r"is not a t2i test part \(kind 't2i-test', expected 't2i-other'\)"):
        read_component(folder, kind="t2i-other", newest_format=2, what="test part")
    with pytest.raises(T2IError, match="has test part format 2; this t2i reads up to 1"):
        read_component(folder, kind="t2i-test", newest_format=1, what="test part")
    (folder / CONFIG_FILE).write_text("{not json")
    with pytest.raises(T2IError, match="has an unreadable config.json"):
        read_component(folder, kind="t2i-test", newest_format=2, what="test part")


def test_a_failed_write_leaves_the_old_component_whole(tmp_path):
    folder = write_component(tmp_path / "part", kind="t2i-test", format=1, config={"n": 1}, weights={"a.safetensors": {"x": torch.ones(2)}})

    def crash(partial: Path) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_component(folder, kind="t2i-test", format=1, config={"n": 2}, weights={"a.safetensors": {"x": torch.zeros(2)}}, extra=crash)
    assert read_component(folder, kind="t2i-test", newest_format=1, what="test part")["n"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part"]


def test_image_encoders_of_the_first_layout_still_load(tmp_path):
    """Format 1 kept the description in image_encoder.json, and its first files named no kind
    (R-precision's); caches and run folders hold such files, and so does the shipped matcher."""
    from t2i_cli.evaluation.image_encoder import ImageEncoder

    config = ImageEncoderConfig(dim=4, width=2)
    torch.manual_seed(0)
    model = ImageEncoder(4, 2)
    new = save_image_encoder(model, tmp_path / "new", config=config, data_identity={"encoder": {"name": "m"}})
    assert json.loads((new / CONFIG_FILE).read_text())["format"] == 2
    old = tmp_path / "old"
    shutil.copytree(new, old)
    description = json.loads((old / CONFIG_FILE).read_text())
    (old / CONFIG_FILE).unlink()
    (old / "image_encoder.json").write_text(json.dumps({"format": 1, "config": description["config"], "data": description["data"]}))
    images = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    loaded_new, _ = load_image_encoder(new, device=torch.device("cpu"))
    loaded_old, old_description = load_image_encoder(old, device=torch.device("cpu"))
    assert torch.equal(loaded_new.embed(images), loaded_old.embed(images)) and old_description["config"]["width"] == 2
    assert EVAL_KIND == "t2i-eval-image-encoder"
    from t2i_cli.training.matching import load_match_encoder

    assert (SHIPPED_MATCHER / "image_encoder.json").is_file() and not (SHIPPED_MATCHER / CONFIG_FILE).exists()
    assert load_match_encoder(SHIPPED_MATCHER) is not None


def test_an_image_encoder_cache_key_is_what_it_was():
    """Keys name trained encoders in the cache (minutes of training each); the move to config.json
    changed how they are stored, not how they are trained, so the keys must not move."""
    assert cache_key({"sha256": "abc", "encoder": {"name": "m"}}, ImageEncoderConfig(dim=4)) == "10a38a99202a74891de0"
