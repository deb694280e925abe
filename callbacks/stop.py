"""Fit stopped by SIGTERM / SIGINT: save a checkpoint to resume from."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException


class CheckpointOnStop(Callback):
    """When fit is stopped by a signal, write ``checkpoints/interrupted.ckpt`` in the run folder
    (every process has stopped at the same batch; Lightning syncs that), so
    ``equireg fit ... --ckpt_path <it>`` continues where the run stopped. The ``equireg`` CLI adds
    this callback to every fit.
    """

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        path = Path(trainer.log_dir or trainer.default_root_dir) / "checkpoints" / "interrupted.ckpt"
        trainer.save_checkpoint(path, weights_only=False)  # resumable: optimizer and loop state too
        rank_zero_info(f"Stopped by a signal at epoch {trainer.current_epoch}, step {trainer.global_step}; "
                       f"checkpoint: {path} (resume with --ckpt_path {path})")
