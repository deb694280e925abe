"""Forward operators (deepinv ``Physics`` subclasses) for image restoration tasks."""

from equireg_lit.physics.noise import SeededGaussianNoise, simulate
from equireg_lit.physics.operators import (
    BoxInpainting,
    DenseGaussian,
    FourierPhaseRetrieval,
    GaussianBlur,
    HighDynamicRange,
    KernelBlur,
    MaskInpainting,
    MotionBlur,
    RandomInpainting,
    SparsePoints,
    SuperResolution,
    TaskOperator,
)

__all__ = [
    "BoxInpainting", "MaskInpainting", "RandomInpainting", "SuperResolution", "GaussianBlur", "MotionBlur", "KernelBlur",
    "FourierPhaseRetrieval", "HighDynamicRange", "DenseGaussian", "SparsePoints", "SeededGaussianNoise", "simulate",
    "TaskOperator",
]
