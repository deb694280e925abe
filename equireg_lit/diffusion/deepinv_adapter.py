"""Any :class:`DiffusionPrior` as a deepinv ``Denoiser``, so deepinv's samplers (``deepinv.sampling.DPS``,
``DiffPIR``, ``DDRM``, ...) run on the same trained network.

deepinv's diffusion samplers call ``denoiser(x, sigma)`` with ``x = x0 + sigma * n`` (variance
exploding form, data in [-1, 1]); an epsilon network expects ``x_t = sqrt(abar) x0 + sqrt(1 - abar) n``
at a discrete timestep. With ``abar = 1 / (1 + sigma^2)`` the two are the same point up to the
factor ``sqrt(abar)``, and the Tweedie estimate is ``x - sigma * eps(sqrt(abar) x, t)``. deepinv's
own ``DiffUNet`` makes the same conversion for the guided-diffusion checkpoints only.
"""

from __future__ import annotations

import torch
from deepinv.models import Denoiser
from torch import Tensor

from equireg_lit.diffusion.priors import DiffusionPrior


class DeepinvDenoiser(Denoiser):
    """Tweedie denoiser ``D(x, sigma)`` of a diffusion prior, in deepinv's calling convention.

    Args:
        prior: The epsilon-prediction prior; its timestep nearest in ``abar`` to each ``sigma`` is used.
    """

    def __init__(self, prior: DiffusionPrior):
        super().__init__()
        self.prior = prior

    def forward(self, x: Tensor, sigma: Tensor | float, *args, **kwargs) -> Tensor:
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
        sigma = sigma.expand(x.shape[0]) if sigma.numel() == 1 else sigma
        abar = 1.0 / (1.0 + sigma**2)
        table = self.prior.schedule.alphas_cumprod.to(x.device, x.dtype)
        t = (table[None, :] - abar[:, None]).abs().argmin(dim=1)
        a = table[t].view(-1, *([1] * (x.ndim - 1)))
        eps = self.prior(a.sqrt() * x, t)
        return x - sigma.view(-1, *([1] * (x.ndim - 1))) * eps
