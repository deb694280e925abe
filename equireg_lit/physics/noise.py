"""Measurement noise: deepinv's Gaussian noise model, seeded sample by sample."""

from __future__ import annotations

import torch
from deepinv.physics import GaussianNoise, Physics
from torch import Tensor

from equireg_lit.errors import ConfigError
from equireg_lit.rng import per_sample_randn


def _identity(x: Tensor, **kwargs) -> Tensor:
    return x


class SeededGaussianNoise(GaussianNoise):
    """deepinv's ``GaussianNoise`` plus :meth:`per_sample`, which draws each sample's noise from
    its own generator (results independent of batch and device count), and picklable (deepinv's
    base class stores a lambda, which breaks ``ddp_spawn`` and DataLoader workers).

    Args:
        sigma: Standard deviation of the noise.
    """

    def __init__(self, sigma: float = 0.05):
        super().__init__(sigma=sigma)
        self.noise_model = _identity

    def per_sample(self, clean: Tensor, generators: list[torch.Generator]) -> Tensor:
        """``clean + sigma * n_i`` with ``n_i`` drawn on the CPU from ``generators[i]``."""
        sigma = float(self.sigma)
        if sigma == 0:
            return clean
        return clean + sigma * per_sample_randn(tuple(clean.shape), generators, clean)


def simulate(physics: Physics, x: Tensor, generators: list[torch.Generator]) -> Tensor:
    """Noisy measurements ``A(x_i) + sigma * n_i`` with ``n_i`` drawn from ``generators[i]``.

    Operators of this package carry a :class:`SeededGaussianNoise`; a plain deepinv ``GaussianNoise``
    is honoured through its ``sigma``; any other noise model is refused (it cannot be seeded per sample).
    """
    clean = physics.A(x)
    noise = getattr(physics, "noise_model", None)
    if isinstance(noise, SeededGaussianNoise):
        return noise.per_sample(clean, generators)
    if isinstance(noise, GaussianNoise):
        return SeededGaussianNoise(float(noise.sigma)).per_sample(clean, generators)
    if noise is None or type(noise).__name__ == "ZeroNoise":
        return clean
    raise ConfigError(
        f"{type(physics).__name__} has a {type(noise).__name__} noise model; benchmark mode simulates "
        "per-sample seeded Gaussian noise only: use SeededGaussianNoise or measurement mode"
    )
