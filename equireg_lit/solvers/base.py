"""Solver interface: a posterior (or unconditional) sampler driven by a diffusion prior.

A solver only sees the prior (``eps(x_t, t)`` and its schedule) and a :class:`Guidance`
object that holds the measurement, the forward operator and the optional regularizer, so new
samplers (DAPS, DiffPIR, SITCOM, latent solvers) plug in without touching the Lightning module.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from equireg_lit.diffusion.priors import DiffusionPrior
from equireg_lit.regularizer import EquiReg
from equireg_lit.rng import per_sample_randn


# ``on_step(step, total_steps, x0_hat)``: progress bars, trajectory recording.
StepCallback = Callable[[int, int, Tensor], None]


class Guidance:
    """Per-sample measurement loss ``||y_i - A(x_i)|| + residual_i(x_i) + reg_i(x_i)``.

    Args:
        physics: Forward operator with ``A(x)`` (deepinv ``Physics`` vocabulary).
        y: Measurements ``[B, ...]``.
        regularizer: Optional EquiReg penalty, added to each sample's data term.
        reg_generators: One generator per sample for the group draws (batch-independent results).
        residual: Optional per-sample physics term ``residual(x, step=, total_steps=)`` (e.g.
            ``equireg_lit.pde.PDEResidual``).
        to_pixels: Maps the sampler's variable to the operator's domain (a latent prior's
            decoder); None: the sampler works in pixel space. EquiReg sees the sampler's variable.
    """

    def __init__(
        self,
        physics,
        y: Tensor,
        regularizer: EquiReg | None = None,
        reg_generators: list[torch.Generator] | None = None,
        residual: Callable[[Tensor], Tensor] | None = None,
        to_pixels: Callable[[Tensor], Tensor] | None = None,
    ):
        self.physics = physics
        self.y = y
        self.regularizer = regularizer
        self.reg_generators = reg_generators
        self.residual = residual
        self.to_pixels = to_pixels

    def in_latent_space(self, decode: Callable[[Tensor], Tensor]) -> "Guidance":
        """The same guidance for a sampler of latents: the operator sees ``decode(z)``."""
        return Guidance(self.physics, self.y, self.regularizer, self.reg_generators, self.residual, decode)

    def data_term(self, x0: Tensor) -> Tensor:
        """``||y_i - A(x0_i)||`` per sample (the norm, not its square, as in DPS); an operator with
        several weighted observations (``data_norm``) sums their weighted norms."""
        x = x0 if self.to_pixels is None else self.to_pixels(x0)
        r = self.y - self.physics.A(x)
        norm = getattr(self.physics, "data_norm", None)
        return norm(r) if norm is not None else r.reshape(r.shape[0], -1).norm(dim=1)

    def loss(self, x0: Tensor, step: int, total_steps: int) -> Tensor:
        """Per-sample loss whose gradient drives guidance."""
        loss = self.data_term(x0)
        if self.residual is not None:
            loss = loss + self.residual(x0 if self.to_pixels is None else self.to_pixels(x0),
                                        step=step, total_steps=total_steps)
        if self.regularizer is not None:
            loss = loss + self.regularizer(x0, step=step, total_steps=total_steps, generator=self.reg_generators)
        return loss


@dataclass
class SamplerOutput:
    """Result of a sampling run.

    Attributes:
        x: Final samples ``[B, C, H, W]`` (zeros for failed samples).
        failed: Batch position -> step at which the sample became NaN/inf.
        nfe: Network evaluations per sample.
        network_seconds: Time spent in network forward and backward passes.
        total_seconds: Wall time of the whole run.
    """

    x: Tensor
    failed: dict[int, int] = field(default_factory=dict)
    nfe: int = 0
    network_seconds: float = 0.0
    total_seconds: float = 0.0


class Timer:
    """Accumulates wall time of code blocks (synchronizing CUDA so GPU time is counted)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __enter__(self) -> "Timer":
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.seconds += time.perf_counter() - self._t0


class SamplingRun:
    """The bookkeeping every sampler shares: wall time from the start, network time, failures."""

    def __init__(self) -> None:
        self.t_start = time.perf_counter()
        self.failed_at: Tensor | None = None  # per sample: first failing step, -1 while fine
        self.net = Timer()

    def drop_failed(self, x: Tensor, step: int, bound: float = float("inf")) -> Tensor:
        """Zero the samples of ``x`` that are NaN, inf or beyond ``bound`` in absolute value and
        remember the first step each failed at, without a host sync (failures are read once, at
        the end of the run)."""
        flat = x.reshape(x.shape[0], -1)
        bad = ~torch.isfinite(flat).all(dim=1) | (flat.abs().amax(dim=1) > bound)
        if self.failed_at is None:
            self.failed_at = torch.full((x.shape[0],), -1, dtype=torch.long, device=x.device)
        self.failed_at = torch.where(bad & (self.failed_at < 0), step, self.failed_at)
        return torch.where(bad.view(-1, *([1] * (x.ndim - 1))), torch.zeros_like(x), x)

    @property
    def failed(self) -> dict[int, int]:
        """Batch position -> first failing step."""
        if self.failed_at is None:
            return {}
        return {j: s for j, s in enumerate(self.failed_at.tolist()) if s >= 0}

    def output(self, x: Tensor, nfe: int) -> SamplerOutput:
        """The run's result with ``nfe`` network evaluations per sample."""
        return SamplerOutput(x=x, failed=self.failed, nfe=nfe, network_seconds=self.net.seconds,
                             total_seconds=time.perf_counter() - self.t_start)


def initial_noise(prior: DiffusionPrior, shape: tuple[int, ...], generators: list[torch.Generator]) -> Tensor:
    """``x_T``: standard normal noise drawn per sample, on the prior's device and dtype."""
    device = next((p.device for p in prior.parameters()), torch.device("cpu"))
    dtype = next((p.dtype for p in prior.parameters()), torch.float32)
    return per_sample_randn(shape, generators, torch.empty((), device=device, dtype=dtype))


class Solver(ABC):
    """Base class of samplers. Subclasses implement :meth:`sample`."""

    num_steps: int
    latent = False  # samples a latent prior's latents and returns decoded images

    @abstractmethod
    def sample(self, prior: DiffusionPrior, shape: tuple[int, ...], generators: list[torch.Generator],
               guidance: Guidance | None = None, on_step: StepCallback | None = None) -> SamplerOutput:
        """Draw ``shape[0]`` samples; sample ``i`` uses only ``generators[i]``.

        Args:
            prior: The diffusion prior.
            shape: ``[B, C, H, W]``.
            generators: One ``torch.Generator`` per sample (all randomness comes from them).
            guidance: Measurement loss; None samples the prior unconditionally.
            on_step: Called as ``on_step(step, total_steps, x0_hat)`` after every step (progress
                bars, trajectory recording); ``x0_hat`` is the detached clean estimate of that step.
        """
