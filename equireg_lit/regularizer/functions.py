"""Candidate functions f for EquiReg: their base class and the ones that need no training."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from equireg_lit.diffusion.priors import DiffusionPrior


class ManifoldFunction(nn.Module):
    """Base of the functions f that a config can give EquiReg (the prior's denoiser, probes,
    pretrained networks): ``[B, C, H, W] -> [B, ...]``. Subclass it to use your own network, so
    that ``--help`` lists this project's choices rather than every ``torch.nn.Module``."""

    def bind(self, prior: DiffusionPrior) -> "ManifoldFunction":
        """Called by the posterior sampler with its prior; functions built from it (the prior's
        denoiser, a latent prior's decoder) keep it, the others ignore it."""
        return self


class PriorDenoiser(ManifoldFunction):
    """The prior's own clean estimate at a fixed small timestep: ``f(x) = x0_hat(sqrt(abar_t0) x, t0)``.

    The input is scaled as the forward process scales clean images, with no noise added, so f
    is deterministic and maps back into x's space (use with ``form: equi_plus`` or ``equi``).
    Without ``prior`` the posterior sampler binds its own prior; with one, f is that separate
    network (e.g. a prior trained with group augmentation, loaded from its weights path).

    Args:
        t0: Timestep of the denoiser (small: close to the data).
        prior: A separate diffusion prior to use as f (None: the sampler's prior).
    """

    def __init__(self, t0: int = 20, prior: DiffusionPrior | None = None):
        super().__init__()
        if t0 < 0:
            raise ValueError(f"t0 must be >= 0, got {t0}")
        self.t0 = t0
        self.own_prior = prior
        self._prior: list = [prior] if prior is not None else []  # a list: not registered twice

    def bind(self, prior: DiffusionPrior) -> "PriorDenoiser":
        """Use ``prior`` unless a separate one was given."""
        if self.own_prior is None:
            self._prior[:] = [prior]
        return self

    @property
    def prior(self):
        if not self._prior:
            raise RuntimeError("PriorDenoiser is not bound to a prior; the posterior sampler binds it")
        return self._prior[0]

    def forward(self, x: Tensor) -> Tensor:
        prior = self.prior
        t = torch.full((x.shape[0],), self.t0, dtype=torch.long, device=x.device)
        x_t = prior.schedule.abar(t, x).sqrt() * x
        return prior.x0(x_t, t)


class LatentDecoder(ManifoldFunction):
    """A latent prior's decoder as f (form ``equi``: ``D(g z)`` against ``g D(z)``, compared in
    pixel space), or encoder after decoder (``reencode``; form ``equi_plus``: EquiCon, compared in
    latent space). The posterior sampler binds its latent prior, as for ``PriorDenoiser``.

    Args:
        reencode: Return ``E(D(z))`` instead of ``D(z)``.
    """

    def __init__(self, reencode: bool = False):
        super().__init__()
        self.reencode = reencode
        self._prior: list = []

    def bind(self, prior: DiffusionPrior) -> "LatentDecoder":
        if not hasattr(prior, "decode"):
            raise ValueError(f"LatentDecoder needs a latent prior (with decode), got {type(prior).__name__}")
        self._prior[:] = [prior]
        return self

    def forward(self, z: Tensor) -> Tensor:
        if not self._prior:
            raise RuntimeError("LatentDecoder is not bound to a latent prior; the posterior sampler binds it")
        prior = self._prior[0]
        x = prior.decode(z)
        return prior.encode(x) if self.reencode else x


class FixedConv(ManifoldFunction):
    """A fixed (untrained) 3x3 convolution; with an asymmetric kernel it is not flip-equivariant.

    Args:
        channels: Input and output channels.
        kernel: 3x3 kernel (row-major), applied to every channel.
    """

    def __init__(self, channels: int = 1, kernel: tuple[float, ...] = (0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0, 2.0, 0.0)):
        super().__init__()
        if len(kernel) != 9:
            raise ValueError("kernel must have 9 entries (3x3, row-major)")
        k = torch.tensor(kernel, dtype=torch.float32).view(1, 1, 3, 3).repeat(channels, 1, 1, 1)
        self.register_buffer("weight", k)
        self.channels = channels

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.conv2d(x, self.weight.to(x), padding=1, groups=self.channels)
