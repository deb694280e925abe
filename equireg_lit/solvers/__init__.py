"""Posterior samplers (framework-free)."""

from equireg_lit.solvers.base import Guidance, SamplerOutput, Solver
from equireg_lit.errors import SamplingError
from equireg_lit.solvers.diffpir import DiffPIR
from equireg_lit.solvers.dps import DPS

__all__ = ["Solver", "Guidance", "SamplerOutput", "DPS", "DiffPIR", "SamplingError"]
