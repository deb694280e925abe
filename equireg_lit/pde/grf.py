"""Gaussian random fields with covariance ``(-Laplacian + tau^2)^(-alpha)`` on the unit torus."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def wavenumbers(n: int, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """Integer wavenumbers ``(kx, ky)`` of an ``n x n`` FFT grid, each ``[n, n]`` (``kx`` varies along x = last axis)."""
    k = torch.fft.fftfreq(n, d=1.0 / n, device=device, dtype=torch.float64)
    ky, kx = torch.meshgrid(k, k, indexing="ij")
    return kx, ky


def grf_spectrum(n: int, alpha: float = 2.0, tau: float = 3.0) -> Tensor:
    """Eigenvalues ``(4 pi^2 |k|^2 + tau^2)^(-alpha)`` of the covariance operator, mean mode removed."""
    kx, ky = wavenumbers(n)
    lam = (4 * math.pi**2 * (kx**2 + ky**2) + tau**2) ** (-alpha)
    lam[0, 0] = 0.0
    return lam


def sample_grf(
    num: int, n: int, alpha: float = 2.0, tau: float = 3.0, generator: torch.Generator | None = None
) -> Tensor:
    """``num`` zero-mean fields ``[num, n, n]`` (float64) with the covariance above, by spectral synthesis.

    The field is scaled by ``tau^(alpha - 1)`` (as in the FNO / DiffusionPDE data generators) so
    its amplitude is O(1) for the default parameters.
    """
    lam = grf_spectrum(n, alpha, tau)
    xi = torch.randn(num, n, n, 2, generator=generator, dtype=torch.float64)
    coef = torch.complex(xi[..., 0], xi[..., 1]) * lam.sqrt() * n**2  # n^2 cancels ifft2 normalization
    field = torch.fft.ifft2(coef).real * math.sqrt(2)
    return field * tau ** (alpha - 1)
