"""Equivariance regularization: groups, the EquiReg penalty and the equi phase."""

from equireg_lit.regularizer.equireg import EquiReg, equi_phase, reduce_per_sample
from equireg_lit.regularizer.functions import FixedConv, LatentDecoder, ManifoldFunction, PriorDenoiser
from equireg_lit.regularizer.groups import GROUP_NAMES, D4Element, Group, ShiftElement, get_group

__all__ = ["ManifoldFunction", "PriorDenoiser", "LatentDecoder", "FixedConv", "EquiReg", "equi_phase", "reduce_per_sample", "get_group", "Group", "GROUP_NAMES", "D4Element", "ShiftElement"]
