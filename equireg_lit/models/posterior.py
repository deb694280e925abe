"""PosteriorSampler: prior + solver + forward operator + optional EquiReg, run by ``predict``."""

from __future__ import annotations

import functools
import sys
from typing import Literal

import lightning.pytorch as pl
import torch
from torch import Tensor

from equireg_lit.physics import TaskOperator
from equireg_lit.diffusion.priors import DiffusionPrior
from equireg_lit.errors import ConfigError, DataError
from equireg_lit.pde.residual import PDEResidual
from equireg_lit.regularizer import EquiReg
from equireg_lit.regularizer.functions import ManifoldFunction
from equireg_lit.rng import STREAM_REGULARIZER, STREAM_SOLVER, sample_generators
from equireg_lit.solvers.base import Guidance, Solver
from equireg_lit.utils import signals


class PosteriorSampler(pl.LightningModule):
    """Regularized posterior sampling for ``equireg predict``.

    Batches come from the datamodule with measurements ``y`` (simulated from ground truth with
    noise seeded by each sample's dataset index in benchmark mode, read from files in
    measurement mode) and, in benchmark mode, the ground truth.

    Args:
        prior: Diffusion prior (epsilon network with its schedule).
        operator: Forward operator: an ``equireg_lit.physics`` class (deepinv ``Physics`` with an
            image size and seeded noise; other deepinv operators fit through ``TaskOperator``).
        solver: Posterior sampler, e.g. ``equireg_lit.solvers.DPS``.
        regularizer: EquiReg penalty added to the data term, or None for the plain solver.
        pde_residual: PDE-residual guidance term (``equireg_lit.pde.PDEResidual``), or None.
        seed: Base seed; each sample's streams derive from (seed, dataset index).
        mode: ``benchmark`` (y simulated from ground truth) or ``measurement`` (y given).
    """

    def __init__(
        self,
        prior: DiffusionPrior,
        operator: TaskOperator,
        solver: Solver,
        regularizer: EquiReg | None = None,
        pde_residual: PDEResidual | None = None,
        seed: int = 0,
        mode: Literal["benchmark", "measurement"] = "benchmark",
    ):
        super().__init__()
        steps, T = getattr(solver, "num_steps", 1), prior.schedule.num_train_timesteps
        if steps > T:
            raise ConfigError(f"solver num_steps {steps} exceeds the prior's {T} training timesteps; use 1..{T}")
        self.prior = prior.requires_grad_(False).eval()
        self.operator = operator
        self.solver = solver
        self.regularizer = regularizer
        self.pde_residual = pde_residual
        self.seed = seed
        self.mode = mode
        if getattr(solver, "latent", False) != hasattr(prior, "decode"):
            raise ConfigError(
                f"{type(solver).__name__} with {type(prior).__name__}: a latent prior needs a latent solver "
                "(equireg_lit.solvers.LatentDPS) and a pixel prior a pixel solver (DPS, DiffPIR, DAPS, SITCOM)"
            )
        if regularizer is not None:
            if isinstance(regularizer.f, ManifoldFunction):
                regularizer.f.bind(self.prior)
            if isinstance(regularizer.f, torch.nn.Module):
                regularizer.f.requires_grad_(False).eval()
        self._checked_shape: tuple | None = None

    def check_shapes(self, shape: torch.Size, what: str) -> None:
        """Every shape check, before any sampling work starts."""
        if self._checked_shape == tuple(shape[1:]):
            return
        self.prior.check_input(shape, what=what)
        if hasattr(self.operator, "check_input"):
            self.operator.check_input(shape, what=what)
        if self.regularizer is not None:
            self.regularizer.group.check_acts_on(shape, what=what)
        self._checked_shape = tuple(shape[1:])

    def on_predict_start(self) -> None:
        self.prior.eval()
        if self.regularizer is not None and isinstance(self.regularizer.f, torch.nn.Module):
            self.regularizer.f.eval()

    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        indices = [int(i) for i in batch["index"]]
        truth, y = batch.get("truth"), batch.get("y")
        if y is None:
            raise DataError("prediction batches need measurements 'y'; use a datamodule of equireg_lit.datamodules")
        if self.mode == "benchmark" and truth is None:
            raise ConfigError(
                "mode is 'benchmark' but the data has no ground truth; set mode: measurement for measurement files"
            )
        if truth is not None:
            shape = truth.shape
            self.check_shapes(shape, "ground-truth batch")
        else:
            c, h, w = self.operator.img_size_chw
            shape = torch.Size((y.shape[0], c, h, w))
            self.check_shapes(shape, "operator image size")
        with torch.no_grad():
            expected = self.operator.A(torch.zeros(shape, device=y.device)).shape
        if tuple(y.shape) != tuple(expected):
            raise DataError(
                f"measurements have shape {tuple(y.shape)} but the operator produces {tuple(expected)}; "
                "check the operator settings (img_size, factor, mask) against the measurement files"
            )
        residual = None
        if self.pde_residual is not None:
            residual = functools.partial(self.pde_residual, mean=batch.get("field_mean"), std=batch.get("field_std"))
        reg_gens = sample_generators(self.seed, indices, STREAM_REGULARIZER)
        guidance = Guidance(self.operator, y, self.regularizer, reg_gens, residual=residual)
        f_before = self.regularizer.f_evaluations if self.regularizer is not None else 0
        bar = self._step_bar(batch_idx)

        def on_step(i: int, n: int, x0: Tensor) -> None:
            signals.raise_if_requested()  # SIGTERM / SIGINT: stop within one step
            if bar is not None:
                bar.update(1)

        try:
            out = self.solver.sample(self.prior, tuple(shape), sample_generators(self.seed, indices, STREAM_SOLVER),
                                     guidance, on_step=on_step)
        finally:
            if bar is not None:
                bar.close()
        f_evals = (self.regularizer.f_evaluations - f_before) if self.regularizer is not None else 0
        with torch.no_grad():  # data consistency ||y - A(x)|| / ||y||, per sample, in either mode
            misfit = (y - self.operator.A(out.x)).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1).clamp_min(1e-12)
        return {
            "data_residual": misfit.detach().cpu(),
            "index": indices,
            "reconstruction": out.x.detach().cpu(),
            "measurement": y.detach().cpu(),
            "truth": None if truth is None else truth.detach().cpu(),
            "label": batch.get("label"),
            # Field statistics travel on to the writer (metrics in physical units).
            "fields": {k: v for k, v in batch.items() if k.startswith("field_")},
            "failed": out.failed,
            "nfe": out.nfe + f_evals,
            "network_seconds": out.network_seconds,
            "total_seconds": out.total_seconds,
        }

    def _step_bar(self, batch_idx: int):
        # Per-step progress only on a terminal: a log file gets no line per step.
        if self._trainer is None or not self.trainer.progress_bar_callback or not sys.stderr.isatty():
            return None
        from tqdm.auto import tqdm

        return tqdm(total=self.solver.num_steps, desc=f"batch {batch_idx}: sampling steps", leave=False, position=1)
