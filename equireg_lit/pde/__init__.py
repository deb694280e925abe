"""PDE data generators and numerical solvers (framework-free, torch, float64)."""

from equireg_lit.pde.data import PARAMS, darcy_error_rate, generate, relative_l2
from equireg_lit.pde.elliptic import darcy_operator, solve_darcy, solve_helmholtz, solve_poisson
from equireg_lit.pde.grf import grf_spectrum, sample_grf, wavenumbers
from equireg_lit.pde.navier_stokes import VorticitySolver, default_forcing
from equireg_lit.pde.residual import PDEResidual, laplacian, residual

__all__ = ["generate", "relative_l2", "darcy_error_rate", "PARAMS", "sample_grf", "grf_spectrum", "wavenumbers", "solve_helmholtz", "solve_poisson", "solve_darcy",
           "darcy_operator", "VorticitySolver", "default_forcing", "PDEResidual", "laplacian", "residual"]
