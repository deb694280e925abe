"""PSLD (Rout et al., "Solving Linear Inverse Problems Provably via Posterior Sampling with Latent
Diffusion Models", NeurIPS 2023): latent DPS plus the "gluing" term that keeps the latent
consistent with the measurement through the encoder,

    loss(z0_hat) = omega ||y - A(D(z0_hat))|| + gamma ||E(A^T y + (I - A^T A) D(z0_hat)) - z0_hat||
    z_{t-1}      = DDIM(z_t) - grad_{z_t} loss        (eta 0 and 1000 steps at FFHQ 256, gamma = omega = 0.1)

The gluing term needs ``A^T``: linear operators whose ``A^T A`` acts like a projection
(inpainting; SR and blurs work approximately). EquiReg enters the loss on ``z0_hat`` as in
:class:`LatentDPS` (the reference config: f = the decoder, form ``equi``, every step).
"""

from __future__ import annotations

from deepinv.physics import LinearPhysics
from torch import Tensor

from equireg_lit.diffusion.latent import LatentDiffusionPrior
from equireg_lit.errors import ConfigError, check_range
from equireg_lit.solvers.base import Guidance
from equireg_lit.solvers.latent_dps import LatentDPS


class GluedGuidance(Guidance):
    """PSLD's per-sample loss on latents: the weighted measurement term plus the gluing term."""

    def __init__(self, guidance: Guidance, prior: LatentDiffusionPrior, omega: float, gamma: float):
        super().__init__(guidance.physics, guidance.y, guidance.regularizer, guidance.reg_generators,
                         guidance.residual, prior.decode)
        self.encode, self.omega, self.gamma = prior.encode, omega, gamma

    def data_term(self, z0: Tensor) -> Tensor:
        x0 = self.to_pixels(z0)
        r = self.y - self.physics.A(x0)
        loss = self.omega * r.reshape(r.shape[0], -1).norm(dim=1)
        if self.gamma:
            glued = self.physics.A_adjoint(self.y) + x0 - self.physics.A_adjoint(self.physics.A(x0))
            g = self.encode(glued) - z0
            loss = loss + self.gamma * g.reshape(g.shape[0], -1).norm(dim=1)
        return loss


class PSLD(LatentDPS):
    """Posterior sampling with latent diffusion (measurement + gluing term) on a latent prior.

    Args:
        num_steps: Sampling steps (evenly spaced timesteps of the prior's T).
        omega: Weight of the measurement term ``||y - A(D(z0_hat))||``.
        gamma: Weight of the gluing term ``||E(A^T y + (I - A^T A) D(z0_hat)) - z0_hat||``.
        eta: DDIM stochasticity (PSLD uses 0).
        clip_x0: Clamp the latent clean estimate to [-1, 1] (off: latents are not bounded so).
        divergence_threshold: A sample whose latent exceeds this in absolute value has failed.
    """

    def __init__(self, num_steps: int = 1000, omega: float = 0.1, gamma: float = 0.1, eta: float = 0.0,
                 clip_x0: bool = False, divergence_threshold: float = 1e4):
        check_range("omega", omega, 0.0)
        check_range("gamma", gamma, 0.0)
        super().__init__(num_steps=num_steps, zeta=1.0, eta=eta, clip_x0=clip_x0,
                         divergence_threshold=divergence_threshold)
        self.omega, self.gamma = omega, gamma

    def latent_guidance(self, guidance: Guidance, prior: LatentDiffusionPrior) -> Guidance:
        if self.gamma and not isinstance(guidance.physics, LinearPhysics):
            raise ConfigError(f"PSLD's gluing term needs a linear operator (A^T), got {type(guidance.physics).__name__}; "
                              "use gamma: 0 or LatentDPS")
        return GluedGuidance(guidance, prior, self.omega, self.gamma)
