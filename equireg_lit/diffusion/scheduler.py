"""The step contract every sampler is built from, in the diffusers vocabulary.

``DDIMScheduler.step(model_output, timestep, sample, generators)`` returns a
:class:`StepOutput` with ``prev_sample`` and ``pred_original_sample``, like
``diffusers.DDIMScheduler.step``. It is written here (not taken from diffusers) because samplers
need two things diffusers' schedulers do not give: noise drawn sample by sample from one generator
per sample (results independent of the batch), and the autograd graph kept through the step
(guidance differentiates the clean estimate with respect to the network input).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from equireg_lit.diffusion.schedule import NoiseSchedule
from equireg_lit.rng import per_sample_randn


@dataclass
class StepOutput:
    """Result of one scheduler step.

    Attributes:
        prev_sample: ``x_{t_prev}``.
        pred_original_sample: The clean estimate ``x0_hat(x_t)`` used by the step (clipped when the
            scheduler clips).
    """

    prev_sample: Tensor
    pred_original_sample: Tensor


class DDIMScheduler:
    """Generalized DDIM (Song et al. 2021) on an evenly spaced subsequence of the prior's timesteps.

    ``x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev - sigma^2) eps + sigma z`` with
    ``sigma = eta sqrt((1 - abar_prev) / (1 - abar_t) (1 - abar_t / abar_prev))``. With every
    timestep and ``eta = 1`` this is DDPM ancestral sampling with the posterior variance
    beta_tilde (the DPS default); ``eta = 0`` is deterministic DDIM.

    Args:
        schedule: The prior's noise schedule.
        num_inference_steps: Length of the timestep subsequence (1 .. T).
        eta: Stochasticity in [0, 1].
        clip_sample: Clamp ``x0_hat`` to [-1, 1] (and recompute ``eps`` from it), as the DPS code does.
    """

    def __init__(self, schedule: NoiseSchedule, num_inference_steps: int, eta: float = 1.0, clip_sample: bool = True):
        self.schedule = schedule
        self.timesteps = schedule.timesteps(num_inference_steps)
        self.eta = eta
        self.clip_sample = clip_sample
        self._position = {t: i for i, t in enumerate(self.timesteps)}

    def alpha_prod(self, timestep: int) -> float:
        return float(self.schedule.alphas_cumprod[timestep])

    def alpha_prod_prev(self, timestep: int) -> float:
        """``abar`` of the step after ``timestep`` in the subsequence (1 after the last)."""
        i = self._position[timestep]
        return self.alpha_prod(self.timesteps[i + 1]) if i + 1 < len(self.timesteps) else 1.0

    def sigma(self, timestep: int) -> float:
        a_t, a_prev = self.alpha_prod(timestep), self.alpha_prod_prev(timestep)
        return self.eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)) ** 0.5

    def step(self, model_output: Tensor, timestep: int, sample: Tensor,
             generators: list[torch.Generator] | None = None) -> StepOutput:
        """One step from ``sample`` (``x_t``) given the predicted noise ``model_output``.

        Args:
            model_output: ``eps(x_t, t)``.
            timestep: ``t``, an element of :attr:`timesteps`.
            sample: ``x_t``.
            generators: One generator per sample; needed when the step adds noise (``eta > 0``).
        """
        x0, eps = self.pred_original(model_output, timestep, sample)
        return self.step_from(x0, eps, timestep, generators, self.sigma(timestep))

    def pred_original(self, model_output: Tensor, timestep: int, sample: Tensor) -> tuple[Tensor, Tensor]:
        """Tweedie's ``x0_hat`` (clipped when the scheduler clips) and the noise it implies."""
        a_t = self.alpha_prod(timestep)
        eps = model_output
        x0 = (sample - (1 - a_t) ** 0.5 * eps) / a_t**0.5
        if self.clip_sample:
            x0 = x0.clamp(-1, 1)
            eps = (sample - a_t**0.5 * x0) / (1 - a_t) ** 0.5
        return x0, eps

    def step_from(self, pred_original_sample: Tensor, eps: Tensor, timestep: int,
                  generators: list[torch.Generator] | None, sigma: float) -> StepOutput:
        """The DDIM update from a given clean estimate and noise direction with noise level
        ``sigma`` (samplers that correct ``x0_hat`` before stepping: DiffPIR, SITCOM, ReSample)."""
        a_prev = self.alpha_prod_prev(timestep)
        x0 = pred_original_sample
        prev = a_prev**0.5 * x0 + max(1 - a_prev - sigma**2, 0.0) ** 0.5 * eps
        if sigma > 0:
            if generators is None:
                raise ValueError("a stochastic step (eta > 0) needs one generator per sample")
            prev = prev + sigma * per_sample_randn(tuple(x0.shape), generators, prev)
        return StepOutput(prev_sample=prev, pred_original_sample=x0)
