"""LatentScoreModule: the second stage of a latent diffusion model, an epsilon network trained on
a frozen autoencoder's scaled latents, exported with the autoencoder as one local diffusers
directory that :class:`~equireg_lit.diffusion.LatentDiffusionPrior` loads."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import Tensor

from equireg_lit.diffusion.latent import (LATENT_HELP, decode_scaled, encode_scaled, load_autoencoder,
                                         save_latent_pipeline, scaling_factor)
from equireg_lit.diffusion.priors import DiffusionPrior
from equireg_lit.errors import DataError
from equireg_lit.models.score import ScoreModule
from equireg_lit.utils.io import atomic_write_json
from equireg_lit.weights import prior_provenance


def frozen_autoencoder(path: str) -> torch.nn.Module:
    """The autoencoder folder the latent network trains on, frozen; a missing one says how to make it."""
    root = Path(path).expanduser()
    if not (root / "config.json").is_file():
        raise DataError(f"no autoencoder at {root} (config.json missing); train one with "
                        "`equireg fit --config configs/fit/autoencoder_mnist32.yaml` or point to the vae/ "
                        f"(or vqvae/) folder of a latent diffusion directory: {LATENT_HELP}")
    return load_autoencoder(root).requires_grad_(False)


class LatentScoreModule(ScoreModule):
    """:class:`ScoreModule` on latents: images are augmented in pixel space, then encoded with the
    frozen autoencoder (its posterior mean times ``scaling_factor``, as the diffusers pipelines
    scale latents); logged samples are decoded.

    Args:
        prior: The latent network (``channels`` = the autoencoder's latent channels,
            ``image_size`` = the latent map's side).
        autoencoder: Local diffusers autoencoder directory (e.g. ``runs/autoencoder_mnist32/vae``).
        export_dir: At the end of fit write the latent diffusion directory here (``vae/``,
            ``unet/`` with the EMA weights, ``scheduler/``, ``provenance.json``).
        **kwargs: :class:`ScoreModule`'s settings (``lr``, ``ema_decay``, ``augment_group``, ...).
    """

    latent = True
    export_setting = "export_dir"

    def __init__(self, prior: DiffusionPrior, autoencoder: str, export_dir: str | None = None, **kwargs):
        super().__init__(prior, export_path=export_dir, **kwargs)
        self.autoencoder = frozen_autoencoder(autoencoder)
        self.scaling_factor = scaling_factor(self.autoencoder)

    def train(self, mode: bool = True):
        super().train(mode)
        self.autoencoder.eval()  # frozen: never in training mode
        return self

    @torch.no_grad()
    def to_training_space(self, images: Tensor) -> Tensor:
        return encode_scaled(self.autoencoder, images, self.scaling_factor)

    @torch.no_grad()
    def from_training_space(self, z: Tensor) -> Tensor:
        return decode_scaled(self.autoencoder, z, self.scaling_factor)

    def export(self, path: str | Path, config_text: str | None = None) -> None:
        """Write the latent diffusion directory with the EMA network and provenance."""
        from diffusers import DDPMScheduler

        schedule = self.ema.schedule
        scheduler = DDPMScheduler(num_train_timesteps=schedule.num_train_timesteps, beta_schedule=schedule.name,
                                  beta_start=float(schedule.betas[0]) if schedule.name == "linear" else 1e-4,
                                  beta_end=float(schedule.betas[-1]) if schedule.name == "linear" else 0.02)
        save_latent_pipeline(path, self.autoencoder, getattr(self.ema, "net", self.ema), scheduler)
        val = self.trainer.callback_metrics.get("val/loss")
        hparams = {k: v for k, v in self.hparams.items() if k != "prior"}
        atomic_write_json(Path(path) / "provenance.json", prior_provenance(
            self.ema, hparams, epochs=self.current_epoch, global_steps=self.global_step,
            wall_time_seconds=round(time.time() - self._fit_start, 1),
            final_val_loss_ema=None if val is None else float(val), config_yaml=config_text,
            scaling_factor=self.scaling_factor,
        ))
