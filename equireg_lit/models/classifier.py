"""DigitClassifier: trains the digit CNN that measures sample quality and digit survival."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor

from equireg_lit.metrics.digits import DigitCNN
from equireg_lit.models.score import check_export
from equireg_lit.weights import save_weights


class DigitClassifier(pl.LightningModule):
    """Cross-entropy training of :class:`DigitCNN` with small random shifts as augmentation.

    Args:
        lr: Adam learning rate (cosine-decayed over training).
        max_shift: Largest random translation in pixels applied to training images.
        export_path: Write the weights (``.safetensors``) and a provenance ``.json`` at the end of fit.
    """

    def __init__(self, lr: float = 2e-3, max_shift: int = 2, export_path: str | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.net = DigitCNN()

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.net.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(int(self.trainer.estimated_stepping_batches), 1))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def _shift(self, x: Tensor) -> Tensor:
        s = self.hparams.max_shift
        if s == 0:
            return x
        dh, dw = torch.randint(-s, s + 1, (2,)).tolist()
        return torch.roll(x, shifts=(dh, dw), dims=(-2, -1))  # borders are background (-1)

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        loss = F.cross_entropy(self.net(self._shift(batch["image"])), batch["label"])
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def _eval(self, batch: dict, stage: str) -> None:
        logits = self.net(batch["image"])
        n = batch["image"].shape[0]
        self.log(f"{stage}/loss", F.cross_entropy(logits, batch["label"]), batch_size=n)
        self.log(f"{stage}/accuracy", (logits.argmax(-1) == batch["label"]).float().mean(), prog_bar=True, batch_size=n)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval(batch, "test")

    def on_fit_start(self) -> None:
        check_export(self.trainer, self.hparams.export_path, allow_untrained=False)

    def on_fit_end(self) -> None:
        if not self.hparams.export_path or not self.trainer.is_global_zero:
            return
        val = self.trainer.callback_metrics.get("val/accuracy")
        save_weights(self.net, self.hparams.export_path, {
            "kind": "DigitCNN", "hparams": dict(self.hparams), "epochs": self.current_epoch,
            "final_val_accuracy": None if val is None else float(val),
        })
