"""AutoencoderModule: train the first stage of a latent diffusion model (a diffusers
``AutoencoderKL``) and export it in the layout :class:`~equireg_lit.diffusion.LatentDiffusionPrior`
loads."""

from __future__ import annotations

import time
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor

from equireg_lit.errors import check_range
from equireg_lit.metrics import batch_psnr
from equireg_lit.models.score import augment_batch, augmentation_group, check_export, warmup_cosine
from equireg_lit.rng import training_batch_generator
from equireg_lit.utils.io import atomic_write_json, run_config_text


class AutoencoderModule(pl.LightningModule):
    """``L1 + L2`` reconstruction plus ``kl_weight * KL`` (latent diffusion's KL-regularized
    autoencoder, without its adversarial and perceptual terms, which 32x32 digits do not need).

    Args:
        in_channels: Image channels.
        latent_channels: Channels of the latent map.
        block_out_channels: Channels per resolution; each block after the first halves the size
            (three blocks: 32x32 -> 8x8).
        layers_per_block: ResNet layers per block.
        norm_num_groups: GroupNorm groups.
        kl_weight: Weight of the KL term (latent diffusion's KL-f8 uses 1e-6: a nearly
            deterministic code whose scale is then normalized by ``scaling_factor``).
        lr: AdamW learning rate.
        warmup_steps: Linear warm-up steps before the cosine decay.
        export_dir: At the end of fit write ``<export_dir>/vae`` (diffusers ``save_pretrained``,
            with ``scaling_factor`` set to one over the latents' standard deviation on validation
            images, as latent diffusion sets it) and ``<export_dir>/vae_provenance.json``.
        allow_untrained: Export even when fit runs no training step.
        augment_group: Group whose random elements augment the training images (e.g. ``hflip``
            for flip-symmetric data, so that decoding a flipped latent comes close to flipping
            the decoded image, which EquiReg on the decoder relies on), or None.
        augment_prob: Probability that a training image is transformed.
        seed: Seed of the augmentations (per batch and process), recorded in the provenance.
    """

    def __init__(
        self,
        in_channels: int = 1,
        latent_channels: int = 4,
        block_out_channels: tuple[int, ...] = (32, 64, 64),
        layers_per_block: int = 1,
        norm_num_groups: int = 8,
        kl_weight: float = 1e-6,
        lr: float = 1e-3,
        warmup_steps: int = 200,
        export_dir: str | None = None,
        allow_untrained: bool = False,
        augment_group: str | None = None,
        augment_prob: float = 0.5,
        seed: int = 0,
    ):
        from diffusers import AutoencoderKL

        super().__init__()
        check_range("kl_weight", kl_weight, 0.0)
        check_range("lr", lr, 0.0, low_open=True)
        check_range("augment_prob", augment_prob, 0.0, 1.0)
        self.group = augmentation_group(augment_group)
        self.save_hyperparameters()
        n = len(block_out_channels)
        self.autoencoder = AutoencoderKL(
            in_channels=in_channels, out_channels=in_channels, latent_channels=latent_channels,
            block_out_channels=tuple(block_out_channels), layers_per_block=layers_per_block,
            norm_num_groups=norm_num_groups, down_block_types=("DownEncoderBlock2D",) * n,
            up_block_types=("UpDecoderBlock2D",) * n,
        )
        self._fit_start = 0.0

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.autoencoder.parameters(), lr=self.hparams.lr)
        factor = warmup_cosine(int(self.trainer.estimated_stepping_batches), self.hparams.warmup_steps)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def losses(self, x: Tensor, sample: bool) -> tuple[Tensor, Tensor, Tensor]:
        """Reconstruction, L1 + L2 loss and mean KL of a batch."""
        posterior = self.autoencoder.encode(x).latent_dist
        z = posterior.sample() if sample else posterior.mode()
        recon = self.autoencoder.decode(z).sample
        kl = posterior.kl().mean()
        return recon, F.l1_loss(recon, x) + F.mse_loss(recon, x), kl

    def on_fit_start(self) -> None:
        self._fit_start = time.time()
        check_export(self.trainer, self.hparams.export_dir, self.hparams.allow_untrained, setting="export_dir")

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        g = training_batch_generator(self.hparams.seed, self.current_epoch, batch_idx, self.global_rank)
        _, rec, kl = self.losses(augment_batch(batch["image"], self.group, self.hparams.augment_prob, g), sample=True)
        loss = rec + self.hparams.kl_weight * kl
        self.log_dict({"train/loss": loss, "train/kl": kl}, prog_bar=True, batch_size=batch["image"].shape[0])
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        x = batch["image"]
        recon, rec, kl = self.losses(x, sample=False)
        self.log_dict({"val/loss": rec + self.hparams.kl_weight * kl, "val/psnr": batch_psnr(recon, x).mean()},
                      prog_bar=True, batch_size=x.shape[0], sync_dist=True)

    @torch.no_grad()
    def latent_std(self, max_batches: int = 20) -> float:
        """Standard deviation of the (unscaled) latents of the first validation batches."""
        loader = self.trainer.datamodule.val_dataloader()
        zs = []
        for i, batch in enumerate(loader):
            if i == max_batches:
                break
            zs.append(self.autoencoder.encode(batch["image"].to(self.device)).latent_dist.mode().flatten())
        return float(torch.cat(zs).std())

    def on_fit_end(self) -> None:
        if not self.hparams.export_dir:
            return
        config_text = run_config_text(self.trainer.log_dir)  # a collective under DDP: every process asks
        if self.trainer.is_global_zero:
            self.export(self.hparams.export_dir, config_text)
        self.trainer.strategy.barrier("autoencoder_export")

    def export(self, export_dir: str | Path, config_text: str | None = None) -> Path:
        """Write ``<export_dir>/vae`` with its scaling factor and the provenance next to it."""
        import equireg_lit

        export_dir = Path(export_dir)
        std = self.latent_std()
        self.autoencoder.register_to_config(scaling_factor=1.0 / std)
        self.autoencoder.save_pretrained(str(export_dir / "vae"))
        metrics = self.trainer.callback_metrics
        atomic_write_json(export_dir / "vae_provenance.json", {
            "kind": "AutoencoderKL", "hparams": dict(self.hparams), "seed": self.hparams.seed,
            "epochs": self.current_epoch, "global_steps": self.global_step,
            "wall_time_seconds": round(time.time() - self._fit_start, 1),
            "final_val_psnr": None if "val/psnr" not in metrics else float(metrics["val/psnr"]),
            "latent_std": std, "scaling_factor": 1.0 / std, "config_yaml": config_text,
            "torch_version": torch.__version__, "package_version": equireg_lit.__version__,
        })
        return export_dir / "vae"
