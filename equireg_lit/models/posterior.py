"""PosteriorSampler: prior + solver + forward operator + optional EquiReg, run by ``predict``."""

from __future__ import annotations

from typing import Literal

import lightning.pytorch as pl
import torch
from deepinv.physics import Physics
from torch import Tensor

from equireg_lit.diffusion.priors import DiffusionPrior
from equireg_lit.pde.residual import PDEResidual
from equireg_lit.physics.operators import simulate
from equireg_lit.regularizer import EquiReg
from equireg_lit.regularizer.functions import PriorDenoiser
from equireg_lit.solvers.base import Guidance, Solver

# Independent random streams per sample, derived from (seed, dataset index).
STREAM_MEASUREMENT, STREAM_SOLVER, STREAM_REGULARIZER = 0, 1, 2


def sample_generator(seed: int, index: int, stream: int) -> torch.Generator:
    """Generator for one sample and one purpose: results do not depend on batch, order or device count."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + index) * 8 + stream) % (2**63 - 1))


class PosteriorSampler(pl.LightningModule):
    """Regularized posterior sampling for ``equireg predict``.

    Benchmark mode: batches carry ground truth ``image``; measurements are simulated with noise
    seeded by each sample's dataset ``index``. Measurement mode: batches carry ``y`` (and no
    truth) and the operator's parameters come from the configuration.

    Args:
        prior: Diffusion prior (epsilon network with its schedule).
        operator: Forward operator (an ``equireg_lit.physics`` class or any deepinv ``Physics``
            with ``img_size_chw`` and ``noise_sigma``).
        solver: Posterior sampler, e.g. ``equireg_lit.solvers.DPS``.
        regularizer: EquiReg penalty added to the data term, or None for the plain solver.
        pde_residual: PDE-residual guidance term (``equireg_lit.pde.PDEResidual``), or None;
            its normalization is taken from the datamodule when not configured.
        seed: Base seed; each sample's streams derive from (seed, dataset index).
        mode: ``benchmark`` (simulate y from ground truth) or ``measurement`` (y given).
    """

    def __init__(
        self,
        prior: DiffusionPrior,
        operator: Physics,
        solver: Solver,
        regularizer: EquiReg | None = None,
        pde_residual: PDEResidual | None = None,
        seed: int = 0,
        mode: Literal["benchmark", "measurement"] = "benchmark",
    ):
        super().__init__()
        self.prior = prior.requires_grad_(False).eval()
        self.operator = operator
        self.solver = solver
        self.regularizer = regularizer
        self.pde_residual = pde_residual
        self.seed = seed
        self.mode = mode
        if regularizer is not None:
            if isinstance(regularizer.f, PriorDenoiser):
                regularizer.f.bind(self.prior)
            if isinstance(regularizer.f, torch.nn.Module):
                regularizer.f.requires_grad_(False).eval()
        self.skip_indices: set[int] = set()
        self._checked_shape: tuple | None = None
        self.show_step_progress = True

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
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if self.pde_residual is not None and getattr(dm, "mean", None) is not None:
            self.pde_residual.bind_normalization(dm.mean, dm.std)
        if self.regularizer is not None and isinstance(self.regularizer.f, torch.nn.Module):
            self.regularizer.f.eval()

    def measure(self, x: Tensor, indices: list[int]) -> Tensor:
        gens = [sample_generator(self.seed, i, STREAM_MEASUREMENT) for i in indices]
        return simulate(self.operator, x, gens)

    def predict_step(self, batch: dict, batch_idx: int) -> dict | None:
        indices = [int(i) for i in batch["index"]]
        keep = [j for j, i in enumerate(indices) if i not in self.skip_indices]
        if not keep:
            return None
        if len(keep) < len(indices):
            batch = {k: (v[keep] if isinstance(v, Tensor) else [v[j] for j in keep]) for k, v in batch.items()}
            indices = [indices[j] for j in keep]
        truth = batch.get("image")
        if self.mode == "benchmark":
            if truth is None:
                raise ValueError("benchmark mode needs batches with ground-truth 'image'; use mode: measurement")
            self.check_shapes(truth.shape, "ground-truth batch")
            with torch.no_grad():
                y = self.measure(truth, indices)
            shape = truth.shape
        else:
            if "y" not in batch:
                raise ValueError("measurement mode needs batches with measurements 'y'")
            y = batch["y"]
            c, h, w = self.operator.img_size_chw
            shape = torch.Size((y.shape[0], c, h, w))
            self.check_shapes(shape, "operator image size")
            with torch.no_grad():
                expected = self.operator.A(torch.zeros(shape, device=y.device)).shape
            if tuple(y.shape) != tuple(expected):
                raise ValueError(
                    f"measurements have shape {tuple(y.shape)} but the operator produces {tuple(expected)}; "
                    "check the operator settings (img_size, factor, mask) against the measurement files"
                )
        guidance = None
        if self.solver is not None:
            reg_gens = [sample_generator(self.seed, i, STREAM_REGULARIZER) for i in indices]
            guidance = Guidance(self.operator, y, self.regularizer, reg_gens, residual=self.pde_residual)
        gens = [sample_generator(self.seed, i, STREAM_SOLVER) for i in indices]
        bar = self._step_bar(batch_idx)
        out = self.solver.sample(
            self.prior, tuple(shape), gens, guidance, on_step=(lambda i, n, x0: bar.update(1)) if bar else None
        )
        if bar is not None:
            bar.close()
        return {
            "index": indices,
            "reconstruction": out.x.detach().cpu(),
            "measurement": y.detach().cpu(),
            "truth": None if truth is None else truth.detach().cpu(),
            "label": batch.get("label"),
            "failed": out.failed,
            "nfe": out.nfe,
            "network_seconds": out.network_seconds,
            "total_seconds": out.total_seconds,
        }

    def _step_bar(self, batch_idx: int):
        if not self.show_step_progress or self._trainer is None or not self.trainer.progress_bar_callback:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=self.solver.num_steps, desc=f"batch {batch_idx}: sampling steps", leave=False, position=1)
