"""Data-parallel training: two CPU processes (gloo) launched by torchrun, as a user would."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from t2i_cli.checkpoint import read_checkpoint

pytestmark = pytest.mark.slow  # torchrun starts two interpreters per test

WORKER = Path(__file__).parent / "distributed_worker.py"
ROOT = Path(__file__).parent.parent


def torchrun(*args, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without torch.distributed")
def test_two_processes_train_identical_weights_on_separate_shards(tmp_path, flowers_h5):
    run_dir = tmp_path / "run"
    result = torchrun(WORKER, flowers_h5, run_dir, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    # 9 train images, 2 ranks, batches of 2: each rank takes 2 batches an epoch from its own half.
    assert "rank 0 of 2: 4 steps, 2 batches/epoch" in result.stdout
    assert "rank 1 of 2: 4 steps, 2 batches/epoch" in result.stdout
    rank0, rank1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert rank0.keys() == rank1.keys()
    # Every parameter (and the EMA built from them) is identical; BatchNorm running statistics are
    # per-rank between DDP's broadcasts of rank 0's buffers, and rank 0's are the ones saved.
    running_stats = ("running_mean", "running_var", "num_batches_tracked")
    parameters = [n for n in rank0 if not n.endswith(running_stats)]
    assert len(parameters) > 20
    for name in parameters:
        assert torch.equal(rank0[name], rank1[name]), name

    # Rank 0 alone wrote the checkpoints, and they hold those weights.
    info = read_checkpoint(run_dir)
    assert info.epoch == 2 and info.step == 4
    saved = load_file(info.path / "training" / "generator.safetensors")
    assert all(torch.equal(saved[k], rank0[f"G.{k}"]) for k in saved)
    assert len(list((run_dir / "checkpoints").iterdir())) == 2


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without torch.distributed")
def test_two_processes_train_dfgan_with_its_penalty_and_diffaug(tmp_path, flowers_h5):
    # The hinge type's D is synchronised by averaging gradients after a backward that includes the
    # penalty's double backward: both ranks must still hold identical weights.
    result = torchrun(WORKER, flowers_h5, tmp_path / "run", tmp_path, "dfgan")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rank 1 of 2: 4 steps, 2 batches/epoch" in result.stdout
    rank0, rank1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert rank0.keys() == rank1.keys() and any(k.startswith("D.") for k in rank0)
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    # Rank 0's checkpoint holds those weights.
    info = read_checkpoint(tmp_path / "run")
    assert info.model.arch == "dfgan" and info.step == 4
    first = load_file(info.path / "training" / "discriminator.safetensors")
    assert all(torch.equal(first[k], rank0[f"D.{k}"]) for k in first)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without torch.distributed")
def test_torchrun_cli_resumes_a_run(tmp_path, flowers_h5):
    run_dir = tmp_path / "run"
    common = ("-m", "t2i_cli", "train", "--epochs", 1, "--batch-size", 2, "--device", "cpu", "--quiet")
    result = torchrun(*common, "--data", flowers_h5, "--out", run_dir, "--ngf", 8, "--ndf", 8)
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_checkpoint(run_dir).epoch == 1
    result = torchrun(*common[:3], "--resume", run_dir, "--epochs", 2, "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_checkpoint(run_dir).epoch == 2
