"""The real `t2i` commands through Typer's CliRunner: success paths and one-line errors."""

import json
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from conftest import OXFORD_MINI
from t2i_cli.cli import _one_line, app, with_flags

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, fragment):
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(error_lines) == 1 and fragment in error_lines[0], result.output


def test_help_lists_the_commands():
    result = run("--help")
    assert result.exit_code == 0 and "data" in result.output
    result = run("data", "--help")
    assert all(cmd in result.output for cmd in ("convert", "info", "embed"))
    no_args = run()
    assert "Usage" in no_args.output


def test_a_command_builds_and_imports_only_itself():
    """A cold start pays for the command that runs: `t2i generate` imports no other command's module,
    nor rich (until something is logged) nor pydantic; `t2i --help` still lists them all."""
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from t2i_cli.cli import COMMANDS, app\n"
        "result = CliRunner().invoke(app, ['generate', '--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(name for name in sys.modules if name.startswith(('t2i_cli.commands.', 'rich.logging', 'pydantic'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['t2i_cli.commands.generate', 't2i_cli.commands.options', 't2i_cli.commands.sr']"
    from t2i_cli.cli import COMMANDS

    listed = run("--help").output
    assert all(name in listed for name in COMMANDS)
    for group, command in (("eval-encoder", "train"), ("data", "info"), ("sr", "train")):
        assert run(group, command, "--help").exit_code == 0


def test_the_allocator_keeps_freed_memory_on_glibc():
    import platform

    from t2i_cli.devices import keep_freed_memory

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    assert keep_freed_memory() is True and keep_freed_memory() is True  # once is enough; the second call is a no-op


def test_help_and_data_info_do_not_import_torch(flowers_h5):
    """Seconds of torch import would be felt on every --help: a fresh interpreter must not load it."""
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from t2i_cli.cli import app\n"
        "for args in (['--help'], ['train', '--help'], ['data', 'info', sys.argv[1]]):\n"
        "    result = CliRunner().invoke(app, args)\n"
        "    assert result.exit_code == 0, result.output\n"
        "print(sorted(name for name in ('torch', 'transformers') if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe, str(flowers_h5)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_convert_info_embed_through_the_cli(tmp_path, tiny_bert_dir):
    out = tmp_path / "flowers.h5"
    result = run("data", "convert", OXFORD_MINI, out, "--quiet")
    assert result.exit_code == 0, result.output
    assert "train 9, valid 3, test 3 images, 150 captions" in result.output

    info = json.loads(run("data", "info", out, "--json").output)
    assert info["encoder"]["dim"] == 384 and info["splits"]["test"]["captions"] == 30

    table = run("data", "info", out)
    assert table.exit_code == 0 and "all-MiniLM-L6-v2 (384-d" in table.output and "valid" in table.output

    result = run("data", "embed", out, "--encoder", f"hf:{tiny_bert_dir}", "--quiet")
    assert result.exit_code == 0, result.output
    assert json.loads(run("data", "info", out, "--json").output)["encoder"]["dim"] == 32
    # The library says what is wrong; the CLI adds the flag that changes it.
    assert_one_line_error(run("data", "convert", OXFORD_MINI, out, "--quiet"), "already exists, and replacing it was not asked for (--force)")


def test_library_errors_get_the_flags_of_their_arguments():
    assert with_flags("too few", "num_images") == "too few (-n)"
    assert with_flags("taken", ("resume", "out")) == "taken (--resume / --out)"
    assert with_flags("plain", None) == with_flags("plain", "no_such_argument") == "plain"
    assert with_flags("no encoder", "encoder", available={"--checkpoint", "--port"}) == "no encoder"  # t2i demo has no --encoder
    wrapped = ("Caught T2IError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
               '  File "x.py", line 1, in f\nt2i_cli.errors.T2IError: d.h5: train/a does not decode')
    assert _one_line(wrapped) == "d.h5: train/a does not decode" and _one_line("plain") == "plain"


def test_cli_errors_are_one_line(tmp_path):
    assert_one_line_error(run("data", "info", tmp_path / "missing.h5"), "does not exist")
    (tmp_path / "junk.h5").write_text("junk")
    assert_one_line_error(run("data", "info", tmp_path / "junk.h5"), "not a readable HDF5 file")
    assert_one_line_error(run("data", "embed", tmp_path / "junk.h5", "--quiet"), "not a readable HDF5 file")
    assert_one_line_error(run("data", "convert", tmp_path / "nowhere", tmp_path / "o.h5"), "does not exist")
    assert_one_line_error(
        run("data", "convert", OXFORD_MINI, tmp_path / "o.h5", "--encoder", "clip", "--quiet"), "unknown encoder"
    )
    assert_one_line_error(run("data", "convert", OXFORD_MINI, tmp_path / "o.h5", "--device", "cuda", "--quiet"), "cuda")
    (tmp_path / "keep.h5").write_text("keep me")
    assert_one_line_error(run("data", "convert", OXFORD_MINI, tmp_path / "keep.h5"), "--force")
    assert (tmp_path / "keep.h5").read_text() == "keep me"


@pytest.mark.parametrize("bad", ["--embedding-dtype=int8", "--batch-size=0"])
def test_invalid_option_values_are_usage_errors(tmp_path, bad):
    result = run("data", "convert", OXFORD_MINI, tmp_path / "o.h5", bad)
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_skipped_items_are_reported(tmp_path):
    source = tmp_path / "release"
    shutil.copytree(OXFORD_MINI, source)
    (source / "jpg" / "image_05087.jpg").write_bytes(b"broken")
    result = run("data", "convert", source, tmp_path / "o.h5", "--quiet")
    assert result.exit_code == 0
    assert "skipped 1 item:" in result.output and "image_05087.jpg" in result.output
    assert "not an image format PIL can read" in result.output and "BytesIO" not in result.output
    assert_one_line_error(run("data", "convert", source / "testclasses.txt", tmp_path / "p.h5"),
                          "testclasses.txt is a file; give the folder that holds the images and captions")


def test_verbose_shows_what_was_loaded(tiny_run):
    quiet = run("generate", "pink petals", "-c", tiny_run, "--out", tiny_run.parent / "quiet.png")
    verbose = run("-v", "generate", "pink petals", "-c", tiny_run, "--out", tiny_run.parent / "verbose.png")
    assert quiet.exit_code == verbose.exit_code == 0
    assert "DEBUG" not in quiet.output and "caption encoder" in verbose.output and "loaded in" in verbose.output
    one = run("generate", "pink petals", "-c", tiny_run, "--out", tiny_run.parent / "one")
    assert one.exit_code == 0 and "wrote 1 image to" in one.output
