"""ScoreModule: train or fine-tune an epsilon-prediction prior, with EMA and group augmentation."""

from __future__ import annotations

import copy
import math
import time
import warnings
from pathlib import Path
from typing import Literal

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor

from equireg_lit.diffusion.priors import DiffusionPrior
from equireg_lit.errors import ConfigError, check_range
from equireg_lit.regularizer.groups import GROUP_NAMES, Group, get_group
from equireg_lit.rng import draw_generators, training_batch_generator, validation_batch_generator
from equireg_lit.solvers.dps import DPS
from equireg_lit.utils.io import run_config_text
from equireg_lit.weights import SHIPPED_DIR, load_checked, load_state_dict_file, prior_provenance, save_weights


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * model`` for parameters; buffers are copied."""
    for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
        pe.lerp_(pm.detach(), 1.0 - decay)
    for be, bm in zip(ema.buffers(), model.buffers(), strict=True):
        be.copy_(bm)


def check_export(trainer: pl.Trainer, export_path: str | Path | None, allow_untrained: bool,
                 setting: str = "export_path") -> None:
    """Refuse a fit whose export would be wasted or would replace shipped weights, before it trains.

    Args:
        trainer: The fit's trainer (its ``max_epochs`` / ``max_steps``).
        export_path: Where the fit writes its weights (a file or a directory), or None.
        allow_untrained: Export even when the fit runs no training step.
        setting: The model setting that holds ``export_path`` (named in the error).
    """
    if not export_path:
        return
    if not allow_untrained and (trainer.max_epochs == 0 or trainer.max_steps == 0):
        raise ConfigError(
            f"fit with trainer.max_epochs {trainer.max_epochs} / max_steps {trainer.max_steps} trains nothing but would "
            f"export to {export_path}; train at least one step, or set model.init_args.allow_untrained true"
        )
    # The fit configs that produced the shipped weights export into the package (so a checkout
    # without them regenerates them); rerunning one must not silently change what every config
    # naming those weights samples with.
    target = Path(export_path).resolve()
    if target.exists() and target.is_relative_to(SHIPPED_DIR):
        raise ConfigError(
            f"model.init_args.{setting} {export_path} would replace weights shipped with equireg-lit; export "
            f"elsewhere (--model.init_args.{setting} runs/<run>/{target.name}), or delete {target} first to "
            "regenerate it"
        )


def augmentation_group(augment_group: str | None) -> Group | None:
    """The group a training augmentation setting names (None: no augmentation), or a named error."""
    if not augment_group:
        return None
    if augment_group not in GROUP_NAMES:
        raise ConfigError(f"unknown augment_group {augment_group!r}; valid: {', '.join(GROUP_NAMES)}")
    return get_group(augment_group)


def augment_batch(x: Tensor, group: Group | None, prob: float, generator: torch.Generator | None = None) -> Tensor:
    """Each image of ``x`` transformed by a random element of ``group`` with probability ``prob``
    (``x`` itself when ``group`` is None)."""
    if group is None:
        return x
    group.check_acts_on(x.shape)
    out = x.clone()
    for i in range(x.shape[0]):
        if torch.rand((), generator=generator) < prob:
            out[i] = group.act(group.sample(generator), x[i])
    return out


def warmup_cosine(total_steps: int, warmup_steps: int, schedule: Literal["cosine", "constant"] = "cosine"):
    """The learning-rate factor by step: linear warm-up, then cosine decay to 0 at ``total_steps``
    (or constant)."""
    total = max(total_steps, 1)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * min((step - warmup_steps) / max(total - warmup_steps, 1), 1.0)))

    return factor


# The EMA copy is in eval mode on purpose; Lightning's fit-start warning about it is noise here.
warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start of training.*")


class ScoreModule(pl.LightningModule):
    """Epsilon-prediction training ``E || eps - eps_theta(sqrt(abar) x0 + sqrt(1-abar) eps, t) ||^2``.

    Args:
        prior: The network to train (built from sizes with ``random_init: true`` or loaded
            from weights to fine-tune).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        lr_schedule: ``cosine`` decay to 0 over training, or ``constant``.
        warmup_steps: Linear warm-up steps.
        ema_decay: EMA decay of the weights used for validation, sampling and export.
        augment_group: Group whose random elements augment the training images (e.g. ``hflip``,
            ``d4``), or None. Networks trained with augmentation become approximately
            equivariant on the data, which EquiReg relies on when the network is used as f.
        augment_prob: Probability that a training image is transformed.
        sample_every_n_epochs: Log a grid of unconditional EMA samples every N epochs (0 = never).
        num_sample_images: Images in that grid.
        sample_steps: DDIM steps for that grid (cheap reduced-step sampler).
        export_path: Write the EMA weights here (``.safetensors``) with a provenance ``.json``
            at the end of fit.
        allow_untrained: Export even when fit runs no training step (``max_epochs: 0``); off by
            default, so random weights are never exported as if trained.
        ema_weights: Start the EMA from these weights (a file of the network's state dict, e.g.
            exported with a training snapshot) instead of from the prior's; for continuing a run
            from weights when its Lightning checkpoint is not at hand.
        seed: Seed of the training noise (per batch and process: ``rng.training_batch_generator``)
            and of the fixed validation noise; recorded in the provenance.
    """

    latent = False  # trains on images (LatentScoreModule: on an autoencoder's latents)
    export_setting = "export_path"  # the setting users give the export target in (named in errors)

    def __init__(
        self,
        prior: DiffusionPrior,
        lr: float = 2e-4,
        weight_decay: float = 0.0,
        lr_schedule: Literal["cosine", "constant"] = "cosine",
        warmup_steps: int = 200,
        ema_decay: float = 0.999,
        augment_group: str | None = None,
        augment_prob: float = 0.5,
        sample_every_n_epochs: int = 5,
        num_sample_images: int = 16,
        sample_steps: int = 50,
        export_path: str | None = None,
        allow_untrained: bool = False,
        ema_weights: str | None = None,
        seed: int = 0,
    ):
        super().__init__()
        check_range("lr", lr, 0.0, low_open=True)
        check_range("ema_decay", ema_decay, 0.0, 1.0)
        check_range("augment_prob", augment_prob, 0.0, 1.0)
        if warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be >= 0, got {warmup_steps}")
        self.group = augmentation_group(augment_group)
        self.save_hyperparameters(ignore=["prior"])
        self.prior = prior
        self.ema = copy.deepcopy(prior).requires_grad_(False).eval()
        if ema_weights is not None:
            net = getattr(self.ema, "net", self.ema)
            load_checked(net, load_state_dict_file(ema_weights), ema_weights)
        self.export_path = export_path
        self._fit_start = 0.0

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.prior.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        factor = warmup_cosine(int(self.trainer.estimated_stepping_batches), self.hparams.warmup_steps,
                               self.hparams.lr_schedule)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def augment(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return augment_batch(x, self.group, self.hparams.augment_prob, generator)

    def diffusion_loss(self, net: DiffusionPrior, x0: Tensor, generator: torch.Generator | None = None) -> Tensor:
        T = net.schedule.num_train_timesteps
        t = torch.randint(T, (x0.shape[0],), generator=generator).to(x0.device)
        eps = torch.randn(x0.shape, generator=generator).to(x0)
        x_t = net.schedule.add_noise(x0, eps, t)
        return F.mse_loss(net(x_t, t), eps)

    def on_fit_start(self) -> None:
        self._fit_start = time.time()
        check_export(self.trainer, self.export_path, self.hparams.allow_untrained, self.export_setting)

    def to_training_space(self, images: Tensor) -> Tensor:
        """What the network is trained on: the images themselves (latents in :class:`LatentScoreModule`)."""
        return images

    def from_training_space(self, x: Tensor) -> Tensor:
        """Samples of the network as images (decoded latents in :class:`LatentScoreModule`)."""
        return x

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        g = training_batch_generator(self.hparams.seed, self.current_epoch, batch_idx, self.global_rank)
        x0 = self.to_training_space(self.augment(batch["image"], g))
        if batch_idx == 0 and self.current_epoch == 0:
            self.prior.check_input(x0.shape, what="training batch")
        loss = self.diffusion_loss(self.prior, x0, generator=g)
        self.log("train/loss", loss, prog_bar=True, batch_size=x0.shape[0])
        return loss

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)
        # The EMA follows each step here, not in on_train_batch_end: that hook runs after the
        # callbacks', so a step checkpoint (ModelCheckpoint every_n_train_steps) would miss it.
        # Bias-corrected warm-up of the EMA decay, so early EMA weights are not dominated by init;
        # n counts the step just taken (Lightning adds it to global_step after this hook).
        n = self.global_step + 1
        ema_update(self.ema, self.prior, min(self.hparams.ema_decay, (1 + n) / (10 + n)))

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        # Fixed noise per batch so validation losses are comparable across epochs.
        g = validation_batch_generator(self.hparams.seed, batch_idx)
        loss = self.diffusion_loss(self.ema, self.to_training_space(batch["image"]), generator=g)
        self.log("val/loss", loss, prog_bar=True, batch_size=batch["image"].shape[0], sync_dist=True)

    def sample(self, n: int, steps: int, seed: int = 0) -> Tensor:
        """Unconditional EMA samples (images) with a DDIM subsequence of ``steps`` steps."""
        gens = draw_generators(seed, 0, n)
        size = self.ema.image_size or 32
        out = DPS(num_steps=steps, eta=0.0, clip_x0=not self.latent).sample(self.ema, (n, self.ema.channels, size, size), gens)
        with torch.no_grad():
            return self.from_training_space(out.x)

    def on_validation_epoch_end(self) -> None:
        every = self.hparams.sample_every_n_epochs
        if self.trainer.sanity_checking or not every or (self.current_epoch + 1) % every:
            return
        logger = self.logger
        if logger is None or not hasattr(logger.experiment, "add_image"):
            return
        import torchvision

        x = self.sample(self.hparams.num_sample_images, self.hparams.sample_steps)
        if x.shape[1] not in (1, 3):  # e.g. joint (a, u) fields: one grid row block per channel
            x = x.transpose(0, 1).reshape(-1, 1, *x.shape[-2:])
        grid = torchvision.utils.make_grid((x.clamp(-1, 1) + 1) / 2, nrow=int(math.sqrt(self.hparams.num_sample_images)))
        logger.experiment.add_image("samples/ema", grid, self.global_step)

    def on_fit_end(self) -> None:
        if not self.export_path:
            return
        config_text = run_config_text(self.trainer.log_dir)  # a collective under DDP: every process asks
        if self.trainer.is_global_zero:
            self.export(self.export_path, config_text)
        self.trainer.strategy.barrier("score_export")

    def export(self, path: str | Path, config_text: str | None = None) -> None:
        """Write EMA weights (safetensors) and a provenance JSON next to them."""
        val = self.trainer.callback_metrics.get("val/loss")
        prov = prior_provenance(
            self.ema, dict(self.hparams),
            epochs=self.current_epoch,  # completed epochs
            global_steps=self.global_step,
            wall_time_seconds=round(time.time() - self._fit_start, 1),
            final_val_loss_ema=None if val is None else float(val),
            config_yaml=config_text,
        )
        save_weights(getattr(self.ema, "net", self.ema), path, prov)
