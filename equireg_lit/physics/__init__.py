"""Forward operators (deepinv ``Physics`` subclasses): image restoration tasks, a dense Gaussian
matrix and sparse observations of PDE fields."""

from equireg_lit.physics.linear import DenseGaussian, SparsePoints
from equireg_lit.physics.noise import SeededGaussianNoise, simulate
from equireg_lit.physics.operators import (
    BoxInpainting,
    FourierPhaseRetrieval,
    GaussianBlur,
    HighDynamicRange,
    KernelBlur,
    MaskInpainting,
    MotionBlur,
    RandomInpainting,
    SuperResolution,
    TaskOperator,
)

__all__ = [
    "BoxInpainting", "MaskInpainting", "RandomInpainting", "SuperResolution", "GaussianBlur", "MotionBlur", "KernelBlur",
    "FourierPhaseRetrieval", "HighDynamicRange", "DenseGaussian", "SparsePoints", "SeededGaussianNoise", "simulate",
    "TaskOperator",
]
