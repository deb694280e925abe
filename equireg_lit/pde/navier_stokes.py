"""2-D incompressible Navier-Stokes in vorticity form on the periodic unit torus.

    dw/dt + u . grad w = nu lap w + f,      u = (d psi/dy, -d psi/dx),  -lap psi = w

Pseudo-spectral in space with 2/3 dealiasing; in time, an integrating factor for the viscous
term (exact) and classical RK4 for advection and forcing.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from equireg_lit.pde.grf import wavenumbers


def default_forcing(n: int) -> Tensor:
    """``f = 0.1 (sin(2 pi (x + y)) + cos(2 pi (x + y)))`` on the ``n x n`` periodic grid (float64)."""
    t = torch.arange(n, dtype=torch.float64) / n
    y, x = torch.meshgrid(t, t, indexing="ij")
    return 0.1 * (torch.sin(2 * math.pi * (x + y)) + torch.cos(2 * math.pi * (x + y)))


class VorticitySolver:
    """Time stepper for a fixed grid size; fields are ``[B, n, n]`` float64 (x along the last axis).

    Args:
        n: Grid points per side.
        nu: Viscosity.
        forcing: ``[n, n]`` forcing field, or None for none.
        dt: Time step.
    """

    def __init__(self, n: int, nu: float = 1e-3, forcing: Tensor | None = None, dt: float = 1e-3):
        self.n, self.nu, self.dt = n, nu, dt
        kx, ky = wavenumbers(n)
        self.ikx = 2j * math.pi * kx
        self.iky = 2j * math.pi * ky
        self.k2 = 4 * math.pi**2 * (kx**2 + ky**2)
        inv = self.k2.clone()
        inv[0, 0] = 1.0
        self.inv_k2 = 1.0 / inv
        self.inv_k2[0, 0] = 0.0
        kmax = n // 3
        self.dealias = ((kx.abs() <= kmax) & (ky.abs() <= kmax)).to(torch.float64)
        self.f_hat = None if forcing is None else torch.fft.fft2(forcing)
        self.half = torch.exp(-nu * self.k2 * dt / 2)

    def velocity(self, w_hat: Tensor) -> tuple[Tensor, Tensor]:
        psi = w_hat * self.inv_k2
        return torch.fft.ifft2(self.iky * psi).real, torch.fft.ifft2(-self.ikx * psi).real

    def rhs(self, w_hat: Tensor) -> Tensor:
        """Advection and forcing in Fourier space (dealiased)."""
        u, v = self.velocity(w_hat)
        wx = torch.fft.ifft2(self.ikx * w_hat).real
        wy = torch.fft.ifft2(self.iky * w_hat).real
        out = -torch.fft.fft2(u * wx + v * wy) * self.dealias
        if self.f_hat is not None:
            out = out + self.f_hat
        return out

    def step(self, w_hat: Tensor) -> Tensor:
        """One integrating-factor RK4 step."""
        dt, e = self.dt, self.half
        k1 = self.rhs(w_hat)
        k2 = self.rhs(e * (w_hat + dt / 2 * k1))
        k3 = self.rhs(e * w_hat + dt / 2 * k2)
        k4 = self.rhs(e * e * w_hat + dt * e * k3)
        return e * e * w_hat + dt / 6 * (e * e * k1 + 2 * e * (k2 + k3) + k4)

    def solve(self, w0: Tensor, t_final: float = 1.0) -> Tensor:
        """Vorticity at ``t_final`` from ``w0`` ``[B, n, n]``."""
        steps = int(round(t_final / self.dt))
        if abs(steps * self.dt - t_final) > 1e-9:
            raise ValueError(f"t_final {t_final} is not a multiple of dt {self.dt}")
        w_hat = torch.fft.fft2(w0.to(torch.float64)) * self.dealias
        for _ in range(steps):
            w_hat = self.step(w_hat)
        return torch.fft.ifft2(w_hat).real

    def energy(self, w: Tensor) -> Tensor:
        """Kinetic energy ``0.5 mean(|u|^2)`` per field."""
        u, v = self.velocity(torch.fft.fft2(w))
        return 0.5 * (u**2 + v**2).mean(dim=(-2, -1))

    @staticmethod
    def enstrophy(w: Tensor) -> Tensor:
        """``0.5 mean(w^2)`` per field."""
        return 0.5 * (w**2).mean(dim=(-2, -1))
