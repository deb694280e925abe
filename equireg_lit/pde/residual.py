"""PDE-residual guidance: the discrete residual of the governing equation at the clean estimate.

DiffusionPDE (Huang et al. 2024) adds ``||F(a, u)||`` of the joint estimate to the observation
loss. Here the residual uses the same second-order stencils as the data generators, so the
residual of a generated test pair is zero up to round-off (Poisson, Helmholtz) or the face-mean
difference (Darcy), and the term is a per-sample loss like the data term.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from equireg_lit.errors import ConfigError
from equireg_lit.pde.data import PARAMS
from equireg_lit.pde.elliptic import darcy_operator

RESIDUAL_PROBLEMS = ("darcy", "poisson", "helmholtz")


def check_problem(problem: str) -> None:
    if problem not in RESIDUAL_PROBLEMS:
        raise ValueError(
            f"PDE residual guidance supports {', '.join(RESIDUAL_PROBLEMS)}, not {problem!r} "
            "(Navier-Stokes relates a and u through a time integration, not a local stencil)"
        )


def laplacian(u: Tensor, h: float) -> Tensor:
    """5-point Laplacian at interior nodes ``[B, n-2, n-2]`` of ``u`` ``[B, n, n]``."""
    return (u[..., 2:, 1:-1] + u[..., :-2, 1:-1] + u[..., 1:-1, 2:] + u[..., 1:-1, :-2] - 4 * u[..., 1:-1, 1:-1]) / h**2


def residual(problem: str, a: Tensor, u: Tensor) -> Tensor:
    """Interior residual of ``problem`` for fields in physical units ``[B, n, n]``.

    Darcy uses arithmetic face means of ``a`` (the generator's harmonic means divide by
    ``a_i + a_j``, which a clean estimate early in sampling can drive to zero); for the binary
    coefficient the two agree except on faces that cross the interface.
    """
    n = u.shape[-1]
    h = 1.0 / (n - 1)
    if problem == "poisson":
        return laplacian(u, h) - a[..., 1:-1, 1:-1]
    if problem == "helmholtz":
        k = PARAMS["helmholtz"]["k"]
        return laplacian(u, h) + k**2 * u[..., 1:-1, 1:-1] - a[..., 1:-1, 1:-1]
    check_problem(problem)  # darcy
    ax = 0.5 * (a[..., :, 1:] + a[..., :, :-1])
    ay = 0.5 * (a[..., 1:, :] + a[..., :-1, :])
    return darcy_operator(u, ax, ay, h)[..., 1:-1, 1:-1] - PARAMS["darcy"]["f"]


class PDEResidual(nn.Module):
    """Per-sample ``weight * ||F(a, u)||_h`` on a normalized two-channel estimate ``(a, u)``.

    ``||.||_h`` is the discrete L2 norm on the unit square (``sqrt(sum r^2 h^2)``), so the weight
    does not change meaning with the resolution. The normalization statistics are those of the
    training data: configured here, or carried by the batches of a ``PDEDataModule``
    (``field_mean`` / ``field_std``), which ``PosteriorSampler`` passes to every call.

    Args:
        problem: ``darcy``, ``poisson`` or ``helmholtz``.
        weight: Multiplier of the residual norm (added to the data term before the DPS step).
        mean: Per-channel mean of the normalization (None: taken from the batches).
        std: Per-channel standard deviation of the normalization (None: taken from the batches).
        start: Fraction of the run after which the term is on (DiffusionPDE: 0.8, the last 20 %
            of the steps, once the estimate is close to a field; 0: every step).
    """

    def __init__(self, problem: str, weight: float = 1e-3, mean: list[float] | None = None,
                 std: list[float] | None = None, start: float = 0.0):
        super().__init__()
        check_problem(problem)
        if not 0.0 <= start < 1.0:
            raise ConfigError(f"start is a fraction of the run in [0, 1), got {start}")
        self.problem, self.weight, self.start = problem, weight, float(start)
        self.mean = None if mean is None else torch.tensor(mean, dtype=torch.float32)
        self.std = None if std is None else torch.tensor(std, dtype=torch.float32)

    def forward(self, x: Tensor, mean: Tensor | None = None, std: Tensor | None = None,
                step: int = 0, total_steps: int | None = None) -> Tensor:
        """Per-sample residual norm of ``x`` ``[B, 2, n, n]``; ``mean``/``std`` (``[2]`` or ``[B, 2]``)
        are the data's statistics when not configured; exact zeros before ``start`` of the run."""
        if self.start > 0 and total_steps is not None and step < self.start * total_steps:
            return torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        mean = self.mean if self.mean is not None else mean
        std = self.std if self.std is not None else std
        if mean is None or std is None:
            raise ConfigError(
                "PDEResidual needs the data normalization: pass mean/std, or predict with a PDEDataModule"
            )
        if x.ndim != 4 or x.shape[1] != 2:
            raise ValueError(f"PDE residual needs joint (a, u) fields [B, 2, n, n], got {tuple(x.shape)}")
        mean, std = torch.as_tensor(mean).to(x), torch.as_tensor(std).to(x)
        view = (-1, 2, 1, 1) if mean.ndim == 2 else (1, -1, 1, 1)
        phys = x * std.view(view) + mean.view(view)
        r = residual(self.problem, phys[:, 0], phys[:, 1])
        h = 1.0 / (x.shape[-1] - 1)
        return self.weight * h * torch.linalg.vector_norm(r.flatten(1), dim=1)
