"""Linear operators beyond image restoration, in the same vocabulary: a dense seeded Gaussian
matrix (the closed-form linear-Gaussian problem of the demo and the sampler tests) and sparse point
observations of PDE fields (DiffusionPDE / FunDPS)."""

from __future__ import annotations

import torch
from deepinv.physics import LinearPhysics
from torch import Tensor

from equireg_lit.errors import ConfigError
from equireg_lit.physics.noise import SeededGaussianNoise
from equireg_lit.physics.operators import ImgSize, TaskOperator


class DenseGaussian(TaskOperator, LinearPhysics):
    """``y = M x`` with a fixed seeded Gaussian matrix ``M`` (m x n, entries N(0, 1/n)).

    A small linear-Gaussian problem whose posterior is known in closed form for a Gaussian
    prior: the bundled demo and the sampler tests use it.

    Args:
        img_size: ``[C, H, W]``.
        num_measurements: Rows m of the matrix.
        matrix_seed: Seed of the matrix.
        noise_sigma: Gaussian measurement noise.
    """

    def __init__(self, img_size: ImgSize = (1, 8, 8), num_measurements: int = 16, matrix_seed: int = 0,
                 noise_sigma: float = 0.05):
        self._setup_task(img_size, noise_sigma)
        super().__init__(img_size=self.img_size_chw, noise_model=SeededGaussianNoise(noise_sigma))
        n = self.img_size_chw[0] * self.img_size_chw[1] * self.img_size_chw[2]
        m = torch.randn(num_measurements, n, generator=torch.Generator().manual_seed(matrix_seed)) / n**0.5
        self.register_buffer("matrix", m)

    def A(self, x: Tensor, **kwargs) -> Tensor:
        return x.reshape(x.shape[0], -1) @ self.matrix.T.to(x)

    def A_adjoint(self, y: Tensor, **kwargs) -> Tensor:
        return (y @ self.matrix.to(y)).reshape(y.shape[0], *self.img_size_chw)


class SparsePoints(TaskOperator, LinearPhysics):
    """Observe one channel of a field at a fixed, seeded set of points: ``y = x[:, channel].flat[idx]``.

    The sparse-observation operator of DiffusionPDE / FunDPS (about 3 % of the points; 500 of
    128x128 there, ~123 of 64x64 here). Forward problem: observe ``a`` (channel 0), recover ``u``;
    inverse problem: observe ``u`` (channel 1), recover ``a``.

    Args:
        img_size: ``[C, H, W]``.
        channel: Observed channel.
        fraction: Fraction of points observed (ignored when ``indices`` is given).
        indices: Explicit flat point indices in ``[0, H*W)``.
        seed: Seed of the random index set.
        noise_sigma: Gaussian observation noise (in the data's normalized units).
    """

    def __init__(self, img_size: ImgSize = (2, 64, 64), channel: int = 0, fraction: float = 0.03,
                 indices: list[int] | None = None, seed: int = 0, noise_sigma: float = 0.0):
        self._setup_task(img_size, noise_sigma)
        c, h, w = self.img_size_chw
        if not 0 <= channel < c:
            raise ConfigError(f"channel {channel} out of range for {c} channels")
        if indices is None:
            if not 0 < fraction <= 1:
                raise ConfigError(f"fraction must be in (0, 1], got {fraction}")
            num = max(1, int(round(fraction * h * w)))
            idx = torch.randperm(h * w, generator=torch.Generator().manual_seed(seed))[:num].sort().values
        else:
            idx = torch.as_tensor(indices, dtype=torch.long)
            bad = idx[(idx < 0) | (idx >= h * w)]
            if bad.numel():
                raise ConfigError(
                    f"observation indices out of range for a {h}x{w} grid (valid 0..{h * w - 1}): {bad[:5].tolist()}"
                )
        super().__init__(img_size=self.img_size_chw, noise_model=SeededGaussianNoise(noise_sigma))
        self.channel = channel
        self.register_buffer("indices", idx)

    def A(self, x: Tensor, **kwargs) -> Tensor:
        return x[:, self.channel].flatten(1)[:, self.indices]

    def A_adjoint(self, y: Tensor, **kwargs) -> Tensor:
        c, h, w = self.img_size_chw
        out = torch.zeros(y.shape[0], c, h * w, dtype=y.dtype, device=y.device)
        out[:, self.channel, self.indices] = y
        return out.view(y.shape[0], c, h, w)
