"""Second-order finite-difference solvers on the unit square with zero Dirichlet boundary.

Grids are node-based, ``n x n`` including the boundary: ``x_i = i / (n - 1)``. Fields are
``[B, n, n]`` (float64 recommended); boundary values of the solution are zero.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _dst1(x: Tensor) -> Tensor:
    """Type-I discrete sine transform along the last axis (unnormalized), via an odd extension FFT."""
    m = x.shape[-1]
    ext = torch.cat([torch.zeros_like(x[..., :1]), x, torch.zeros_like(x[..., :1]), -x.flip(-1)], dim=-1)
    return -torch.fft.fft(ext, dim=-1)[..., 1 : m + 1].imag / 2.0


def _dst2d(x: Tensor) -> Tensor:
    return _dst1(_dst1(x).transpose(-1, -2)).transpose(-1, -2)


def solve_helmholtz(f: Tensor, k: float = 0.0) -> Tensor:
    """Solve ``lap u + k^2 u = f`` (``k = 0``: Poisson) with ``u = 0`` on the boundary.

    The 5-point Laplacian with Dirichlet boundary is diagonalized exactly by the sine transform,
    so this is a direct solve in O(n^2 log n).
    """
    n = f.shape[-1]
    if f.shape[-2] != n:
        raise ValueError(f"square grids only, got {tuple(f.shape[-2:])}")
    m, h = n - 2, 1.0 / (n - 1)
    j = torch.arange(1, m + 1, dtype=f.dtype, device=f.device)
    lam1 = -4.0 / h**2 * torch.sin(j * math.pi / (2 * (m + 1))) ** 2
    denom = lam1[:, None] + lam1[None, :] + k**2
    if (denom.abs() < 1e-12).any():
        raise ValueError(f"k^2 = {k**2} is an eigenvalue of the discrete Laplacian: the problem is singular")
    inner = f[..., 1:-1, 1:-1]
    u_hat = _dst2d(inner) / denom
    u_inner = _dst2d(u_hat) * (2.0 / (m + 1)) ** 2  # DST-I is its own inverse up to (2 / (m + 1)) per axis
    u = torch.zeros_like(f)
    u[..., 1:-1, 1:-1] = u_inner
    return u


def solve_poisson(f: Tensor) -> Tensor:
    """Solve ``lap u = f``, ``u = 0`` on the boundary."""
    return solve_helmholtz(f, 0.0)


def _faces(a: Tensor) -> tuple[Tensor, Tensor]:
    """Harmonic means of ``a`` on x-faces ``[B, n, n-1]`` and y-faces ``[B, n-1, n]``."""
    ax = 2 * a[..., :, 1:] * a[..., :, :-1] / (a[..., :, 1:] + a[..., :, :-1])
    ay = 2 * a[..., 1:, :] * a[..., :-1, :] / (a[..., 1:, :] + a[..., :-1, :])
    return ax, ay


def darcy_operator(u: Tensor, ax: Tensor, ay: Tensor, h: float) -> Tensor:
    """``-div(a grad u)`` at interior nodes (boundary entries zero), for ``u`` zero on the boundary."""
    fx = ax * (u[..., :, 1:] - u[..., :, :-1])  # flux across x-faces
    fy = ay * (u[..., 1:, :] - u[..., :-1, :])
    out = torch.zeros_like(u)
    out[..., 1:-1, 1:-1] = -(
        fx[..., 1:-1, 1:] - fx[..., 1:-1, :-1] + fy[..., 1:, 1:-1] - fy[..., :-1, 1:-1]
    ) / h**2
    return out


def solve_darcy(a: Tensor, f: Tensor | float = 1.0, tol: float = 1e-10, max_iter: int = 10_000) -> Tensor:
    """Solve ``-div(a grad u) = f`` with ``u = 0`` on the boundary (batched, matrix-free).

    Harmonic face averages of ``a`` (second order for smooth ``a``, the standard choice for
    piecewise-constant coefficients); Jacobi-preconditioned conjugate gradients on the SPD system.

    Args:
        a: Coefficient ``[B, n, n]``, strictly positive.
        f: Right-hand side ``[B, n, n]`` or a constant.
        tol: Relative residual tolerance.
        max_iter: Iteration cap (an error if reached).
    """
    if (a <= 0).any():
        raise ValueError(
            f"Darcy needs a strictly positive coefficient a, found min {a.min().item():.3g}; "
            "threshold or exponentiate the field first"
        )
    n = a.shape[-1]
    h = 1.0 / (n - 1)
    ax, ay = _faces(a)
    rhs = torch.zeros_like(a)
    rhs[..., 1:-1, 1:-1] = (f if isinstance(f, Tensor) else torch.full_like(a, float(f)))[..., 1:-1, 1:-1]
    diag = torch.ones_like(a)
    diag[..., 1:-1, 1:-1] = (ax[..., 1:-1, 1:] + ax[..., 1:-1, :-1] + ay[..., 1:, 1:-1] + ay[..., :-1, 1:-1]) / h**2
    dims = tuple(range(1, a.ndim))
    u = torch.zeros_like(a)
    r = rhs.clone()
    z = r / diag
    p = z.clone()
    rz = (r * z).sum(dims)
    norm0 = rhs.flatten(1).norm(dim=1).clamp_min(1e-300)
    for _ in range(max_iter):
        ap = darcy_operator(p, ax, ay, h)
        step = rz / (p * ap).sum(dims)
        u = u + step.view(-1, 1, 1) * p
        r = r - step.view(-1, 1, 1) * ap
        if (r.flatten(1).norm(dim=1) / norm0).max() < tol:
            return u
        z = r / diag
        rz_new = (r * z).sum(dims)
        p = z + (rz_new / rz).view(-1, 1, 1) * p
        rz = rz_new
    raise RuntimeError(f"Darcy CG did not reach tol {tol} in {max_iter} iterations")
