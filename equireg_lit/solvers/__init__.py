"""Posterior samplers (framework-free)."""

from equireg_lit.solvers.base import Guidance, SamplerOutput, Solver
from equireg_lit.solvers.dps import DPS, SamplingError

__all__ = ["Solver", "Guidance", "SamplerOutput", "DPS", "SamplingError"]
