"""Every shipped weights file is listed in the manifest with its true hash and a reproducing command."""

from t2i_cli.weights import WEIGHTS_DIR, read_manifest, record, sha256_of


def test_manifest_lists_every_weights_file_with_its_hash():
    manifest = read_manifest()["files"]
    on_disk = sorted(p.relative_to(WEIGHTS_DIR).as_posix() for p in WEIGHTS_DIR.rglob("*.safetensors"))
    assert sorted(manifest) == on_disk, "weights/ and MANIFEST.json list different files"
    for name in on_disk:
        entry = manifest[name]
        assert entry["sha256"] == sha256_of(WEIGHTS_DIR / name), f"{name} changed since the manifest was written"
        assert entry["command"].startswith("t2i ") and entry["data"]


def test_record_measures_hash_and_size(tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    file = weights / "a.safetensors"
    file.write_bytes(b"12345")
    entry = record(file, what="test", data="none", command="t2i x", weights_dir=weights)
    assert entry["bytes"] == 5 and entry["sha256"] == sha256_of(file)
    assert read_manifest(weights)["files"]["a.safetensors"]["command"] == "t2i x"
