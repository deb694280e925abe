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
    """Observe channels of a field at fixed, seeded sets of points: ``y = x[:, c].flat[idx_c]``,
    concatenated over the observed channels.

    The sparse-observation operator of DiffusionPDE / FunDPS (about 3 % of the points; 500 of
    128x128 there, ~123 of 64x64 here). Forward problem: observe ``a`` (channel 0), recover ``u``;
    inverse problem: observe ``u`` (channel 1), recover ``a``; both: ``channel: [0, 1]``, each
    channel with its own point set (seed ``seed + k`` for the k-th) and its own guidance weight
    (DiffusionPDE's ``zeta_obs_a`` / ``zeta_obs_u``): the data term is ``sum_k w_k ||y_k - A_k x||``.

    Args:
        img_size: ``[C, H, W]``.
        channel: Observed channel, or channels.
        fraction: Fraction of points observed per channel (ignored when ``indices`` is given).
        indices: Explicit flat point indices in ``[0, H*W)`` (one channel only).
        seed: Seed of the random index set.
        noise_sigma: Gaussian observation noise (in the data's normalized units).
        weights: Guidance weight of each observed channel's term (default 1 each).
    """

    def __init__(self, img_size: ImgSize = (2, 64, 64), channel: int | list[int] = 0, fraction: float = 0.03,
                 indices: list[int] | None = None, seed: int = 0, noise_sigma: float = 0.0,
                 weights: list[float] | None = None):
        self._setup_task(img_size, noise_sigma)
        c, h, w = self.img_size_chw
        channels = [channel] if isinstance(channel, int) else list(channel)
        if not channels or any(not 0 <= k < c for k in channels) or len(set(channels)) != len(channels):
            raise ConfigError(f"channel must name distinct channels in 0..{c - 1}, got {channel}")
        if weights is not None and (len(weights) != len(channels) or any(v < 0 for v in weights)):
            raise ConfigError(f"weights needs one value >= 0 per observed channel ({len(channels)}), got {weights}")
        if indices is not None and len(channels) > 1:
            raise ConfigError("explicit indices observe one channel; for several, give fraction and seed")
        if indices is None:
            if not 0 < fraction <= 1:
                raise ConfigError(f"fraction must be in (0, 1], got {fraction}")
            num = max(1, int(round(fraction * h * w)))
            sets = [torch.randperm(h * w, generator=torch.Generator().manual_seed(seed + k))[:num].sort().values
                    for k in range(len(channels))]
        else:
            idx = torch.as_tensor(indices, dtype=torch.long)
            bad = idx[(idx < 0) | (idx >= h * w)]
            if bad.numel():
                raise ConfigError(
                    f"observation indices out of range for a {h}x{w} grid (valid 0..{h * w - 1}): {bad[:5].tolist()}"
                )
            sets = [idx]
        super().__init__(img_size=self.img_size_chw, noise_model=SeededGaussianNoise(noise_sigma))
        self.channels = channels
        self.channel = channels[0] if len(channels) == 1 else channels
        self.weights = [1.0] * len(channels) if weights is None else [float(v) for v in weights]
        for k, idx in enumerate(sets):
            self.register_buffer(f"indices_{k}", idx)

    @property
    def indices(self) -> Tensor:
        """The point set of the (first) observed channel."""
        return self.indices_0

    def _sets(self) -> list[Tensor]:
        return [getattr(self, f"indices_{k}") for k in range(len(self.channels))]

    def A(self, x: Tensor, **kwargs) -> Tensor:
        return torch.cat([x[:, c].flatten(1)[:, idx] for c, idx in zip(self.channels, self._sets(), strict=True)], 1)

    def A_adjoint(self, y: Tensor, **kwargs) -> Tensor:
        c, h, w = self.img_size_chw
        out = torch.zeros(y.shape[0], c, h * w, dtype=y.dtype, device=y.device)
        start = 0
        for ch, idx in zip(self.channels, self._sets(), strict=True):
            out[:, ch, idx] = y[:, start : start + idx.numel()]
            start += idx.numel()
        return out.view(y.shape[0], c, h, w)

    def data_norm(self, r: Tensor) -> Tensor:
        """Per-sample guidance data term of a residual ``y - A(x)``: ``sum_k w_k ||r_k||``."""
        out, start = 0, 0
        for weight, idx in zip(self.weights, self._sets(), strict=True):
            out = out + weight * r[:, start : start + idx.numel()].norm(dim=1)
            start += idx.numel()
        return out
