"""Run by tests/test_distributed.py under torchrun: a tiny training run, then each rank's weights.

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/distributed_worker.py DATA RUN OUT [ARCH]
"""

import sys
from pathlib import Path

from safetensors.torch import save_file

from t2i_cli.checkpoint import unwrapped_state
from t2i_cli.config import ModelConfig, TrainConfig, arch_defaults
from t2i_cli.training.run import train

data, run_dir, out = sys.argv[1:4]
arch = sys.argv[4] if len(sys.argv) > 4 else "dcgan"
model_preset, train_preset = arch_defaults(arch)
settings = {**train_preset, "batch_size": 2, "diffaug": "translation,cutout" if arch == "dfgan" else ""}
config = TrainConfig(data=data, epochs=2, log_every=1, save_every=1, seed=0, device="cpu", **settings)
trainer = train(config, ModelConfig(arch=arch, ngf=8, ndf=8), Path(run_dir), progress=False)
rank = trainer.group.rank
state = {f"G.{k}": v for k, v in unwrapped_state(trainer.G).items()}
state.update({f"D.{k}": v for k, v in unwrapped_state(trainer.D).items()})
state.update({f"G_ema.{k}": v for k, v in unwrapped_state(trainer.G_ema).items()})
save_file(state, str(Path(out) / f"rank{rank}.safetensors"))
print(f"rank {rank} of {trainer.group.world_size}: {trainer.state.step} steps, {len(trainer.loader)} batches/epoch")
