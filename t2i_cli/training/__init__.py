"""GAN training: pure loss functions, the trainer, checkpoints of runs."""
