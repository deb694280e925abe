"""Stopping and resuming a fit: a checkpoint on SIGTERM / SIGINT, the global random states in
every checkpoint, and the newest checkpoint of a run folder for ``--ckpt_path last``."""

from __future__ import annotations

import random
import zipfile
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from equireg_lit.datamodules.base import warn_user
from equireg_lit.datamodules.resumable import ResumableLoader, epoch_sampler
from equireg_lit.utils import signals


def newest_checkpoint(root: str | Path) -> Path | None:
    """The most recently written complete ``*.ckpt`` under a run folder, across every
    ``version_N`` (None if there is none): what ``equireg fit --ckpt_path last`` resumes from.

    Lightning's own ``"last"`` only looks in the new version's folder for ``last.ckpt``, so a rerun
    of a killed fit would start over; this one also finds epoch, step and ``interrupted.ckpt``
    files of earlier versions. A file cut short by a kill during its write is passed over, saying
    so, for the newest complete one (a checkpoint is a zip archive, whose directory comes last;
    Lightning writes to a temporary file and moves it, which is a copy when the two are on
    different file systems). Ties (same mtime) go to the later path, so every DDP process
    picks the same."""
    found = sorted((p for p in Path(root).rglob("*.ckpt") if p.is_file()),
                   key=lambda p: (p.stat().st_mtime_ns, str(p)), reverse=True)
    for path in found:
        if zipfile.is_zipfile(path):
            return path
        warn_user(f"{path} is incomplete (the run was killed while writing it); passing over it")
    return None


class CheckpointOnStop(Callback):
    """When fit is asked to stop by SIGTERM or SIGINT, stop every process before the same next
    training batch and write ``checkpoints/interrupted.ckpt`` in the run folder, so
    ``equireg fit ... --ckpt_path last`` (or that file) continues where the run stopped. The
    ``equireg`` CLI adds this callback to every fit.

    Why not Lightning's own stop: one process it stops only at the epoch's end, which can be
    minutes past a scheduler's grace period; under DDP its signal handler runs a collective from
    inside the handler, which crashes when the processes get the signal a different number of
    times (see ``signals.take_over``). Here the handler only records the request and the
    processes agree on it at each batch's start (one small all-reduce, as Lightning's own check).
    """

    # Lightning registers its handlers after the setup and fit-start hooks; these two come next.
    def on_sanity_check_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        signals.take_over()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        signals.take_over()

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        stop = signals.requested() is not None
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)  # any process asked
        if stop:
            raise SIGTERMException

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        path = Path(trainer.log_dir or trainer.default_root_dir) / "checkpoints" / "interrupted.ckpt"
        trainer.save_checkpoint(path, weights_only=False)  # resumable: optimizer and loop state too
        rank_zero_info(f"Stopped by a signal at epoch {trainer.current_epoch}, step {trainer.global_step}; "
                       f"checkpoint: {path} (resume with --ckpt_path {path})")


class RandomStateInCheckpoint(Callback):
    """Keeps the global random states (Python, NumPy, torch CPU and CUDA) in every checkpoint and
    puts them back when the resumed fit starts its next epoch or batch, so a resumed fit draws the
    same shuffles (and any other global draw) as the run that was not stopped (Lightning saves
    model, optimizer and loop state but not these). After every batch it also records the
    position in the epoch that a mid-epoch checkpoint resumes from (``ResumableLoader``).

    Why at the epoch or batch start and not at load: resuming from an epoch-end checkpoint,
    Lightning (2.6) first replays the end of the saved epoch, which creates a train iterator (one
    draw of the sampler's seed) that the uninterrupted run never made, and from then on sets
    distributed samplers one epoch ahead; so this callback also sets them to the epoch being run.
    Resuming mid-epoch, Lightning calls no epoch-start hook; the first batch's start comes after
    the loader has recreated its order. The ``equireg`` CLI puts it first among the callbacks of
    every fit.

    States are stored as tensors and tuples of ints, so the checkpoint still loads with
    ``torch.load(..., weights_only=True)``. Under DDP rank 0's states are saved; every rank starts
    from the same seed and makes the same global draws (what must differ per rank, such as score
    training's noise, comes from ``rng.training_batch_generator``), so rank 0's states are every
    rank's."""

    def __init__(self) -> None:
        self._restore: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        return {"python": random.getstate(), "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                          "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._restore = state_dict

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        # The position a mid-epoch checkpoint resumes from (see ResumableLoader).
        for loader in _loaders(trainer.train_dataloader):
            if isinstance(loader, ResumableLoader):
                loader.batches_trained = batch_idx + 1

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Every epoch (a no-op in a run never stopped, where Lightning's count is the same).
        for loader in _loaders(trainer.train_dataloader):
            if (sampler := epoch_sampler(loader)) is not None:
                sampler.set_epoch(trainer.current_epoch)
        self._put_back()

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        # Resumed mid-epoch, Lightning skips the epoch-start hooks: the states go back here.
        self._put_back()

    def _put_back(self) -> None:
        if self._restore is None:
            return
        state, self._restore = self._restore, None
        random.setstate(state["python"])
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        n = state["numpy"]
        np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                             n["cached_gaussian"]))


def _loaders(node: Any) -> list[Any]:
    """The DataLoaders in Lightning's train_dataloader (one loader or a list / dict of them)."""
    if isinstance(node, dict):
        return [x for v in node.values() for x in _loaders(v)]
    if isinstance(node, (list, tuple)):
        return [x for v in node for x in _loaders(v)]
    return [] if node is None else [node]
