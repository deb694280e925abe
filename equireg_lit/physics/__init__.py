"""Forward operators (deepinv ``Physics`` subclasses) for image restoration tasks."""

from equireg_lit.physics.operators import (
    SeededGaussianNoise,
    BoxInpainting,
    DenseGaussian,
    FourierPhaseRetrieval,
    GaussianBlur,
    HighDynamicRange,
    MaskInpainting,
    MotionBlur,
    RandomInpainting,
    SparsePoints,
    SuperResolution,
    simulate,
)

__all__ = [
    "BoxInpainting", "MaskInpainting", "RandomInpainting", "SuperResolution", "GaussianBlur", "MotionBlur",
    "FourierPhaseRetrieval", "HighDynamicRange", "DenseGaussian", "SparsePoints", "SeededGaussianNoise", "simulate",
]
