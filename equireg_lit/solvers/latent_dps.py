"""Latent DPS (the baseline of Rout et al.'s PSLD paper): DPS on a latent diffusion prior, with
the measurement taken of the decoded clean estimate, ``zeta * grad_{z_t} ||y - A(D(z0_hat))||``.

EquiReg sees the latent ``z0_hat``: with f = the decoder (``LatentDecoder``, form ``equi``) the
penalty compares ``D(g z)`` with ``g D(z)`` in pixel space; with f = encoder after decoder
(``LatentDecoder(reencode=True)``, form ``equi_plus``, EquiCon) it compares in latent space.
"""

from __future__ import annotations

import torch

from equireg_lit.diffusion.latent import LatentDiffusionPrior
from equireg_lit.errors import ConfigError
from equireg_lit.solvers.base import Guidance, SamplerOutput, StepCallback
from equireg_lit.solvers.dps import DPS


class LatentDPS(DPS):
    """DPS in the latent space of a :class:`LatentDiffusionPrior`; returns decoded images.

    Args:
        num_steps: Sampling steps (evenly spaced timesteps of the prior's T).
        zeta: Guidance weight.
        eta: DDIM stochasticity (1: DDPM ancestral, the DPS default).
        clip_x0: Clamp the latent clean estimate to [-1, 1] (off: latents are not bounded so).
        divergence_threshold: A sample whose latent exceeds this in absolute value has failed.
    """

    latent = True

    def __init__(self, num_steps: int = 1000, zeta: float = 1.0, eta: float = 1.0, clip_x0: bool = False,
                 divergence_threshold: float = 1e4):
        super().__init__(num_steps=num_steps, zeta=zeta, eta=eta, clip_x0=clip_x0,
                         divergence_threshold=divergence_threshold)

    def latent_guidance(self, guidance: Guidance, prior: LatentDiffusionPrior) -> Guidance:
        """The guidance on latents: the operator sees the decoded estimate."""
        return guidance.in_latent_space(prior.decode)

    def sample(self, prior: LatentDiffusionPrior, shape: tuple[int, ...], generators: list[torch.Generator],
               guidance: Guidance | None = None, on_step: StepCallback | None = None) -> SamplerOutput:
        """``shape`` is the images' ``[B, C, H, W]``; sampling runs on ``prior``'s latents."""
        if not isinstance(prior, LatentDiffusionPrior):
            raise ConfigError(f"{type(self).__name__} needs a LatentDiffusionPrior, got {type(prior).__name__}; "
                              "for pixel-space priors use DPS")
        latent_shape = (shape[0], prior.channels, prior.image_size, prior.image_size)
        latent_guidance = None if guidance is None else self.latent_guidance(guidance, prior)
        out = super().sample(prior, latent_shape, generators, latent_guidance, on_step)
        with torch.no_grad():
            out.x = prior.decode(out.x)
        return out
