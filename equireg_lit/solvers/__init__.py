"""Posterior samplers (framework-free)."""

from equireg_lit.solvers.base import Guidance, SamplerOutput, Solver
from equireg_lit.errors import SamplingError
from equireg_lit.solvers.daps import DAPS
from equireg_lit.solvers.deepinv_dps import DeepinvDPS
from equireg_lit.solvers.diffpir import DiffPIR
from equireg_lit.solvers.dps import DPS
from equireg_lit.solvers.latent_dps import LatentDPS
from equireg_lit.solvers.psld import PSLD
from equireg_lit.solvers.resample import ReSample
from equireg_lit.solvers.sitcom import SITCOM

__all__ = ["Solver", "Guidance", "SamplerOutput", "DPS", "DAPS", "DeepinvDPS", "DiffPIR", "SITCOM", "LatentDPS", "PSLD", "ReSample", "SamplingError"]
