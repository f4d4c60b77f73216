"""The GAN trainer: handed its models, data and config; reports through callbacks.

One step (:meth:`Trainer.train_step`) for every GAN type: a D step whose forward pass and loss are
the type's (:mod:`t2i_cli.training.objectives`: GAN-INT-CLS's cross-entropy, the Wasserstein
critic, DF-GAN's hinge with its matching-aware penalty), then, when due, a G step: fool D on
(G(z, caption), caption); with INT also on captions interpolated between pairs of the batch; plus
optional feature matching (feature_matching_coef), L1 to the real image (l1_coef), the
conditioning-augmentation KL term and the caption-matching loss (match_coef). With ``diffaug``,
every image D sees, real or generated, is augmented first (DiffAugment).

An EMA copy of G is kept for sampling. Checkpoints are written at epoch ends, atomically, and only
after the losses since the last one are checked finite.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import torch

from t2i_cli.checkpoint import (
    RunFolder,
    complete_checkpoints,
    load_training_state,
    load_weights,
    mark_best,
    mark_latest,
    read_best,
    read_checkpoint,
    unwrapped,
    unwrapped_state,
    write_checkpoint,
)
from t2i_cli.config import ModelConfig, TrainConfig
from t2i_cli.seeds import mixed_seed
from t2i_cli.devices import amp_dtype, use_channels_last
from t2i_cli.errors import T2IError
from t2i_cli.grid import captioned_grid, save_png, to_pil
from t2i_cli.models.pyramid import Images, finest, image_pyramid
from t2i_cli.training import losses
from t2i_cli.training.diffaug import diff_augment
from t2i_cli.training.distributed import ProcessGroup
from t2i_cli.training.objectives import objective_for
from t2i_cli.text.encoder import EncoderIdentity

if TYPE_CHECKING:
    from t2i_cli.data.batches import Batch

log = logging.getLogger(__name__)

SAMPLE_NOISES = 8


class TrainingDiverged(T2IError):
    pass


class Callback(Protocol):
    def on_train_start(self, trainer: "Trainer") -> None: ...
    def on_log(self, trainer: "Trainer", metrics: dict) -> None: ...
    def on_epoch_end(self, trainer: "Trainer", epoch: int, sample: Path | None) -> None: ...
    def on_evaluation(self, trainer: "Trainer", epoch: int, figures: dict) -> None: ...
    def on_train_end(self, trainer: "Trainer") -> None: ...


@dataclass
class SampleSet:
    """Fixed captions (with their embeddings) drawn beside each row of the per-epoch grid."""

    captions: list[str]
    embeddings: torch.Tensor  # (R, D)


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps of D
    generator_steps: int = 0
    critic_steps: int = 0  # WGAN: critic steps since G last stepped
    # Seconds spent in training epochs, summed over sessions: the x axis of equal-budget
    # comparisons. A measurement, not part of the run's identity (resumed == straight runs).
    train_seconds: float = field(default=0.0, compare=False)


class Trainer:
    def __init__(
        self,
        *,
        generator: torch.nn.Module,
        discriminator: torch.nn.Module,
        loader: torch.utils.data.DataLoader,
        loader_generator: torch.Generator,
        config: TrainConfig,
        model_config: ModelConfig,
        run_dir: Path,
        device: torch.device,
        encoder: EncoderIdentity | None,
        samples: SampleSet,
        callbacks: list[Callback] = (),
        group: ProcessGroup = ProcessGroup(),
        matcher: torch.nn.Module | None = None,
        data_record: dict | None = None,
        evaluator=None,
    ):
        self.config, self.model_config = config, model_config
        self.data_record = data_record  # written into every checkpoint: what this run trains on
        self.device = device
        self.group = group
        self.amp_dtype = amp_dtype(config.amp, device)
        memory_format = torch.channels_last if use_channels_last(config.channels_last, device) else torch.contiguous_format
        self.memory_format = memory_format
        generator = generator.to(device, memory_format=memory_format)
        discriminator = discriminator.to(device, memory_format=memory_format)
        self.G_ema = copy.deepcopy(generator).eval().requires_grad_(False)
        # The modules the step calls: DDP-wrapped across processes, compiled on request. The hinge
        # type's D takes a double backward (the penalty) and is run through its parts (features,
        # then scores with own and mismatched captions), neither of which DDP can follow: it stays
        # unwrapped and its gradients are averaged after backward. (With --compile only D's
        # forward() is compiled; its parts run eagerly.)
        self.G = group.wrap(generator, device)
        if config.hinge:
            group.share_parameters(discriminator)
            self.D = discriminator
        else:
            self.D = group.wrap(discriminator, device)
        if config.compile:
            self.G, self.D = torch.compile(self.G), torch.compile(self.D)
        self.loader, self.loader_generator = loader, loader_generator
        self.run_dir = Path(run_dir)
        self.encoder = encoder
        self.samples = samples
        self.callbacks = list(callbacks)
        self.state = TrainState()
        # Fused Adam: one kernel for all parameters instead of a Python loop over them (the loop
        # was ~3 % of a CPU step in a profile; more on a GPU, where each op is a launch).
        fused = True if device.type in ("cpu", "cuda") else None  # None: torch's default elsewhere
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=config.lr, betas=config.betas, fused=fused)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=config.discriminator_lr, betas=config.betas, fused=fused)
        self.augment_policy = config.diffaug_policy()
        self.objective = objective_for(config, conditional=model_config.conditional)
        # The frozen caption-matching image encoder (training/matching.py), with match_coef > 0.
        self.matcher = matcher.to(device) if matcher is not None else None
        if config.match_coef > 0 and matcher is None:
            raise T2IError("match_coef > 0 needs the caption-matching image encoder")
        sample_noise = torch.Generator().manual_seed(config.seed)
        self.sample_noise = torch.randn(SAMPLE_NOISES, model_config.noise_dim, generator=sample_noise)
        self._diverged = torch.zeros((), dtype=torch.bool, device=device)
        # ``evaluator(generator) -> figures`` every ``eval_every`` epochs (rank 0 only); the
        # lowest FID so far names the run's best checkpoint.
        self.evaluator = evaluator
        self.best_fid = float("inf")

    # --- setup ----------------------------------------------------------------------------------
    def load_pretrained(self, generator: str = "", discriminator: str = "") -> None:
        """Start from other runs' weights, like the reference's --pre_trained_gen/--pre_trained_disc."""
        for path, module, what in ((generator, self.G, "generator"), (discriminator, self.D, "discriminator")):
            if not path:
                continue
            source = Path(path)
            if source.is_dir():
                folder = read_checkpoint(source).path
                source = folder / ("training/discriminator.safetensors" if what == "discriminator" else "generator.safetensors")
            load_weights(source, module, what=f"pretrained {what}")
        self.G_ema.load_state_dict(unwrapped(self.G).state_dict())

    def resume(self, run_dir: Path) -> None:
        """Restore models, EMA, optimizers, counters and RNG from the run's latest checkpoint."""
        info = read_checkpoint(run_dir)
        if not info.has_training_state:
            raise T2IError(f"checkpoint {info.path} holds no training state to resume from")
        if info.model != self.model_config:
            raise T2IError(f"cannot resume {info.path}: its model config differs from this run's")
        if info.encoder != self.encoder:
            raise T2IError(f"cannot resume {info.path}: it was trained with encoder {info.encoder}, the data has {self.encoder}")
        load_weights(info.path / "training" / "generator.safetensors", self.G, what="generator")
        load_weights(info.path / "training" / "discriminator.safetensors", self.D, what="discriminator")
        load_weights(info.path / "generator.safetensors", self.G_ema, what="EMA generator")
        state = load_training_state(info.path)
        self.opt_G.load_state_dict(state["optimizer_g"])
        self.opt_D.load_state_dict(state["optimizer_d"])
        self.state = TrainState(**state["counters"])
        torch.set_rng_state(state["torch_rng"])
        self.loader_generator.set_state(state["loader_rng"])
        if self.device.type == "cuda" and state.get("cuda_rng"):
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        best = read_best(run_dir)
        if best is not None and isinstance(best.get("fid"), (int, float)):
            self.best_fid = float(best["fid"])
        log.info("resumed from %s after epoch %d", info.path, self.state.epoch)

    # --- the step -------------------------------------------------------------------------------
    def autocast(self):
        if self.amp_dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _generator_due(self) -> bool:
        """Whether G steps after the D step just taken: not during D's warm-up (``d_warmup_steps``);
        WGAN: once per ``diter`` critic steps, 100 during warm-up (Arjovsky et al.)."""
        if self.state.step <= self.config.d_warmup_steps:
            return False
        if not self.config.wasserstein:
            return True
        g = self.state.generator_steps
        every = 100 if (g < 25 or g % 500 == 0) else self.config.diter
        self.state.critic_steps += 1
        if self.state.critic_steps >= every:
            self.state.critic_steps = 0
            return True
        return False

    def pixels(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(B, 3, S, S)`` (host or device) -> float in [-1, 1] on the device, in the models' layout."""
        images = images.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        return images.float().div_(127.5).sub_(1)

    def for_d(self, images: torch.Tensor) -> Images:
        """Real images as D takes them: with MSG, their average-pooled pyramid, so that they are
        augmented level by level exactly as G's pyramids are (models/pyramid.py)."""
        return image_pyramid(images) if self.model_config.msg else images

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        """DiffAugment with the run's policy; the images themselves without one."""
        return diff_augment(images, self.augment_policy)

    def train_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One D step and, when due, one G step; what differs by GAN type is ``self.objective``'s."""
        objective = self.objective
        real = self.pixels(batch.image)  # (B, 3, S, S) in [-1, 1]
        embedding = batch.embedding.to(self.device, non_blocking=True).float() if self.model_config.conditional else None
        noise = torch.randn(real.shape[0], self.model_config.noise_dim, device=self.device)

        d_pass = objective.discriminator_pass(self, real, embedding, noise, batch)
        self.opt_D.zero_grad(set_to_none=True)
        d_pass.loss.backward()
        if objective.averages_d_by_hand:
            self.group.average_gradients(self.D)
        self.opt_D.step()
        objective.after_discriminator_step(self)
        stats = d_pass.stats
        stats["d_loss"] = d_pass.loss.detach()
        stats["D(x)"] = objective.confidence(d_pass.real_scores)
        stats["D(G(z))"] = objective.confidence(d_pass.fake_scores)
        self._diverged |= ~torch.isfinite(d_pass.loss.detach())
        self.state.step += 1
        if not self._generator_due():
            return stats

        frozen = objective.freezes_d_for_g
        if frozen:
            self.D.requires_grad_(False)
        try:
            with self.autocast():
                g_loss = self._generator_loss(d_pass, real, embedding, noise, batch, stats)
            self.opt_G.zero_grad(set_to_none=True)
            g_loss.backward()
        finally:
            if frozen:
                self.D.requires_grad_(True)
        self.opt_G.step()
        self._update_ema()
        stats["g_loss"] = g_loss.detach()
        self._diverged |= ~torch.isfinite(g_loss.detach())
        self.state.generator_steps += 1
        return stats

    def _generator_loss(self, d_pass, real: torch.Tensor, embedding: torch.Tensor | None, noise: torch.Tensor,
                        batch: Batch, stats: dict) -> torch.Tensor:
        """G's loss: fool D (the objective's term) on (G(z, caption), caption); with INT also on
        captions interpolated between pairs of the batch, with fresh noise; plus, where the run asks
        for them, feature matching, L1 to the real image, conditioning augmentation's KL term and
        the caption-matching loss."""
        cfg, adversarial = self.config, self.objective.generator_adversarial
        fake_scores, fake_features = self.D(self.augment(d_pass.fake), embedding)
        g_loss, g_stats = adversarial(fake_scores.float())
        stats.update(g_stats)
        if self.model_config.conditional and cfg.interpolate:
            mixed = losses.interpolated_embeddings(embedding, cfg.int_beta)
            int_fake, _ = self.G(torch.randn_like(noise), mixed)
            int_loss, _ = adversarial(self.D(self.augment(int_fake), mixed)[0].float())
            stats["g_int"] = int_loss.detach()
            g_loss = g_loss + int_loss
        if cfg.feature_matching_coef > 0:
            fm, fm_stats = losses.feature_matching(d_pass.real_features.float(), fake_features.float())
            g_loss = g_loss + cfg.feature_matching_coef * fm
            stats.update(fm_stats)
        if cfg.l1_coef > 0:
            l1, l1_stats = losses.l1_to_image(finest(d_pass.fake).float(), real)
            g_loss = g_loss + cfg.l1_coef * l1
            stats.update(l1_stats)
        if d_pass.ca_stats is not None:
            kl, kl_stats = losses.kl_divergence(d_pass.ca_stats[0].float(), d_pass.ca_stats[1].float())
            g_loss = g_loss + cfg.kl_coef * kl
            stats.update(kl_stats)
        if self.matcher is not None:
            labels = batch.class_index.to(self.device)  # -1, no class: no pair left out
            match, match_stats = losses.caption_matching_loss(self.matcher.encode(finest(d_pass.fake)), embedding, labels=labels)
            stats.update(match_stats)
            g_loss = g_loss + cfg.match_coef * match
        return g_loss

    @torch.no_grad()
    def _update_ema(self) -> None:
        # Warm-up: early on the average follows G closely, so the first sample grids show what G
        # has learnt rather than the random initialisation (decay reaches ema_decay after ~10k steps).
        steps = self.state.generator_steps
        decay = self.config.ema_decay
        if not self.config.pretrained_generator:  # a pretrained G's average starts where it is
            decay = min(decay, (1 + steps) / (10 + steps))
        ema_params = list(self.G_ema.parameters())
        torch._foreach_lerp_(ema_params, [p.detach() for p in self.G.parameters()], 1 - decay)
        for ema_buffer, buffer in zip(self.G_ema.buffers(), self.G.buffers()):
            ema_buffer.copy_(buffer)

    # --- the loop -------------------------------------------------------------------------------
    def _check_finite(self) -> None:
        if bool(self._diverged):
            saved = complete_checkpoints(self.run_dir)
            where = (f"The last good checkpoint, {saved[-1].relative_to(self.run_dir)}, is intact: resume from it with a lower "
                     f"learning rate, or change the loss weights" if saved else
                     "No checkpoint was written before it: start again with a lower learning rate, or change the loss weights")
            raise TrainingDiverged(f"a loss became NaN or infinite in epoch {self.state.epoch + 1}; training stopped. {where}")

    def _set_learning_rate(self) -> None:
        factor = self.config.lr_factor(self.state.epoch)
        for optimizer, lr in ((self.opt_G, self.config.lr), (self.opt_D, self.config.discriminator_lr)):
            for group in optimizer.param_groups:
                group["lr"] = lr * factor

    def fit(self) -> None:
        cfg = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for callback in self.callbacks:
            callback.on_train_start(self)
        try:
            while self.state.epoch < cfg.epochs and not self.out_of_time():
                self._train_epoch()
        finally:
            for callback in self.callbacks:
                callback.on_train_end(self)

    def _train_epoch(self) -> None:
        cfg = self.config
        self._set_learning_rate()
        if hasattr(self.loader, "set_epoch"):
            # In-memory batches derive their draws from (seed, epoch, rank); so does the noise here,
            # which makes a resumed run draw what an uninterrupted one would, on every rank.
            self.loader.set_epoch(self.state.epoch)
            torch.manual_seed(mixed_seed(cfg.seed, self.state.epoch, self.group.rank, 2))
        self.G.train()
        self.D.train()
        started, images, pending = time.perf_counter(), 0, []
        for batch in self.loader:
            stats = self.train_step(batch)
            images += len(batch) * self.group.world_size
            pending.append(stats)
            if self.state.step % cfg.log_every == 0:
                self._check_finite()
                self._emit(pending, images / (time.perf_counter() - started))
                pending = []
        self._check_finite()
        if pending:
            self._emit(pending, images / (time.perf_counter() - started))
        # Every rank adds the slowest rank's time, so all take the time-limit decision alike.
        self.state.train_seconds += self.group.maximum(time.perf_counter() - started, self.device)
        self.state.epoch += 1
        last = self.state.epoch == cfg.epochs or self.out_of_time()
        sample = figures = None
        if self.group.is_main:
            sample = self.save_samples() if self.state.epoch % cfg.sample_every == 0 or last else None
            if self.evaluator is not None and (self.state.epoch % cfg.eval_every == 0 or last):
                figures = self.evaluator(self.G_ema)
            if self.state.epoch % cfg.save_every == 0 or last or figures is not None:
                folder = self.save_checkpoint()
                if figures is not None and figures.get("fid", float("inf")) < self.best_fid:
                    self.best_fid = figures["fid"]
                    mark_best(self.run_dir, folder, {"epoch": self.state.epoch, "split": cfg.eval_split, **figures})
        self.group.barrier()  # the other ranks go on (or read the run) once rank 0 has written it
        for callback in self.callbacks:
            callback.on_epoch_end(self, self.state.epoch, sample)
            if figures is not None:
                callback.on_evaluation(self, self.state.epoch, figures)

    def out_of_time(self) -> bool:
        """Whether the run has trained for its time limit (all sessions together)."""
        limit = self.config.time_limit
        return limit > 0 and self.state.train_seconds >= limit * 60

    def _emit(self, pending: list[dict], images_per_second: float) -> None:
        keys = {k for stats in pending for k in stats}
        metrics = {
            k: float(torch.stack([s[k].float() for s in pending if k in s]).mean()) for k in sorted(keys)
        }
        metrics.update(
            epoch=self.state.epoch + 1, step=self.state.step, lr=self.opt_G.param_groups[0]["lr"],
            images_per_s=round(images_per_second, 1),
        )
        for callback in self.callbacks:
            callback.on_log(self, metrics)

    # --- outputs --------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_images(self) -> torch.Tensor:
        """EMA G on fixed noise x fixed captions: ``(R * N, 3, S, S)``, row-major by caption."""
        rows = len(self.samples.captions) if self.model_config.conditional else 1
        noise = self.sample_noise.to(self.device).repeat(rows, 1)
        embedding = None
        if self.model_config.conditional:
            embedding = self.samples.embeddings.to(self.device).repeat_interleave(SAMPLE_NOISES, 0)
        images, _ = self.G_ema(noise, embedding)
        return images.float().cpu()

    def save_samples(self) -> Path:
        images = to_pil(self.sample_images())
        captions = self.samples.captions if self.model_config.conditional else ["(unconditional)"]
        rows = [(c, images[i * SAMPLE_NOISES : (i + 1) * SAMPLE_NOISES]) for i, c in enumerate(captions)]
        path = RunFolder(self.run_dir).sample_grid(self.state.epoch)
        path.parent.mkdir(parents=True, exist_ok=True)
        return save_png(captioned_grid(rows), path)

    def save_checkpoint(self) -> Path:
        self._check_finite()
        state = {
            "optimizer_g": self.opt_G.state_dict(),
            "optimizer_d": self.opt_D.state_dict(),
            "counters": asdict(self.state),
            "torch_rng": torch.get_rng_state(),
            "loader_rng": self.loader_generator.get_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
        }
        folder = write_checkpoint(
            RunFolder(self.run_dir).checkpoint(self.state.epoch),
            generator_weights=unwrapped_state(self.G_ema),
            model=self.model_config,
            train=self.config,
            encoder=self.encoder,
            epoch=self.state.epoch,
            step=self.state.step,
            train_seconds=self.state.train_seconds,
            data=self.data_record,
            training={"generator": unwrapped_state(self.G), "discriminator": unwrapped_state(self.D), "state": state},
        )
        mark_latest(self.run_dir, folder, keep_every=self.config.keep_every)
        return folder
